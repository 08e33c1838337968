//! The public [`Host`]: one canister, IC message semantics.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use anyhow::{anyhow, Result};
use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::Principal;
use wasmtime::{ExternType, Global, Instance, Memory, Ref, Store, Table, Trap, Val};

use crate::certify::SubnetKey;
use crate::engine::{self, CompiledModule};
use crate::management;
use crate::imports::{self, MAX_PAYLOAD};
use crate::persist;
use crate::rewrite::{GLOBAL_EXPORT_PREFIX, MEMORY_EXPORT, TABLE_EXPORT};
use crate::state::{
    CanisterState, Callbacks, Message, MessageKind, Response, SmallState, StableMemory, StoreData,
    DEFAULT_MAX_STABLE_PAGES,
};

/// IC reject codes.
pub mod reject_code {
    /// Host-side failure (candid encoding/decoding in the typed helpers); not an IC code.
    pub const HOST_ERROR: u32 = 0;
    pub const SYS_FATAL: u32 = 1;
    pub const SYS_TRANSIENT: u32 = 2;
    pub const DESTINATION_INVALID: u32 = 3;
    pub const CANISTER_REJECT: u32 = 4;
    pub const CANISTER_ERROR: u32 = 5;
    pub const SYS_UNKNOWN: u32 = 6;
}
use reject_code::*;

/// Maximum size of an argument sent from outside (ingress): 2 MiB.
pub const MAX_INGRESS_ARG: usize = MAX_PAYLOAD;
/// Upper bound of messages processed by one drain of the message queue.
pub const MAX_MESSAGES_PER_DRAIN: usize = 10_000;
/// Upper bound of global timer firings per [`Host::tick`].
const MAX_TIMER_FIRINGS_PER_TICK: usize = 1_000;

/// A rejected call: IC reject code + message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub code: u32,
    pub message: String,
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reject code {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Reject {}

/// The outcome of one executed message.
#[derive(Debug, Clone)]
pub struct CallResult {
    /// For [`Host::update`]/[`Host::query`]: the response of the call (after
    /// all self-calls it triggered ran). For messages reported by
    /// [`Host::tick`]/[`Host::last_messages`]: what this message did
    /// (`Ok(reply)`, `Ok(empty)` if it committed without responding, `Err`
    /// if it rejected or trapped).
    pub reply: Result<Vec<u8>, Reject>,
    /// Instructions (wasmtime fuel) spent by this message.
    pub instructions: u64,
    /// Bytes written to stable memory by this message (also when rolled back).
    pub stable_bytes_written: u64,
    /// Bytes read from stable memory by this message.
    pub stable_bytes_read: u64,
    /// Part of `instructions` charged for system API calls (0 unless
    /// [`Host::set_system_api_metering`] is on).
    pub system_api_instructions: u64,
    pub kind: MessageKind,
    /// Method name (exported entry point name for system methods).
    pub method: String,
}

/// Instructions spent by an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeCost {
    /// `pre_upgrade + post_upgrade`.
    pub instructions: u64,
    pub pre_upgrade: u64,
    pub post_upgrade: u64,
}

/// Per-message instruction limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Update calls, timers, callbacks, replicated queries (IC: 40 B).
    Update,
    /// Queries (IC: 5 B).
    Query,
    /// `canister_init`, and `pre_upgrade + post_upgrade` together (IC: 300 B).
    Install,
    /// `canister_inspect_message` (IC: 200 M).
    InspectMessage,
}

#[derive(Debug, Clone, Copy)]
struct Limits {
    update: u64,
    query: u64,
    install: u64,
    inspect: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self { update: 40_000_000_000, query: 5_000_000_000, install: 300_000_000_000, inspect: 200_000_000 }
    }
}

/// Settings for [`Host::with_config`].
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub canister_id: Principal,
    pub controllers: Vec<Principal>,
    /// Initial time, nanoseconds since the epoch.
    pub time_ns: u64,
    pub max_stable_pages: u64,
    pub cycle_balance: u128,
}

/// The controller installed by [`Host::new`] (also the caller of init/upgrade).
pub const DEFAULT_CONTROLLER: Principal = Principal::from_slice(&[0xC0, 0x47, 0x7B, 0x11, 0x01]);
/// The canister id used by [`Host::new`] (`rrkah-fqaaa-aaaaa-aaaaq-cai`).
pub const DEFAULT_CANISTER_ID: Principal = Principal::from_slice(&[0, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
/// Default initial time: 2023-11-14T22:13:20Z.
pub const DEFAULT_TIME_NS: u64 = 1_700_000_000_000_000_000;

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            canister_id: DEFAULT_CANISTER_ID,
            controllers: vec![DEFAULT_CONTROLLER],
            time_ns: DEFAULT_TIME_NS,
            max_stable_pages: DEFAULT_MAX_STABLE_PAGES,
            cycle_balance: 100_000_000_000_000,
        }
    }
}

