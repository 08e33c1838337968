//! The public [`Host`]: canisters with IC message semantics, in RAM or in a directory.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::Duration;

use candid::utils::{ArgumentDecoder, ArgumentEncoder};
use candid::{CandidType, Principal};
use serde::Deserialize;

use crate::canister::{Canister, Delta, Entry, Exec};
use crate::certify::SubnetKey;
use crate::metering::PageLimits;
use crate::imports::MAX_PAYLOAD;
use crate::network::{CallContext, CtxId, Origin, Queued};
use crate::stable::DEFAULT_MAX_STABLE_PAGES;
use crate::state::{CanisterStatus, Message, MessageKind, Response};
use crate::store::DirStore;

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
/// Cycles of a canister created without an amount (`provisional_create_canister_with_cycles`).
pub const DEFAULT_CYCLES: u128 = 100_000_000_000_000;

/// A rejected call: IC reject code + message, and the interface specification's error
/// code where one applies (the HTTP interface passes it on as `error_code`).
#[derive(Debug, Clone, PartialEq, Eq, CandidType, Deserialize)]
pub struct Reject {
    pub code: u32,
    pub message: String,
    pub error_code: Option<ErrorCode>,
}

/// The error codes of the interface specification that the host gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, CandidType, Deserialize)]
pub enum ErrorCode {
    CanisterNotFound,
    CanisterMethodNotFound,
    CanisterWasmModuleNotFound,
    CanisterStopped,
    CanisterStopping,
    CanisterCalledTrap,
    CanisterRejectedMessage,
    CanisterInvalidWasm,
    CanisterInvalidController,
}

impl ErrorCode {
    /// As the specification writes it (`IC0301`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::CanisterNotFound => "IC0301",
            ErrorCode::CanisterMethodNotFound => "IC0536",
            ErrorCode::CanisterWasmModuleNotFound => "IC0537",
            ErrorCode::CanisterStopped => "IC0508",
            ErrorCode::CanisterStopping => "IC0509",
            ErrorCode::CanisterCalledTrap => "IC0503",
            ErrorCode::CanisterRejectedMessage => "IC0516",
            ErrorCode::CanisterInvalidWasm => "IC0505",
            ErrorCode::CanisterInvalidController => "IC0512",
        }
    }
}

impl Reject {
    pub fn new(code: u32, message: impl Into<String>) -> Reject {
        Reject { code, message: message.into(), error_code: None }
    }

    pub(crate) fn with(mut self, error_code: ErrorCode) -> Reject {
        self.error_code = Some(error_code);
        self
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "reject code {}: {}", self.code, self.message)
    }
}

impl std::error::Error for Reject {}

pub(crate) fn reject(code: u32, message: impl Into<String>) -> Reject {
    Reject::new(code, message)
}

/// The outcome of one executed message.
#[derive(Debug, Clone)]
pub struct CallResult {
    /// For [`Host::update`]/[`Host::query`]: the response of the call (after
    /// all calls it triggered ran). For messages reported by
    /// [`Host::tick`]/[`Host::last_messages`]: what this message did
    /// (`Ok(reply)`, `Ok(empty)` if it committed without responding, `Err`
    /// if it rejected or trapped).
    pub reply: Result<Vec<u8>, Reject>,
    /// The canister that ran the message.
    pub canister: Principal,
    /// Instructions spent by this message, counted as the IC counts them (see
    /// [`crate::metering`]): Wasm operators by their IC weight, system API calls and
    /// newly dirtied stable pages included.
    pub instructions: u64,
    /// Bytes written to stable memory by this message (also when rolled back).
    pub stable_bytes_written: u64,
    /// Bytes read from stable memory by this message.
    pub stable_bytes_read: u64,
    /// 4 KiB pages of stable memory this message wrote (also when rolled back).
    pub stable_pages_dirtied: u64,
    /// 4 KiB pages of stable memory this message read or wrote.
    pub stable_pages_accessed: u64,
    /// 4 KiB pages of the Wasm heap this message changed.
    pub heap_pages_dirtied: u64,
    /// Part of `instructions` charged by system API calls (their overhead and bytes,
    /// and 1,000 per stable page dirtied for the first time).
    pub system_api_instructions: u64,
    pub kind: MessageKind,
    /// Method name (exported entry point name for system methods).
    pub method: String,
}