// ---------------------------------------------------------------------------
// Runtime: one instance + store; snapshot / execute / rollback.
// ---------------------------------------------------------------------------

enum Entry {
    Export(String),
    /// Function-table index + env argument.
    Callback(u32, u32),
}

struct Snapshot {
    heap: Vec<u8>,
    globals: Vec<Val>,
    small: SmallState,
}

struct Exec {
    trap: Option<String>,
    instructions: u64,
    msg: Message,
}

struct Runtime {
    store: Store<StoreData>,
    instance: Instance,
    module: CompiledModule,
    memory: Option<Memory>,
    table: Option<Table>,
    globals: Vec<Global>,
    /// The heap snapshot buffer of the last message, reused by the next one: copying
    /// into memory already mapped is much faster than into a fresh allocation when the
    /// heap is large.
    spare_heap: Vec<u8>,
}

impl Runtime {
    /// Instantiates; on failure hands the store data back.
    fn instantiate(module: CompiledModule, data: StoreData, fuel: u64) -> Result<Runtime, Box<(anyhow::Error, StoreData)>> {
        let mut store = Store::new(engine::engine(), data);
        store.data_mut().msg = Message::new(MessageKind::Init, "(start)", Vec::new(), Vec::new());
        store.data_mut().msg.fuel_limit = fuel;
        if let Err(e) = store.set_fuel(fuel) {
            return Err(Box::new((e.into(), store.into_data())));
        }
        let linker = match imports::linker(&module.module) {
            Ok(l) => l,
            Err(e) => return Err(Box::new((e.into(), store.into_data()))),
        };
        let instance = match linker.instantiate(&mut store, &module.module) {
            Ok(i) => i,
            Err(e) => return Err(Box::new((anyhow!("instantiating canister: {e:#}"), store.into_data()))),
        };
        let memory = instance.get_memory(&mut store, MEMORY_EXPORT);
        let table = instance.get_table(&mut store, TABLE_EXPORT);
        let names: Vec<String> = module
            .module
            .exports()
            .filter(|e| e.name().starts_with(GLOBAL_EXPORT_PREFIX))
            .map(|e| e.name().to_string())
            .collect();
        let globals = names.iter().filter_map(|n| instance.get_global(&mut store, n)).collect();
        Ok(Runtime { store, instance, module, memory, table, globals, spare_heap: Vec::new() })
    }

    fn has_func(&self, name: &str) -> bool {
        matches!(self.module.module.get_export(name), Some(ExternType::Func(_)))
    }

    fn data(&self) -> &StoreData {
        self.store.data()
    }

    fn canister(&mut self) -> &mut CanisterState {
        &mut self.store.data_mut().canister
    }

    fn begin(&mut self) -> Snapshot {
        let mut heap = std::mem::take(&mut self.spare_heap);
        heap.clear();
        if let Some(m) = self.memory {
            heap.extend_from_slice(m.data(&self.store));
        }
        let globals = self.globals.iter().map(|g| g.get(&mut self.store)).collect();
        let small = self.store.data().canister.small();
        self.canister().stable.begin();
        Snapshot { heap, globals, small }
    }

    fn commit(&mut self) {
        self.canister().stable.commit();
    }

    /// Restores heap (bytes; a grown memory keeps its size but the new part is
    /// zeroed), mutable globals, timer/certified data and stable memory.
    fn rollback(&mut self, snap: Snapshot) {
        if let Some(m) = self.memory {
            let data = m.data_mut(&mut self.store);
            let n = snap.heap.len().min(data.len());
            data[..n].copy_from_slice(&snap.heap[..n]);
            data[n..].fill(0);
        }
        self.spare_heap = snap.heap;
        for (g, v) in self.globals.clone().iter().zip(snap.globals) {
            let _ = g.set(&mut self.store, v);
        }
        let c = self.canister();
        c.restore_small(snap.small);
        c.stable.rollback();
    }

    /// Runs one entry point; does not commit or roll back.
    fn execute(&mut self, entry: &Entry, mut msg: Message, limit: u64) -> Exec {
        msg.fuel_limit = limit;
        self.store.data_mut().msg = msg;
        let result = self.store.set_fuel(limit).and_then(|_| match entry {
            Entry::Export(name) => self
                .instance
                .get_typed_func::<(), ()>(&mut self.store, name)
                .and_then(|f| f.call(&mut self.store, ())),
            Entry::Callback(fun, env) => {
                let func = match self.table.map(|t| t.get(&mut self.store, u64::from(*fun))) {
                    Some(Some(Ref::Func(Some(f)))) => Ok(f),
                    _ => Err(wasmtime::Error::msg(format!("callback function {fun} not found in table 0"))),
                };
                func.and_then(|f| f.typed::<u32, ()>(&self.store)).and_then(|f| f.call(&mut self.store, *env))
            }
        });
        let instructions = limit.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let msg = std::mem::replace(
            &mut self.store.data_mut().msg,
            Message::new(MessageKind::Init, "", Vec::new(), Vec::new()),
        );
        let trap = result.err().map(|e| describe_trap(&e, msg.host_trap.clone(), limit));
        if let Some(t) = &trap {
            self.store.data_mut().log(format!("[TRAP]: {t}"));
        }
        Exec { trap, instructions, msg }
    }

    /// Snapshot + execute + commit (or rollback on trap / when `discard`).
    fn run(&mut self, entry: &Entry, msg: Message, limit: u64, discard: bool) -> Exec {
        let snap = self.begin();
        let exec = self.execute(entry, msg, limit);
        if discard || exec.trap.is_some() {
            self.rollback(snap);
        } else {
            self.commit();
            self.spare_heap = snap.heap;
        }
        exec
    }
}

fn describe_trap(e: &wasmtime::Error, host_trap: Option<String>, limit: u64) -> String {
    if let Some(t) = host_trap {
        return t;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!(
            "instruction limit exceeded: Canister exceeded the limit of {limit} instructions for single message execution."
        ),
        Some(trap) => format!("Canister trapped: {trap}"),
        None => format!("Canister trapped: {e:#}"),
    }
}

// ---------------------------------------------------------------------------
// Call contexts and the message queue.
// ---------------------------------------------------------------------------

type CtxId = u64;

enum Origin {
    /// A call from outside ([`Host::update`]); response stored for the caller.
    Ingress,
    /// A call from this canister; the response goes to `ctx`'s callbacks.
    Call { ctx: CtxId, callbacks: Callbacks },
    /// Timer / system task: the response is dropped.
    System,
}

struct CallContext {
    caller: Vec<u8>,
    origin: Origin,
    outstanding: u32,
    responded: bool,
    instructions: u64,
}

enum Queued {
    Request { ctx: CtxId, callbacks: Callbacks, method: String, arg: Vec<u8> },
    Response { ctx: CtxId, callbacks: Callbacks, response: Result<Vec<u8>, Reject> },
}

/// One canister running in-process with IC message semantics.
pub struct Host {
    rt: Runtime,
    limits: Limits,
    contexts: HashMap<CtxId, CallContext>,
    next_ctx: CtxId,
    queue: VecDeque<Queued>,
    ingress_results: HashMap<CtxId, Result<Vec<u8>, Reject>>,
    records: Vec<CallResult>,
    /// The subnet's root key: certifies state for queries (see [`crate::certify`]).
    subnet: SubnetKey,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host").field("canister_id", &self.canister_id()).finish_non_exhaustive()
    }
}

fn reject(code: u32, message: impl Into<String>) -> Reject {
    Reject { code, message: message.into() }
}

impl Host {
    /// Installs `wasm` (running `canister_init` with `init_arg`) with the
    /// default [`HostConfig`].
    pub fn new(wasm: &[u8], init_arg: &[u8]) -> Result<Host> {
        Self::with_config(wasm, init_arg, HostConfig::default())
    }

    /// Installs `wasm` with explicit settings. Fails if the module does not
    /// compile/link or `canister_init` traps.
    pub fn with_config(wasm: &[u8], init_arg: &[u8], config: HostConfig) -> Result<Host> {
        let canister = CanisterState {
            canister_id: config.canister_id,
            controllers: config.controllers,
            stable: StableMemory::new(config.max_stable_pages),
            time: config.time_ns,
            global_timer: 0,
            certified_data: Vec::new(),
            canister_version: 0,
            cycle_balance: config.cycle_balance,
        };
        let mut host = Self::instantiate(wasm, canister)?;
        let installer = host.installer();
        if host.rt.has_func("canister_init") {
            let msg = Message::new(MessageKind::Init, "canister_init", installer, init_arg.to_vec());
            let exec = host.rt.run(&Entry::Export("canister_init".into()), msg, host.limits.install, false);
            host.record(&exec, Ok(Vec::new()));
            if let Some(t) = exec.trap {
                return Err(anyhow!("canister_init trapped: {t}"));
            }
        }
        host.rt.canister().canister_version += 1;
        Ok(host)
    }

    fn instantiate(wasm: &[u8], canister: CanisterState) -> Result<Host> {
        let module = engine::load_module(wasm)?;
        let data = StoreData {
            canister,
            msg: Message::new(MessageKind::Init, "", Vec::new(), Vec::new()),
            logs: Vec::new(),
            metering: false,
        };
        let limits = Limits::default();
        let rt = Runtime::instantiate(module, data, limits.install).map_err(|b| b.0)?;
        Ok(Host {
            rt,
            limits,
            contexts: HashMap::new(),
            next_ctx: 0,
            queue: VecDeque::new(),
            ingress_results: HashMap::new(),
            records: Vec::new(),
            subnet: SubnetKey::generate(),
        })
    }