impl CallResult {
    fn refused(canister: Principal, kind: MessageKind, method: &str, r: Reject) -> CallResult {
        CallResult {
            reply: Err(r),
            canister,
            instructions: 0,
            stable_bytes_written: 0,
            stable_bytes_read: 0,
            stable_pages_dirtied: 0,
            stable_pages_accessed: 0,
            heap_pages_dirtied: 0,
            system_api_instructions: 0,
            kind,
            method: method.to_string(),
        }
    }
}

/// Instructions spent by an upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeCost {
    /// `pre_upgrade + compilation + post_upgrade`: what the IC counts for the
    /// `install_code` message (its limit is [`Limit::Install`]).
    pub instructions: u64,
    pub pre_upgrade: u64,
    /// Compiling the new module (see [`crate::metering::compilation_cost`]).
    pub compilation: u64,
    pub post_upgrade: u64,
}

/// Per-message instruction limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Update calls, timers, callbacks (IC: 40 B).
    Update,
    /// Queries, also when called as updates (replicated queries) (IC: 5 B).
    Query,
    /// An install (compilation + `canister_init`) or an upgrade (`pre_upgrade` +
    /// compilation + `post_upgrade`) (IC: 300 B).
    Install,
    /// `canister_inspect_message` (IC: 200 M).
    InspectMessage,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub update: u64,
    pub query: u64,
    pub install: u64,
    pub inspect: u64,
    /// 4 KiB stable pages one message may dirty / access.
    pub dirty_pages: PageLimits,
    pub accessed_pages: PageLimits,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            update: 40_000_000_000,
            query: 5_000_000_000,
            install: 300_000_000_000,
            inspect: 200_000_000,
            dirty_pages: crate::metering::DIRTY_PAGE_LIMITS,
            accessed_pages: crate::metering::ACCESSED_PAGE_LIMITS,
        }
    }
}

impl Limits {
    /// Sets `msg`'s stable page limits for its kind.
    pub fn apply_pages(&self, msg: &mut Message) {
        msg.dirty_page_limit = self.dirty_pages.for_kind(msg.kind);
        msg.accessed_page_limit = self.accessed_pages.for_kind(msg.kind);
    }
}

/// Settings of the canister [`Host::with_config`] / [`Host::install_default`] create.
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub canister_id: Principal,
    pub controllers: Vec<Principal>,
    /// Initial time, nanoseconds since the epoch (a new host's clock).
    pub time_ns: u64,
    pub max_stable_pages: u64,
    pub cycle_balance: u128,
}

/// The controller installed by [`Host::new`] (also the caller of init/upgrade).
pub const DEFAULT_CONTROLLER: Principal = Principal::from_slice(&[0xC0, 0x47, 0x7B, 0x11, 0x01]);
/// The canister id used by [`Host::new`] (`rrkah-fqaaa-aaaaa-aaaaq-cai`): the first id
/// a host hands out.
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
            cycle_balance: DEFAULT_CYCLES,
        }
    }
}

/// The id of the `index`-th canister (the IC's canister id format).
pub fn canister_id_of(index: u64) -> Principal {
    let mut b = [0u8; 10];
    b[..8].copy_from_slice(&index.to_be_bytes());
    b[8] = 1;
    b[9] = 1;
    Principal::from_slice(&b)
}