    fn installer(&self) -> Vec<u8> {
        self.rt.data().canister.controllers.first().map(|p| p.as_slice().to_vec()).unwrap_or_default()
    }

    // ----- accessors -----

    pub fn canister_id(&self) -> Principal {
        self.rt.data().canister.canister_id
    }

    /// Current time in nanoseconds since the epoch.
    pub fn time(&self) -> u64 {
        self.rt.data().canister.time
    }

    /// Sets the time (nanoseconds). Does not fire the timer; see [`Host::tick`].
    pub fn set_time(&mut self, ns: u64) {
        self.rt.canister().time = ns;
    }

    /// Advances time by `d`, then runs [`Host::tick`].
    pub fn advance_time(&mut self, d: Duration) -> Vec<CallResult> {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let c = self.rt.canister();
        c.time = c.time.saturating_add(ns);
        self.tick()
    }

    /// The global timer deadline (0 = inactive).
    pub fn global_timer(&self) -> u64 {
        self.rt.data().canister.global_timer
    }

    pub fn controllers(&self) -> &[Principal] {
        &self.rt.data().canister.controllers
    }

    pub fn set_controllers(&mut self, controllers: Vec<Principal>) {
        self.rt.canister().controllers = controllers;
    }

    pub fn set_instruction_limit(&mut self, kind: Limit, n: u64) {
        match kind {
            Limit::Update => self.limits.update = n,
            Limit::Query => self.limits.query = n,
            Limit::Install => self.limits.install = n,
            Limit::InspectMessage => self.limits.inspect = n,
        }
    }

    /// Charges system API calls approximately as the IC does (a fixed overhead per
    /// call plus one instruction per byte copied; see [`crate::metering`]), from the
    /// next message on. Off by default: then `instructions` is wasmtime fuel alone.
    pub fn set_system_api_metering(&mut self, on: bool) {
        self.rt.store.data_mut().metering = on;
    }

    /// Whether system API calls are charged (see [`Host::set_system_api_metering`]).
    pub fn system_api_metering(&self) -> bool {
        self.rt.data().metering
    }

    pub fn instruction_limit(&self, kind: Limit) -> u64 {
        match kind {
            Limit::Update => self.limits.update,
            Limit::Query => self.limits.query,
            Limit::Install => self.limits.install,
            Limit::InspectMessage => self.limits.inspect,
        }
    }

    /// Stable memory size in bytes (pages * 64 KiB).
    pub fn stable_size_bytes(&self) -> u64 {
        self.rt.data().canister.stable.size_bytes()
    }

    /// Reads stable memory directly (test inspection); zeros past the stored prefix.
    pub fn read_stable(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.rt.data().canister.stable.read(offset, &mut buf).ok()?;
        Some(buf)
    }

    /// Certified data last set by the canister.
    /// The root key (DER) that verifies this host's certificates.
    pub fn root_key(&self) -> Vec<u8> {
        self.subnet.public_key_der()
    }

    /// The subnet key, e.g. to keep it on disk or to sign `read_state` answers.
    pub fn subnet_key(&self) -> &SubnetKey {
        &self.subnet
    }

    /// Uses `key` from now on (a host restored from disk keeps its root key).
    pub fn set_subnet_key(&mut self, key: SubnetKey) {
        self.subnet = key;
    }

    pub fn certified_data(&self) -> &[u8] {
        &self.rt.data().canister.certified_data
    }

    /// `debug_print` output (and `[TRAP]: ...` lines), oldest first.
    pub fn logs(&self) -> &[String] {
        &self.rt.data().logs
    }

    pub fn clear_logs(&mut self) {
        self.rt.store.data_mut().logs.clear();
    }

    /// Every message executed by the most recent `update`/`query`/`tick`/
    /// `advance_time`/`upgrade` call, in execution order.
    pub fn last_messages(&self) -> &[CallResult] {
        &self.records
    }

    /// sha256 of the installed wasm.
    pub fn module_hash(&self) -> [u8; 32] {
        self.rt.module.wasm_hash
    }

    // ----- calls -----