/// Canisters running in-process with IC message semantics: in RAM ([`Host::new`],
/// [`Host::in_memory`]) or kept in a directory ([`Host::open`]), where every committed
/// message is durable before its reply is handed out.
///
/// The single-canister methods ([`Host::update`], [`Host::query`], [`Host::upgrade`],
/// [`Host::controllers`], …) act on the *default canister*: the one [`Host::new`] or
/// [`Host::install_default`] installed (see [`Host::set_default_canister`]). The
/// `*_call` methods name the canister; calls to [`Principal::management_canister`] reach
/// the management canister.
pub struct Host {
    pub(crate) canisters: BTreeMap<Principal, Canister>,
    pub(crate) default: Option<Principal>,
    pub(crate) time: u64,
    pub(crate) next_canister: u64,
    pub(crate) contexts: BTreeMap<CtxId, CallContext>,
    pub(crate) next_ctx: CtxId,
    pub(crate) queue: VecDeque<Queued>,
    pub(crate) pending_stops: BTreeMap<Principal, Vec<CtxId>>,
    pub(crate) ingress_results: HashMap<CtxId, Result<Vec<u8>, Reject>>,
    pub(crate) records: Vec<CallResult>,
    pub(crate) limits: Limits,
    /// `None`: everything in RAM.
    pub(crate) store: Option<DirStore>,
    /// Pages committed by the current step (logged at its end).
    pub(crate) step: Vec<(Principal, Delta)>,
    /// Set when the store failed: nothing more is done (reopen to recover).
    pub(crate) failed: Option<String>,
    /// The subnet's root key: certifies state for queries (see [`crate::certify`]); a
    /// host kept in a directory keeps it there.
    pub(crate) subnet: SubnetKey,
    /// Test fault injection: callbacks of a canister to let run before one traps (see
    /// [`Host::inject_callback_trap`]). Not persisted.
    pub(crate) callback_traps: BTreeMap<Principal, u32>,
}

impl fmt::Debug for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Host")
            .field("canisters", &self.canisters.keys().map(|p| p.to_text()).collect::<Vec<_>>())
            .field("dir", &self.store.as_ref().map(|s| s.dir.clone()))
            .finish_non_exhaustive()
    }
}

impl Host {
    /// Installs `wasm` (running `canister_init` with `init_arg`) in a new in-memory host
    /// with the default [`HostConfig`].
    pub fn new(wasm: &[u8], init_arg: &[u8]) -> anyhow::Result<Host> {
        Self::with_config(wasm, init_arg, HostConfig::default())
    }

    /// Installs `wasm` with explicit settings in a new in-memory host. Fails if the
    /// module does not compile/link or `canister_init` traps.
    pub fn with_config(wasm: &[u8], init_arg: &[u8], config: HostConfig) -> anyhow::Result<Host> {
        let mut host = Self::in_memory();
        host.time = config.time_ns;
        host.install_default(wasm, init_arg, config)?;
        Ok(host)
    }

    /// An in-memory host without canisters.
    pub fn in_memory() -> Host {
        Host {
            canisters: BTreeMap::new(),
            default: None,
            time: DEFAULT_TIME_NS,
            next_canister: 1,
            contexts: BTreeMap::new(),
            next_ctx: 0,
            queue: VecDeque::new(),
            pending_stops: BTreeMap::new(),
            ingress_results: HashMap::new(),
            records: Vec::new(),
            limits: Limits::default(),
            store: None,
            step: Vec::new(),
            failed: None,
            subnet: SubnetKey::generate(),
            callback_traps: BTreeMap::new(),
        }
    }

    /// Lets the next `after` reply or reject callbacks of `canister` run as usual, then
    /// makes the one after them trap once it has run, as a callback that fails at its
    /// very end would: everything it did is rolled back, its cleanup callback runs, its
    /// call context's caller gets the trap's reject. For tests of what a canister leaves
    /// behind when a callback traps.
    pub fn inject_callback_trap(&mut self, canister: Principal, after: u32) {
        self.callback_traps.insert(canister, after);
    }