    /// An update call from outside (ingress) by `caller`. Runs
    /// `canister_inspect_message` first if exported, then the method, then
    /// every self-call / callback it causes until the queue is empty.
    pub fn update(&mut self, caller: Principal, method: &str, arg: &[u8]) -> CallResult {
        self.records.clear();
        let caller_bytes = caller.as_slice().to_vec();
        let export = format!("canister_update {method}");
        let mut result = CallResult {
            reply: Ok(Vec::new()),
            instructions: 0,
            stable_bytes_written: 0,
            stable_bytes_read: 0,
            system_api_instructions: 0,
            kind: MessageKind::Update,
            method: method.to_string(),
        };
        if arg.len() > MAX_INGRESS_ARG {
            result.reply = Err(self.too_large(arg.len()));
            return result;
        }
        if !self.rt.has_func(&export) {
            if self.query_export(method).is_some() {
                return self.run_query(caller_bytes, method, arg, MessageKind::ReplicatedQuery);
            }
            result.reply =
                Err(reject(DESTINATION_INVALID, format!("Canister {} has no update method '{method}'", self.canister_id())));
            return result;
        }
        if self.rt.has_func("canister_inspect_message") {
            let msg = Message::new(MessageKind::InspectMessage, method, caller_bytes.clone(), arg.to_vec());
            let exec = self.rt.run(&Entry::Export("canister_inspect_message".into()), msg, self.limits.inspect, true);
            let verdict = match &exec.trap {
                Some(t) => Err(reject(CANISTER_ERROR, format!("Error from Canister {}: {t}", self.canister_id()))),
                None if !exec.msg.accepted => Err(reject(
                    CANISTER_REJECT,
                    format!("Canister {} rejected the message (inspect_message did not accept it)", self.canister_id()),
                )),
                None => Ok(Vec::new()),
            };
            self.record(&exec, verdict.clone());
            if let Err(r) = verdict {
                result.reply = Err(r);
                return result;
            }
        }
        let ctx = self.new_context(caller_bytes.clone(), Origin::Ingress);
        let msg = Message::new(MessageKind::Update, method, caller_bytes, arg.to_vec());
        let exec = self.rt.run(&Entry::Export(export), msg, self.limits.update, false);
        let own = self.records.len();
        self.finish(ctx, exec);
        self.drain();
        let mut result = self.records[own].clone();
        result.reply = self
            .ingress_results
            .remove(&ctx)
            .unwrap_or_else(|| Err(reject(SYS_UNKNOWN, "ic-host: the call did not complete")));
        result
    }

    /// A query call: runs `canister_query <method>` and discards all changes.
    pub fn query(&mut self, caller: Principal, method: &str, arg: &[u8]) -> CallResult {
        self.records.clear();
        if arg.len() > MAX_INGRESS_ARG {
            return CallResult {
                reply: Err(self.too_large(arg.len())),
                instructions: 0,
                stable_bytes_written: 0,
                stable_bytes_read: 0,
                system_api_instructions: 0,
                kind: MessageKind::Query,
                method: method.to_string(),
            };
        }
        self.run_query(caller.as_slice().to_vec(), method, arg, MessageKind::Query)
    }

    fn query_export(&self, method: &str) -> Option<String> {
        [format!("canister_query {method}"), format!("canister_composite_query {method}")]
            .into_iter()
            .find(|e| self.rt.has_func(e))
    }

    fn run_query(&mut self, caller: Vec<u8>, method: &str, arg: &[u8], kind: MessageKind) -> CallResult {
        let Some(export) = self.query_export(method) else {
            return CallResult {
                reply: Err(reject(DESTINATION_INVALID, format!("Canister {} has no query method '{method}'", self.canister_id()))),
                instructions: 0,
                stable_bytes_written: 0,
                stable_bytes_read: 0,
                system_api_instructions: 0,
                kind,
                method: method.to_string(),
            };
        };
        let limit = if kind == MessageKind::Query { self.limits.query } else { self.limits.update };
        let mut msg = Message::new(kind, method, caller, arg.to_vec());
        if kind == MessageKind::Query {
            let c = &self.rt.data().canister;
            msg.data_certificate = Some(self.subnet.data_certificate(&c.canister_id, &c.certified_data, c.time));
        }
        let exec = self.rt.run(&Entry::Export(export), msg, limit, true);
        let reply = match (&exec.trap, &exec.msg.response) {
            (Some(t), _) => Err(reject(CANISTER_ERROR, format!("Error from Canister {}: {t}", self.canister_id()))),
            (None, Some(Response::Reply(data))) => Ok(data.clone()),
            (None, Some(Response::Reject(m))) => Err(reject(CANISTER_REJECT, m.clone())),
            (None, None) => Err(self.no_reply()),
        };
        self.record(&exec, reply.clone());
        let mut r = self.records[self.records.len() - 1].clone();
        r.reply = reply;
        r
    }

    fn too_large(&self, len: usize) -> Reject {
        reject(
            CANISTER_REJECT,
            format!("ic-host: argument of {len} bytes exceeds the ingress limit of {MAX_INGRESS_ARG} bytes (2 MiB)"),
        )
    }

    fn no_reply(&self) -> Reject {
        reject(CANISTER_ERROR, format!("Canister {} did not reply to the call", self.canister_id()))
    }

    /// Candid-typed [`Host::update`].
    pub fn update_candid<A, R>(&mut self, caller: Principal, method: &str, args: A) -> Result<R, Reject>
    where
        A: ArgumentEncoder,
        R: for<'a> ArgumentDecoder<'a>,
    {
        let arg = candid::encode_args(args).map_err(|e| reject(HOST_ERROR, format!("candid encode: {e}")))?;
        let bytes = self.update(caller, method, &arg).reply?;
        candid::decode_args(&bytes).map_err(|e| reject(HOST_ERROR, format!("candid decode of '{method}' reply: {e}")))
    }