    /// Creates the canister `config` describes, installs `wasm` in it and makes it the
    /// default canister.
    pub fn install_default(&mut self, wasm: &[u8], init_arg: &[u8], config: HostConfig) -> anyhow::Result<Principal> {
        let module = crate::engine::load_module(wasm)?;
        let id = match self.canisters.get(&config.canister_id) {
            Some(c) if c.module().is_some() => anyhow::bail!("canister {} already exists", config.canister_id),
            Some(_) => config.canister_id,
            None => self.create(Some(config.canister_id), config.controllers.clone(), config.cycle_balance)?,
        };
        if let Some(c) = self.canisters.get_mut(&id) {
            c.state_mut().stable.max_pages = config.max_stable_pages;
        }
        if self.default.is_none() {
            self.default = Some(id);
        }
        self.commit_step();
        self.save_module(&module.wasm_hash, wasm)?;
        let installer = config.controllers.first().copied().unwrap_or(Principal::anonymous());
        let r = self.install_fresh(id, &module, init_arg, installer, false);
        self.commit_step();
        r.map_err(|e| anyhow::anyhow!("{}", e.message))?;
        self.check_failed().map_err(|e| anyhow::anyhow!("{}", e.message))?;
        Ok(id)
    }

    // ----- accessors -----

    /// The default canister's id (the management canister's if there is none).
    pub fn canister_id(&self) -> Principal {
        self.default.unwrap_or(Principal::management_canister())
    }

    pub fn default_canister(&self) -> Option<Principal> {
        self.default
    }

    pub fn set_default_canister(&mut self, id: Principal) {
        self.default = Some(id);
        self.commit_meta();
    }

    /// Every canister's id, in order.
    pub fn canister_ids(&self) -> Vec<Principal> {
        self.canisters.keys().copied().collect()
    }

    pub fn canister_exists(&self, id: Principal) -> bool {
        self.canisters.contains_key(&id)
    }

    /// `canister_status` of `id` as the management canister answers it (no permission check).
    pub fn canister_status(&self, id: Principal) -> Option<ic_management_canister_types::CanisterStatusResult> {
        self.canisters.contains_key(&id).then(|| self.status_of(id))
    }

    fn default_canister_ref(&self) -> Option<&Canister> {
        self.default.and_then(|d| self.canisters.get(&d))
    }

    fn default_canister_mut(&mut self) -> Option<&mut Canister> {
        self.default.and_then(|d| self.canisters.get_mut(&d))
    }

    /// Current time in nanoseconds since the epoch.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// Sets the time (nanoseconds). Does not fire timers; see [`Host::tick`].
    pub fn set_time(&mut self, ns: u64) {
        self.time = ns;
    }

    /// Advances time by `d`, then runs [`Host::tick`].
    pub fn advance_time(&mut self, d: Duration) -> Vec<CallResult> {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        self.time = self.time.saturating_add(ns);
        self.tick()
    }

    /// The default canister's global timer deadline (0 = inactive).
    pub fn global_timer(&self) -> u64 {
        self.default_canister_ref().map_or(0, |c| c.state().global_timer)
    }

    /// The default canister's controllers.
    pub fn controllers(&self) -> &[Principal] {
        self.default_canister_ref().map_or(&[], |c| &c.state().controllers)
    }

    /// Sets the default canister's controllers directly (no permission check).
    pub fn set_controllers(&mut self, controllers: Vec<Principal>) {
        if let Some(c) = self.default_canister_mut() {
            c.state_mut().controllers = controllers;
        }
        self.commit_meta();
    }

    pub fn set_instruction_limit(&mut self, kind: Limit, n: u64) {
        match kind {
            Limit::Update => self.limits.update = n,
            Limit::Query => self.limits.query = n,
            Limit::Install => self.limits.install = n,
            Limit::InspectMessage => self.limits.inspect = n,
        }
    }

    pub fn instruction_limit(&self, kind: Limit) -> u64 {
        match kind {
            Limit::Update => self.limits.update,
            Limit::Query => self.limits.query,
            Limit::Install => self.limits.install,
            Limit::InspectMessage => self.limits.inspect,
        }
    }

    /// Sets the limits on 4 KiB stable pages one message may dirty and access (the
    /// IC's by default: [`crate::metering::DIRTY_PAGE_LIMITS`],
    /// [`crate::metering::ACCESSED_PAGE_LIMITS`]), from the next message on.
    pub fn set_stable_page_limits(&mut self, dirty: PageLimits, accessed: PageLimits) {
        self.limits.dirty_pages = dirty;
        self.limits.accessed_pages = accessed;
    }