    /// Candid-typed [`Host::query`].
    pub fn query_candid<A, R>(&mut self, caller: Principal, method: &str, args: A) -> Result<R, Reject>
    where
        A: ArgumentEncoder,
        R: for<'a> ArgumentDecoder<'a>,
    {
        let arg = candid::encode_args(args).map_err(|e| reject(HOST_ERROR, format!("candid encode: {e}")))?;
        let bytes = self.query(caller, method, &arg).reply?;
        candid::decode_args(&bytes).map_err(|e| reject(HOST_ERROR, format!("candid decode of '{method}' reply: {e}")))
    }

    // ----- timers -----

    /// Fires the global timer if it is due (repeatedly, while the canister
    /// keeps setting it to a due time) and drains the message queue. Returns
    /// every message executed.
    pub fn tick(&mut self) -> Vec<CallResult> {
        self.records.clear();
        for _ in 0..MAX_TIMER_FIRINGS_PER_TICK {
            let c = &self.rt.data().canister;
            if c.global_timer == 0 || c.global_timer > c.time {
                break;
            }
            // One-shot: deactivated as it fires (not undone by a trap).
            self.rt.canister().global_timer = 0;
            if !self.rt.has_func("canister_global_timer") {
                break;
            }
            let ctx = self.new_context(Vec::new(), Origin::System);
            let msg = Message::new(MessageKind::GlobalTimer, "canister_global_timer", Vec::new(), Vec::new());
            let exec = self.rt.run(&Entry::Export("canister_global_timer".into()), msg, self.limits.update, false);
            self.finish(ctx, exec);
            self.drain();
        }
        self.records.clone()
    }

    // ----- upgrade -----

    /// Upgrades to `new_wasm`: `canister_pre_upgrade` on the old instance,
    /// fresh instance of the new module (heap gone, stable memory kept),
    /// `canister_post_upgrade(arg)`. If anything fails the canister is left
    /// exactly as before (old module, heap and stable memory).
    pub fn upgrade(&mut self, new_wasm: &[u8], arg: &[u8]) -> Result<UpgradeCost, Reject> {
        self.records.clear();
        let module = engine::load_module(new_wasm)
            .map_err(|e| reject(CANISTER_ERROR, format!("ic-host: cannot load the new module: {e:#}")))?;
        let installer = self.installer();
        let budget = self.limits.install;
        let snap = self.rt.begin();
        let mut pre = 0;
        if self.rt.has_func("canister_pre_upgrade") {
            let msg = Message::new(MessageKind::PreUpgrade, "canister_pre_upgrade", installer.clone(), Vec::new());
            let exec = self.rt.execute(&Entry::Export("canister_pre_upgrade".into()), msg, budget);
            pre = exec.instructions;
            self.record(&exec, Ok(Vec::new()));
            if let Some(t) = exec.trap {
                self.rt.rollback(snap);
                return Err(reject(CANISTER_ERROR, format!("pre_upgrade trapped: {t}")));
            }
        }
        // Move the canister state (stable memory with its open journal) into a fresh instance.
        let mut canister = self.take_canister();
        canister.global_timer = 0; // the IC deactivates the timer on upgrade
        canister.canister_version += 1;
        let logs = std::mem::take(&mut self.rt.store.data_mut().logs);
        let metering = self.rt.data().metering;
        let data = StoreData { canister, msg: Message::new(MessageKind::Init, "", Vec::new(), Vec::new()), logs, metering };
        let mut new_rt = match Runtime::instantiate(module, data, budget.saturating_sub(pre)) {
            Ok(rt) => rt,
            Err(failed) => {
                let (e, data) = *failed;
                self.put_back(data);
                self.rt.rollback(snap);
                return Err(reject(CANISTER_ERROR, format!("ic-host: cannot instantiate the new module: {e:#}")));
            }
        };
        let mut post = 0;
        if new_rt.has_func("canister_post_upgrade") {
            let msg = Message::new(MessageKind::PostUpgrade, "canister_post_upgrade", installer, arg.to_vec());
            let exec = new_rt.execute(&Entry::Export("canister_post_upgrade".into()), msg, budget.saturating_sub(pre));
            post = exec.instructions;
            self.record(&exec, Ok(Vec::new()));
            if let Some(t) = exec.trap {
                let data = new_rt.store.into_data();
                self.put_back(data);
                self.rt.rollback(snap);
                return Err(reject(CANISTER_ERROR, format!("post_upgrade trapped: {t}")));
            }
        }
        new_rt.commit();
        self.rt = new_rt;
        Ok(UpgradeCost { instructions: pre + post, pre_upgrade: pre, post_upgrade: post })
    }

    fn take_canister(&mut self) -> CanisterState {
        let c = self.rt.canister();
        let placeholder = CanisterState {
            canister_id: c.canister_id,
            controllers: Vec::new(),
            stable: StableMemory::default(),
            time: c.time,
            global_timer: 0,
            certified_data: Vec::new(),
            canister_version: 0,
            cycle_balance: 0,
        };
        std::mem::replace(c, placeholder)
    }

    /// Returns state moved out by [`Host::take_canister`] (fields the
    /// snapshot covers are restored by the subsequent rollback).
    fn put_back(&mut self, data: StoreData) {
        let d = self.rt.store.data_mut();
        d.canister = data.canister;
        d.logs = data.logs;
    }

    // ----- persistence -----

    /// Saves stable memory, time, controllers, timer, certified data and the
    /// module hash to `path` (atomically).
    pub fn save_state(&self, path: &Path) -> Result<()> {
        persist::save(path, &self.rt.data().canister, &self.rt.module.wasm_hash)
    }

    /// Loads a state saved by [`Host::save_state`] onto `wasm`, as if the
    /// canister had been upgraded onto that stable memory: fresh instance,
    /// then `canister_post_upgrade` with an empty argument (if exported).
    pub fn load_state(path: &Path, wasm: &[u8]) -> Result<Host> {
        let (canister, _saved_hash) = persist::load(path)?;
        let mut host = Self::instantiate(wasm, canister)?;
        if host.rt.has_func("canister_post_upgrade") {
            let installer = host.installer();
            let msg = Message::new(MessageKind::PostUpgrade, "canister_post_upgrade", installer, Vec::new());
            let exec = host.rt.run(&Entry::Export("canister_post_upgrade".into()), msg, host.limits.install, false);
            host.record(&exec, Ok(Vec::new()));
            if let Some(t) = exec.trap {
                return Err(anyhow!("canister_post_upgrade trapped while loading {}: {t}", path.display()));
            }
        }
        Ok(host)
    }

    // ----- internals: call contexts -----

    fn new_context(&mut self, caller: Vec<u8>, origin: Origin) -> CtxId {
        let id = self.next_ctx;
        self.next_ctx += 1;
        self.contexts.insert(id, CallContext { caller, origin, outstanding: 0, responded: false, instructions: 0 });
        id
    }

    fn record(&mut self, exec: &Exec, reply: Result<Vec<u8>, Reject>) {
        self.records.push(CallResult {
            reply,
            instructions: exec.instructions,
            stable_bytes_written: exec.msg.stable_written,
            stable_bytes_read: exec.msg.stable_read,
            system_api_instructions: exec.msg.system_api_instructions,
            kind: exec.msg.kind,
            method: exec.msg.method.clone(),
        });
    }

    fn trap_reject(&self, trap: &str) -> Reject {
        reject(CANISTER_ERROR, format!("Error from Canister {}: {trap}", self.canister_id()))
    }