    /// The limits on dirtied and accessed stable pages per message.
    pub fn stable_page_limits(&self) -> (PageLimits, PageLimits) {
        (self.limits.dirty_pages, self.limits.accessed_pages)
    }

    /// The default canister's stable memory size in bytes (pages * 64 KiB).
    pub fn stable_size_bytes(&self) -> u64 {
        self.default_canister_ref().map_or(0, |c| c.state().stable.size_bytes())
    }

    /// Reads the default canister's stable memory directly (inspection).
    pub fn read_stable(&self, offset: u64, len: usize) -> Option<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.default_canister_ref()?.state().stable.peek(offset, &mut buf).ok()?;
        Some(buf)
    }

    /// Size of the default canister's Wasm memory in bytes (its instance's, as it is now).
    pub fn heap_size_bytes(&self) -> u64 {
        self.default_canister_ref().map_or(0, |c| c.memory_size() as u64)
    }

    /// Certified data last set by the default canister.
    pub fn certified_data(&self) -> &[u8] {
        self.default_canister_ref().map_or(&[], |c| &c.state().certified_data)
    }

    /// The default canister's `debug_print` output (and `[TRAP]: ...` lines), oldest first.
    pub fn logs(&self) -> &[String] {
        self.default_canister_ref().map_or(&[], |c| &c.data().logs)
    }

    /// `id`'s log lines.
    pub fn canister_logs(&self, id: Principal) -> &[String] {
        self.canisters.get(&id).map_or(&[], |c| &c.data().logs)
    }

    pub fn clear_logs(&mut self) {
        for c in self.canisters.values_mut() {
            c.data_mut().logs.clear();
        }
    }

    /// Every message executed by the most recent `update`/`query`/`tick`/
    /// `advance_time`/`upgrade` call, in execution order.
    pub fn last_messages(&self) -> &[CallResult] {
        &self.records
    }

    /// sha256 of the default canister's Wasm (zeros if it has none).
    pub fn module_hash(&self) -> [u8; 32] {
        self.default_canister_ref().and_then(|c| c.module()).map_or([0; 32], |m| m.wasm_hash)
    }

    /// sha256 of `id`'s Wasm.
    pub fn canister_module_hash(&self, id: Principal) -> Option<[u8; 32]> {
        self.canisters.get(&id)?.module().map(|m| m.wasm_hash)
    }

    /// `id`'s controllers.
    pub fn canister_controllers(&self, id: Principal) -> Option<&[Principal]> {
        self.canisters.get(&id).map(|c| &c.state().controllers[..])
    }

    /// Certified data last set by `id`.
    /// The root key (DER) that verifies this host's certificates.
    pub fn root_key(&self) -> Vec<u8> {
        self.subnet.public_key_der()
    }

    /// The subnet key, e.g. to sign `read_state` answers.
    pub fn subnet_key(&self) -> &SubnetKey {
        &self.subnet
    }

    /// Uses `key` from now on. A host kept in a directory keeps its own key there; this
    /// is for in-memory hosts that must share a key.
    pub fn set_subnet_key(&mut self, key: SubnetKey) {
        self.subnet = key;
    }

    pub fn canister_certified_data(&self, id: Principal) -> Option<&[u8]> {
        self.canisters.get(&id).map(|c| &c.state().certified_data[..])
    }

    /// A custom section of `id`'s Wasm by its full name (canister metadata is in
    /// `icp:public <name>` / `icp:private <name>` sections, e.g. `icp:public candid:service`).
    pub fn canister_custom_section(&self, id: Principal, name: &str) -> Option<&[u8]> {
        let m = self.canisters.get(&id)?.module()?;
        m.custom_sections.iter().find(|(n, _)| n == name).map(|(_, d)| &d[..])
    }

    /// `id`'s cycle balance.
    pub fn cycle_balance(&self, id: Principal) -> Option<u128> {
        self.canisters.get(&id).map(|c| c.state().cycle_balance)
    }

    /// `id`'s status.
    pub fn status(&self, id: Principal) -> Option<CanisterStatus> {
        self.canisters.get(&id).map(|c| c.state().status)
    }

    // ----- calls -----

    /// An update call from outside (ingress) by `caller` to the default canister. Runs
    /// `canister_inspect_message` first if exported, then the method, then every call
    /// it causes until the queue is empty.
    pub fn update(&mut self, caller: Principal, method: &str, arg: &[u8]) -> CallResult {
        self.update_call(self.canister_id(), caller, method, arg)
    }

    /// A query call to the default canister: runs `canister_query <method>` and discards all changes.
    pub fn query(&mut self, caller: Principal, method: &str, arg: &[u8]) -> CallResult {
        self.query_call(self.canister_id(), caller, method, arg)
    }

    pub(crate) fn check_failed(&self) -> Result<(), Reject> {
        match &self.failed {
            Some(why) => Err(reject(SYS_FATAL, format!("ic-host: the state could not be written ({why}); reopen it"))),
            None => Ok(()),
        }
    }

    /// An ingress update call to `canister` (which may be the management canister).
    pub fn update_call(&mut self, canister: Principal, caller: Principal, method: &str, arg: &[u8]) -> CallResult {
        self.records.clear();
        let refused = |r| CallResult::refused(canister, MessageKind::Update, method, r);
        if let Err(r) = self.check_failed() {
            return refused(r);
        }
        if arg.len() > MAX_INGRESS_ARG {
            return refused(too_large(arg.len()));
        }
        let caller_bytes = caller.as_slice().to_vec();
        let ctx;
        let mut result;
        if canister == Principal::management_canister() {
            ctx = self.new_context(canister, caller_bytes, Origin::Ingress, 0);
            self.management_call(ctx, caller, method, arg);
            result = refused(reject(SYS_UNKNOWN, ""));
        } else {
            if let Err(r) = self.callable(canister) {
                return refused(r);
            }
            let export = format!("canister_update {method}");
            if !self.canisters[&canister].has_func(&export) {
                if self.query_export(canister, method).is_some() {
                    return self.run_query(canister, caller_bytes, method, arg, MessageKind::ReplicatedQuery);
                }
                return refused(reject(DESTINATION_INVALID, format!("Canister {canister} has no update method '{method}'")).with(ErrorCode::CanisterMethodNotFound));
            }
            if self.canisters[&canister].has_func("canister_inspect_message") {
                let msg = Message::new(MessageKind::InspectMessage, method, caller_bytes.clone(), arg.to_vec());
                let exec = self.run(canister, &Entry::Export("canister_inspect_message".into()), msg, self.limits.inspect, true);
                let verdict = match &exec.trap {
                    Some(t) => Err(self.trap_reject(canister, t)),
                    None if !exec.msg.accepted => Err(reject(
                        CANISTER_REJECT,
                        format!("Canister {canister} rejected the message (inspect_message did not accept it)"),
                    ).with(ErrorCode::CanisterRejectedMessage)),
                    None => Ok(Vec::new()),
                };
                self.record(canister, &exec, verdict.clone());
                if let Err(r) = verdict {
                    return refused(r);
                }
            }
            ctx = self.new_context(canister, caller_bytes.clone(), Origin::Ingress, 0);
            let msg = Message::new(MessageKind::Update, method, caller_bytes, arg.to_vec());
            let exec = self.run(canister, &Entry::Export(export), msg, self.limits.update, false);
            let own = self.records.len();
            self.finish(canister, ctx, exec);
            result = self.records[own].clone();
        }
        self.commit_step();
        self.drain();
        result.reply = self
            .ingress_results
            .remove(&ctx)
            .unwrap_or_else(|| Err(reject(SYS_UNKNOWN, "ic-host: the call did not complete")));
        if let Err(r) = self.check_failed() {
            result.reply = Err(r); // not durable: not answered
        }
        result
    }

    /// A query call to `canister`: runs `canister_query <method>` and discards all changes.
    pub fn query_call(&mut self, canister: Principal, caller: Principal, method: &str, arg: &[u8]) -> CallResult {
        self.records.clear();
        let refused = |r| CallResult::refused(canister, MessageKind::Query, method, r);
        if arg.len() > MAX_INGRESS_ARG {
            return refused(too_large(arg.len()));
        }
        if let Err(r) = self.check_failed().and_then(|_| self.callable(canister)) {
            return refused(r);
        }
        self.run_query(canister, caller.as_slice().to_vec(), method, arg, MessageKind::Query)
    }

    pub(crate) fn query_export(&self, canister: Principal, method: &str) -> Option<String> {
        let c = self.canisters.get(&canister)?;
        [format!("canister_query {method}"), format!("canister_composite_query {method}")]
            .into_iter()
            .find(|e| c.has_func(e))
    }

    pub(crate) fn run_query(&mut self, canister: Principal, caller: Vec<u8>, method: &str, arg: &[u8], kind: MessageKind) -> CallResult {
        let Some(export) = self.query_export(canister, method) else {
            let r = reject(DESTINATION_INVALID, format!("Canister {canister} has no query method '{method}'")).with(ErrorCode::CanisterMethodNotFound);
            return CallResult::refused(canister, kind, method, r);
        };
        // Queries have no deterministic time slicing on the IC: replicated ones too run
        // under the query limit.
        let limit = self.limits.query;
        let mut msg = Message::new(kind, method, caller, arg.to_vec());
        if kind == MessageKind::Query {
            let data = self.canister_certified_data(canister).unwrap_or_default();
            msg.data_certificate = Some(self.subnet.data_certificate(&canister, data, self.time));
        }
        let exec = self.run(canister, &Entry::Export(export), msg, limit, true);
        let reply = match (&exec.trap, &exec.msg.response) {
            (Some(t), _) => Err(self.trap_reject(canister, t)),
            (None, Some(Response::Reply(data))) => Ok(data.clone()),
            (None, Some(Response::Reject(m))) => Err(reject(CANISTER_REJECT, m.clone())),
            (None, None) => Err(self.no_reply(canister)),
        };
        self.record(canister, &exec, reply.clone());
        let mut r = self.records[self.records.len() - 1].clone();
        r.reply = reply;
        r
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

    /// Candid-typed call of a management canister method by `caller` (ingress).
    pub fn management<A: CandidType, R: for<'a> Deserialize<'a> + CandidType>(
        &mut self,
        caller: Principal,
        method: &str,
        arg: &A,
    ) -> Result<R, Reject> {
        let arg = candid::encode_one(arg).map_err(|e| reject(HOST_ERROR, format!("candid encode: {e}")))?;
        let bytes = self.update_call(Principal::management_canister(), caller, method, &arg).reply?;
        candid::decode_one(&bytes).map_err(|e| reject(HOST_ERROR, format!("candid decode of '{method}' reply: {e}")))
    }

    // ----- timers -----

    /// Fires every due global timer (repeatedly, while canisters keep setting due
    /// times) and drains the message queue. Returns every message executed.
    pub fn tick(&mut self) -> Vec<CallResult> {
        self.records.clear();
        if self.check_failed().is_err() {
            return Vec::new();
        }
        for _ in 0..MAX_TIMER_FIRINGS_PER_TICK {
            let due: Vec<Principal> = self
                .canisters
                .iter()
                .filter(|(_, c)| {
                    let s = c.state();
                    s.status == CanisterStatus::Running && s.global_timer != 0 && s.global_timer <= self.time
                })
                .map(|(id, _)| *id)
                .collect();
            if due.is_empty() {
                break;
            }
            for id in due {
                let Some(c) = self.canisters.get_mut(&id) else { continue };
                // One-shot: deactivated as it fires (not undone by a trap).
                c.state_mut().global_timer = 0;
                if !c.has_func("canister_global_timer") {
                    continue;
                }
                let ctx = self.new_context(id, Vec::new(), Origin::System, 0);
                let msg = Message::new(MessageKind::GlobalTimer, "canister_global_timer", Vec::new(), Vec::new());
                let exec = self.run(id, &Entry::Export("canister_global_timer".into()), msg, self.limits.update, false);
                self.finish(id, ctx, exec);
                self.commit_step();
                self.drain();
            }
        }
        self.commit_meta();
        self.records.clone()
    }

    // ----- upgrade -----

    /// Upgrades the default canister to `new_wasm`: `canister_pre_upgrade` on the old
    /// instance, fresh instance of the new module (heap gone, stable memory kept),
    /// `canister_post_upgrade(arg)`. If anything fails the canister is left exactly as
    /// before (old module, heap and stable memory).
    pub fn upgrade(&mut self, new_wasm: &[u8], arg: &[u8]) -> Result<UpgradeCost, Reject> {
        self.records.clear();
        self.check_failed()?;
        let id = self.canister_id();
        let module = crate::engine::load_module(new_wasm)
            .map_err(|e| reject(CANISTER_ERROR, format!("ic-host: cannot load the new module: {e:#}")))?;
        self.save_module(&module.wasm_hash, new_wasm)?;
        let installer = self.controllers().first().copied().unwrap_or(Principal::anonymous());
        let r = self.upgrade_canister(id, &module, arg, installer, false);
        self.commit_step();
        self.check_failed()?;
        r
    }

    // ----- internals -----

    /// Executes one message of `canister`, then commits it (its pages join the step)
    /// or rolls it back (on a trap, or when `discard`).
    pub(crate) fn run(&mut self, canister: Principal, entry: &Entry, mut msg: Message, limit: u64, discard: bool) -> Exec {
        msg.time = self.time;
        self.limits.apply_pages(&mut msg);
        let mut inject = false;
        if matches!(msg.kind, MessageKind::ReplyCallback | MessageKind::RejectCallback) {
            if let Some(n) = self.callback_traps.get_mut(&canister) {
                if *n == 0 {
                    inject = true;
                    self.callback_traps.remove(&canister);
                } else {
                    *n -= 1;
                }
            }
        }
        let Some(c) = self.canisters.get_mut(&canister) else {
            let trap = Some(format!("ic-host: canister {canister} not found"));
            return Exec { trap, instructions: 0, msg, stable_dirtied: 0, stable_accessed: 0, heap_dirtied: 0 };
        };
        let mut exec = c.execute(entry, msg, limit);
        if inject && exec.trap.is_none() {
            exec.trap = Some("ic-host: trap injected at the end of this callback (Host::inject_callback_trap)".into());
        }
        if discard || exec.trap.is_some() {
            exec.heap_dirtied = c.rollback();
        } else {
            // Cycles attached to a call that was started but never performed go back.
            if let Some(call) = exec.msg.pending_call.take() {
                c.state_mut().cycle_balance += call.cycles;
            }
            let delta = c.commit();
            exec.heap_dirtied = delta.heap_dirtied;
            debug_assert!(!self.step.iter().any(|(id, _)| *id == canister), "one commit per canister per step");
            self.step.push((canister, delta));
        }
        exec
    }

    pub(crate) fn record(&mut self, canister: Principal, exec: &Exec, reply: Result<Vec<u8>, Reject>) {
        self.records.push(CallResult {
            reply,
            canister,
            instructions: exec.instructions,
            stable_bytes_written: exec.msg.stable_written,
            stable_bytes_read: exec.msg.stable_read,
            stable_pages_dirtied: exec.stable_dirtied,
            stable_pages_accessed: exec.stable_accessed,
            heap_pages_dirtied: exec.heap_dirtied,
            system_api_instructions: exec.msg.system_api_instructions,
            kind: exec.msg.kind,
            method: exec.msg.method.clone(),
        });
    }
}

fn too_large(len: usize) -> Reject {
    reject(
        CANISTER_REJECT,
        format!("ic-host: argument of {len} bytes exceeds the ingress limit of {MAX_INGRESS_ARG} bytes (2 MiB)"),
    )
}