    /// Applies the effects of an executed (and already committed or rolled
    /// back) message of call context `ctx`.
    fn finish(&mut self, ctx: CtxId, exec: Exec) {
        let own_id = self.canister_id();
        let summary = match (&exec.trap, &exec.msg.response) {
            (Some(t), _) => Err(self.trap_reject(t)),
            (None, Some(Response::Reply(d))) => Ok(d.clone()),
            (None, Some(Response::Reject(m))) => Err(reject(CANISTER_REJECT, m.clone())),
            (None, None) => Ok(Vec::new()),
        };
        self.record(&exec, summary);
        let Exec { trap, instructions, msg } = exec;
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.instructions += instructions;
        }
        if trap.is_none() {
            for call in msg.performed_calls {
                if let Some(c) = self.contexts.get_mut(&ctx) {
                    c.outstanding += 1;
                }
                if call.callee == own_id.as_slice() {
                    self.queue.push_back(Queued::Request {
                        ctx,
                        callbacks: call.callbacks,
                        method: call.method,
                        arg: call.arg,
                    });
                } else if let Some(r) = management::call(&call.callee, &call.method, &call.arg) {
                    let response = r.map_err(|m| reject(CANISTER_REJECT, m));
                    self.queue.push_back(Queued::Response { ctx, callbacks: call.callbacks, response });
                } else {
                    let callee = Principal::try_from_slice(&call.callee)
                        .map(|p| p.to_text())
                        .unwrap_or_else(|_| format!("0x{}", engine::hex(&call.callee)));
                    self.queue.push_back(Queued::Response {
                        ctx,
                        callbacks: call.callbacks,
                        response: Err(reject(
                            DESTINATION_INVALID,
                            format!("ic-host: Canister {callee} not found (only calls to the canister itself are supported)"),
                        )),
                    });
                }
            }
            match msg.response {
                Some(Response::Reply(d)) => self.respond(ctx, Ok(d)),
                Some(Response::Reject(m)) => self.respond(ctx, Err(reject(CANISTER_REJECT, m))),
                None => {}
            }
        }
        let Some(c) = self.contexts.get(&ctx) else { return };
        if c.outstanding == 0 {
            if !c.responded {
                let r = match &trap {
                    Some(t) => self.trap_reject(t),
                    None => self.no_reply(),
                };
                self.respond(ctx, Err(r));
            }
            self.contexts.remove(&ctx);
        }
    }

    fn respond(&mut self, ctx: CtxId, response: Result<Vec<u8>, Reject>) {
        let Some(c) = self.contexts.get_mut(&ctx) else { return };
        if c.responded {
            return;
        }
        c.responded = true;
        match &c.origin {
            Origin::Ingress => {
                self.ingress_results.insert(ctx, response);
            }
            Origin::Call { ctx: parent, callbacks } => {
                let (parent, callbacks) = (*parent, *callbacks);
                self.queue.push_back(Queued::Response { ctx: parent, callbacks, response });
            }
            Origin::System => {}
        }
    }

    /// Runs queued requests and responses until the queue is empty.
    fn drain(&mut self) {
        let mut processed = 0;
        while let Some(item) = self.queue.pop_front() {
            processed += 1;
            if processed > MAX_MESSAGES_PER_DRAIN {
                self.abort_all(format!(
                    "ic-host: more than {MAX_MESSAGES_PER_DRAIN} messages in one drain (self-call loop?); aborted"
                ));
                return;
            }
            match item {
                Queued::Request { ctx, callbacks, method, arg } => self.deliver_request(ctx, callbacks, method, arg),
                Queued::Response { ctx, callbacks, response } => self.deliver_response(ctx, callbacks, response),
            }
        }
    }

    fn abort_all(&mut self, why: String) {
        self.queue.clear();
        for (id, c) in self.contexts.drain() {
            if matches!(c.origin, Origin::Ingress) && !c.responded {
                self.ingress_results.insert(id, Err(reject(SYS_UNKNOWN, why.clone())));
            }
        }
        self.rt.store.data_mut().log(why);
    }

    fn deliver_request(&mut self, from: CtxId, callbacks: Callbacks, method: String, arg: Vec<u8>) {
        let own = self.canister_id().as_slice().to_vec();
        let ctx = self.new_context(own.clone(), Origin::Call { ctx: from, callbacks });
        let export = format!("canister_update {method}");
        if !self.rt.has_func(&export) {
            let text = if self.query_export(&method).is_some() {
                // Replicated query from a canister: run it, discard changes.
                let r = self.run_query(own, &method, &arg, MessageKind::ReplicatedQuery);
                self.respond(ctx, r.reply);
                self.contexts.remove(&ctx);
                return;
            } else {
                format!("Canister {} has no update method '{method}'", self.canister_id())
            };
            self.respond(ctx, Err(reject(DESTINATION_INVALID, text)));
            self.contexts.remove(&ctx);
            return;
        }
        let msg = Message::new(MessageKind::Update, &method, own, arg);
        let exec = self.rt.run(&Entry::Export(export), msg, self.limits.update, false);
        self.finish(ctx, exec);
    }

    fn deliver_response(&mut self, ctx: CtxId, callbacks: Callbacks, response: Result<Vec<u8>, Reject>) {
        let Some(c) = self.contexts.get_mut(&ctx) else { return };
        c.outstanding = c.outstanding.saturating_sub(1);
        let (caller, responded, spent) = (c.caller.clone(), c.responded, c.instructions);
        let (kind, entry, arg, rej) = match response {
            Ok(data) => (MessageKind::ReplyCallback, Entry::Callback(callbacks.reply.0, callbacks.reply.1), data, None),
            Err(r) => (
                MessageKind::RejectCallback,
                Entry::Callback(callbacks.reject.0, callbacks.reject.1),
                Vec::new(),
                Some((r.code, r.message)),
            ),
        };
        let mut msg = Message::new(kind, "", caller.clone(), arg);
        msg.reject = rej;
        msg.can_respond = !responded;
        msg.context_instructions = spent;
        let exec = self.rt.run(&entry, msg, self.limits.update, false);
        let mut cleanup = None;
        if exec.trap.is_some() {
            if let Some((fun, env)) = callbacks.cleanup {
                let mut cmsg = Message::new(MessageKind::Cleanup, "", caller, Vec::new());
                cmsg.context_instructions = spent + exec.instructions;
                cleanup = Some(self.rt.run(&Entry::Callback(fun, env), cmsg, self.limits.update, false));
            }
        }
        // Record the cleanup right after its callback; `finish` records the callback.
        let cleanup_instructions = cleanup.as_ref().map_or(0, |c| c.instructions);
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.instructions += cleanup_instructions;
        }
        self.finish(ctx, exec);
        if let Some(cleanup) = cleanup {
            let summary = match &cleanup.trap {
                Some(t) => Err(self.trap_reject(t)),
                None => Ok(Vec::new()),
            };
            self.record(&cleanup, summary);
        }
    }
}
