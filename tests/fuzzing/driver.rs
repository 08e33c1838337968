//! The endpoint fuzzer's driver, shared by the CI slice (`tests/fuzz_endpoints.rs`) and
//! the coverage-guided target (`fuzz/fuzz_targets/endpoints.rs`, `scripts/fuzz.sh`).
//!
//! One input (any bytes) is read, through `arbitrary::Unstructured`, as a sequence of
//! calls: caller, method, and an argument that is generated from the method's Candid
//! types (ids of things that exist, texts at and past their limits, chunks with the
//! right or wrong bytes), generated at maximal sizes, a valid encoding mutated into
//! malformed Candid, or raw bytes; plus time passing (housekeeping timers) and
//! upgrades. Each call runs twice:
//! - on the real canister Wasm in the embedded host (IC semantics: inspect_message,
//!   rollback on trap, reply limits, stable-memory write counts), and
//! - natively, over the same domain logic and the same argument decoding, so a
//!   coverage-guided fuzzer sees the canister's code paths (coverage inside Wasm is
//!   invisible to it).
//!
//! A failure is: a trap that is not the refusal of undecodable Candid, a native panic,
//! the two runs disagreeing on a reply byte, a reply over the IC's limits, or a
//! refused call (typed error or reject) that wrote stable memory.

use std::collections::BTreeMap;
use std::time::Duration;

use arbitrary::Unstructured;
use backend::api::*;
use backend::domain::{Ctx, State};
use candid::utils::ArgumentDecoder;
use candid::{CandidType, DecoderConfig, Principal};
use ic_host::{reject_code, Host};
use serde_bytes::ByteBuf;

use super::common::{file, sha, CountingMemory};

/// Calls per input at most.
pub const MAX_CALLS: usize = 24;
/// The IC's reply limits.
pub const UPDATE_REPLY_LIMIT: usize = 2 << 20;
pub const QUERY_REPLY_LIMIT: usize = 3 << 20;

/// Every method, and whether it is a query.
pub const METHODS: [(&str, bool); 36] = [
    ("admin_gc", false),
    ("admin_set_config", false),
    ("blobs_delete", false),
    ("blobs_list", true),
    ("blobs_meta", true),
    ("blobs_read_chunk", true),
    ("blobs_read_range", true),
    ("capsules_accept", false),
    ("capsules_create", false),
    ("capsules_get", true),
    ("capsules_invitations", true),
    ("capsules_list", true),
    ("capsules_page", true),
    ("capsules_remove_member", false),
    ("capsules_rotate_link_key", false),
    ("capsules_set_member", false),
    ("directory_capsules_create", false),
    ("http_request", true),
    ("links_create", true),
    ("memories_add_asset", false),
    ("memories_create", false),
    ("memories_delete", false),
    ("memories_get", true),
    ("memories_list", true),
    ("memories_remove_asset", false),
    ("memories_set_public", false),
    ("memories_update", false),
    ("stats", true),
    ("upload_config", true),
    ("uploads_abort", false),
    ("uploads_begin", false),
    ("uploads_finish", false),
    ("uploads_list", true),
    ("uploads_page", true),
    ("uploads_put_chunk", false),
    ("uploads_status", true),
];

/// Methods whose generated calls mostly come from a principal who may write.
const WRITES: [&str; 10] = [
    "blobs_delete",
    "capsules_remove_member",
    "capsules_rotate_link_key",
    "capsules_set_member",
    "memories_add_asset",
    "memories_create",
    "memories_delete",
    "memories_remove_asset",
    "memories_set_public",
    "memories_update",
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mode {
    /// Typed values, mostly valid, often naming what exists.
    Generated,
    /// Typed values at and past every size limit.
    Maximal,
    /// A generated encoding with bytes flipped, inserted or cut: mostly malformed Candid.
    Mutated,
    /// Arbitrary bytes.
    Raw,
}

#[derive(Default, Clone, Debug)]
pub struct MethodFigures {
    pub cases: BTreeMap<String, u64>,
    /// Replies: Ok, typed errors, rejects (inspect_message, guard), undecodable Candid.
    pub ok: u64,
    pub typed_errors: u64,
    pub rejected: u64,
    pub undecodable: u64,
    pub max_reply: usize,
    pub max_instructions: u64,
}

#[derive(Default, Debug)]
pub struct Figures {
    pub inputs: u64,
    pub calls: u64,
    pub upgrades: u64,
    pub timer_messages: u64,
    pub per_method: BTreeMap<&'static str, MethodFigures>,
    pub traps: u64,
    pub unchanged_state_violations: u64,
    pub divergences: u64,
    pub failures: Vec<String>,
}

impl Figures {
    fn fail(&mut self, msg: String) {
        if self.failures.len() < 20 {
            self.failures.push(msg);
        }
    }

    pub fn report(&self) -> String {
        let mut s = format!(
            "{} inputs, {} calls, {} upgrades, {} housekeeping timer messages; {} traps, {} unchanged-state violations, {} divergences\n",
            self.inputs, self.calls, self.upgrades, self.timer_messages, self.traps, self.unchanged_state_violations, self.divergences
        );
        s += &format!(
            "  {:<24} {:>9} {:>8} {:>8} {:>6} {:>7} {:>6} {:>6} {:>6} {:>11} {:>14}\n",
            "method", "generated", "maximal", "mutated", "raw", "ok", "err", "reject", "undec", "max reply", "max instr"
        );
        for (m, f) in &self.per_method {
            let c = |k: &str| f.cases.get(k).copied().unwrap_or(0);
            s += &format!(
                "  {m:<24} {:>9} {:>8} {:>8} {:>6} {:>7} {:>6} {:>6} {:>6} {:>11} {:>14}\n",
                c("Generated"),
                c("Maximal"),
                c("Mutated"),
                c("Raw"),
                f.ok,
                f.typed_errors,
                f.rejected,
                f.undecodable,
                f.max_reply,
                f.max_instructions
            );
        }
        s
    }
}

/// What the native run of a call did.
#[derive(Debug, PartialEq)]
enum Native {
    Reply(Vec<u8>),
    /// Turned away by inspect_message, or rejected by a guard.
    Reject,
    /// The arguments are not the method's Candid (ic-cdk's decoder would trap).
    Undecodable,
}

fn decode<T: for<'a> ArgumentDecoder<'a>>(arg: &[u8]) -> Option<T> {
    let arg: &[u8] = if arg.is_empty() { b"DIDL\x00\x00" } else { arg };
    let mut cfg = DecoderConfig::new();
    cfg.set_skipping_quota(10_000);
    candid::utils::decode_args_with_config(arg, &cfg).ok()
}

fn reply<T: CandidType>(v: T) -> Native {
    Native::Reply(candid::encode_one(v).expect("encode reply"))
}

/// Runs a call over the domain logic the way `src/lib.rs` and `src/inspect.rs` do.
fn native_call(s: &mut State<CountingMemory>, ctx: &Ctx, method: &str, arg: &[u8], update: bool) -> Native {
    if update && !backend::inspect::admits(method, ctx.caller, arg, |sid| s.may_put_chunks(ctx, sid)) {
        return Native::Reject;
    }
    macro_rules! with {
        // ic-cdk does not decode the arguments of a method that takes none
        ((), || $body:expr) => {
            reply($body)
        };
        (($($t:ty),*), |$($v:ident),*| $body:expr) => {
            match decode::<($($t,)*)>(arg) {
                Some(($($v,)*)) => reply($body),
                None => Native::Undecodable,
            }
        };
    }
    match method {
        "admin_gc" => with!((), || s.admin_gc(ctx)),
        "admin_set_config" => with!((ConfigUpdate), |u| s.admin_set_config(ctx, u)),
        "blobs_delete" => with!((u64), |id| s.blobs_delete(ctx, id)),
        "blobs_list" => with!((u64, Option<u64>, u32), |c, cur, l| s.blobs_list(ctx, c, cur, l)),
        "blobs_meta" => with!((u64), |id| s.blobs_meta(ctx, id)),
        "blobs_read_chunk" => with!((u64, u32), |id, i| s.blobs_read_chunk(ctx, id, i).map(ByteBuf::from)),
        "blobs_read_range" => with!((u64, u64, u64), |id, o, l| s.blobs_read_range(ctx, id, o, l).map(ByteBuf::from)),
        "capsules_accept" => with!((u64), |id| s.capsules_accept(ctx, id)),
        "capsules_create" => with!((CapsuleCreateArgs), |a| s.capsules_create(ctx, a)),
        "capsules_get" => with!((u64), |id| s.capsules_get(ctx, id)),
        "capsules_invitations" => with!((Option<u64>, u32), |c, l| s.capsules_invitations(ctx, c, l)),
        "capsules_list" => with!((), || s.capsules_list(ctx)),
        "capsules_page" => with!((Option<u64>, u32), |c, l| s.capsules_page(ctx, c, l)),
        "capsules_remove_member" => with!((u64, Principal), |id, p| s.capsules_remove_member(ctx, id, p)),
        "capsules_rotate_link_key" => with!((u64), |id| s.capsules_rotate_link_key(ctx, id)),
        "capsules_set_member" => with!((u64, Principal, Role), |id, p, r| s.capsules_set_member(ctx, id, p, r)),
        "directory_capsules_create" => with!((DirectoryCapsuleArgs), |a| s.directory_capsules_create(ctx, a)),
        // Natively there is no data certificate (nor the Wasm's link secret): the status
        // is what both must agree on (see `comparable`).
        "http_request" => with!((HttpRequest), |r| s.http_request(ctx, &r, None)),
        "links_create" => with!((u64, AssetKind, u64), |id, k, t| s.links_create(ctx, id, k, t)),
        "memories_add_asset" => with!((u64, AssetInput), |id, a| s.memories_add_asset(ctx, id, a)),
        "memories_create" => with!((MemoryCreateArgs), |a| s.memories_create(ctx, a)),
        "memories_delete" => with!((u64), |id| s.memories_delete(ctx, id)),
        "memories_get" => with!((u64), |id| s.memories_get(ctx, id)),
        "memories_list" => with!((u64, Option<u64>, u32), |c, cur, l| s.memories_list(ctx, c, cur, l)),
        "memories_remove_asset" => with!((u64, AssetKind), |id, k| s.memories_remove_asset(ctx, id, k)),
        "memories_set_public" => with!((u64, bool), |id, p| s.memories_set_public(ctx, id, p)),
        "memories_update" => with!((u64, MemoryMeta), |id, m| s.memories_update(ctx, id, m)),
        "stats" if !ctx.is_controller => Native::Reject,
        "stats" => with!((), || s.stats()),
        "upload_config" => with!((), || s.upload_config()),
        "uploads_abort" => with!((u64), |id| s.uploads_abort(ctx, id)),
        "uploads_begin" => with!((BeginArgs), |a| s.uploads_begin(ctx, a)),
        "uploads_finish" => with!((u64, ByteBuf, u64), |id, d, l| s.uploads_finish(ctx, id, &d, l)),
        "uploads_list" => with!((), || s.uploads_list(ctx)),
        "uploads_page" => with!((UploadsPageArgs), |a| s.uploads_page(ctx, a)),
        "uploads_put_chunk" => with!((u64, u32, ByteBuf), |id, i, b| s.uploads_put_chunk(ctx, id, i, &b)),
        "uploads_status" => with!((u64), |id| s.uploads_status(ctx, id)),
        other => panic!("the fuzzer does not know method {other}"),
    }
}

/// What of a reply the Wasm and native runs must agree on: every byte, except for
/// `http_request` (only the Wasm has a data certificate: its status) and `links_create`
/// (the link secret comes from the Wasm's `raw_rand`: the reply's kind).
fn comparable(method: &str, reply: &[u8]) -> Vec<u8> {
    match method {
        "http_request" => match candid::decode_one::<HttpResponse>(reply) {
            Ok(r) => r.status_code.to_be_bytes().to_vec(),
            Err(_) => reply.to_vec(),
        },
        "links_create" => match candid::decode_one::<Result<Link>>(reply) {
            Ok(Ok(_)) => b"link".to_vec(),
            Ok(Err(e)) => candid::encode_one(e).expect("encode"),
            Err(_) => reply.to_vec(),
        },
        _ => reply.to_vec(),
    }
}

enum Outcome {
    Ok(usize),
    TypedError(usize),
    Rejected,
    Undecodable,
    /// What went wrong, and whether it was a trap.
    Failure(String, bool),
}

/// A session the driver began, so its chunks and digest can be right.
#[derive(Clone, Copy)]
struct Upload {
    id: u64,
    owner: Principal,
    size: u64,
    chunk_size: u32,
}

impl Upload {
    fn data(&self) -> Vec<u8> {
        file(self.size as usize, self.id)
    }
}

/// Ids seen in replies: what generated arguments name.
#[derive(Default)]
struct Known {
    capsules: Vec<u64>,
    uploads: Vec<Upload>,
    sessions: Vec<u64>,
    blobs: Vec<u64>,
    memories: Vec<u64>,
}

fn callers() -> [Principal; 5] {
    [
        ic_host::DEFAULT_CONTROLLER,
        Principal::from_slice(&[0x10, 1, 0x77, 1]),
        Principal::from_slice(&[0x10, 2, 0x77, 1]),
        Principal::from_slice(&[0x10, 3, 0x77, 1]),
        Principal::anonymous(),
    ]
}

/// The native state over `mem`, as the Wasm is once its install or upgrade timers ran:
/// HTTP certification rebuilt, a link secret set (another one than the Wasm's, which
/// only `links_create`'s token shows).
fn open_native(mem: &CountingMemory) -> State<CountingMemory> {
    let mut s = State::open(mem.clone()).expect("open native state");
    while s.http_rebuild_step().more {}
    s.set_link_secret(&[7; 32]);
    s
}

/// One input: a fresh canister (Wasm and native), then the input's calls.
pub struct Driver<'a> {
    host: Host,
    wasm: &'a [u8],
    mem: CountingMemory,
    native: State<CountingMemory>,
    known: Known,
    /// Size and chunk size of the last generated `uploads_begin`.
    pending_begin: Option<(u64, u32)>,
    /// The caller a generated argument suits (a session's creator, say).
    suggested: Option<Principal>,
}

impl<'a> Driver<'a> {
    pub fn new(wasm: &'a [u8]) -> Self {
        let mut host = Host::new(wasm, &candid::encode_args(()).unwrap()).expect("install the canister");
        let results = host.tick(); // HTTP certification and the link secret's raw_rand
        assert!(results.iter().all(|r| r.reply.is_ok()), "init timers: {results:?}");
        let mem = CountingMemory::default();
        let native = open_native(&mem);
        let mut d = Driver { host, wasm, mem, native, known: Known::default(), pending_begin: None, suggested: None };
        d.setup();
        d
    }

    /// Runs one fuzz input on a fresh canister (what the coverage-guided target does).
    #[allow(dead_code)]
    pub fn run(wasm: &'a [u8], data: &[u8], figures: &mut Figures) {
        Driver::new(wasm).input(data, figures);
    }

    /// Runs one fuzz input on this canister, in whatever state earlier inputs left.
    pub fn input(&mut self, data: &[u8], figures: &mut Figures) {
        let d = self;
        let mut u = Unstructured::new(data);
        figures.inputs += 1;
        for _ in 0..MAX_CALLS {
            if u.is_empty() {
                break;
            }
            let step: u8 = u.arbitrary().unwrap_or(0);
            match step {
                0..=5 => d.advance(&mut u, figures),
                6..=8 => d.upgrade(figures),
                9..=20 => d.whole_upload(&mut u, figures),
                _ => d.random_call(&mut u, figures),
            }
        }
    }

    /// A little state to start from: two capsules, one shared with the other user.
    fn setup(&mut self) {
        let mut figures = Figures::default();
        let [_, alice, bob, ..] = callers();
        for who in [alice, bob] {
            let arg = candid::encode_one(CapsuleCreateArgs { name: "c".into() }).unwrap();
            self.call(who, "capsules_create", arg, Mode::Generated, &mut figures);
        }
        let cap = self.known.capsules[0];
        self.call(alice, "capsules_set_member", candid::encode_args((cap, bob, Role::Writer)).unwrap(), Mode::Generated, &mut figures);
        self.call(bob, "capsules_accept", candid::encode_one(cap).unwrap(), Mode::Generated, &mut figures);
        assert!(figures.failures.is_empty(), "setup: {:?}", figures.failures);
    }

    /// A whole upload by a member (begin, every chunk, finish), sometimes attached to a
    /// memory: so blobs and memories exist for the other calls to name.
    fn whole_upload(&mut self, u: &mut Unstructured, figures: &mut Figures) {
        let [_, alice, bob, ..] = callers();
        let who = if u.ratio(1, 2).unwrap_or(true) { alice } else { bob };
        let cap = self.known.capsules[usize::from(who == bob)];
        let size = u.int_in_range(1u64..=200_000).unwrap_or(1);
        let chunk_size = 65_536;
        let args = BeginArgs {
            capsule_id: cap,
            size,
            chunk_size: Some(chunk_size),
            sha256: None,
            mime: "image/jpeg".into(),
            name: "f".into(),
            pmid: None,
            idempotency_key: None,
        };
        self.pending_begin = Some((size, chunk_size));
        self.call(who, "uploads_begin", candid::encode_one(args).unwrap(), Mode::Generated, figures);
        let Some(up) = self.known.uploads.last().copied().filter(|up| up.owner == who && up.size == size) else { return };
        let data = up.data();
        for (idx, chunk) in data.chunks(chunk_size as usize).enumerate() {
            let arg = candid::encode_args((up.id, idx as u32, ByteBuf::from(chunk.to_vec()))).unwrap();
            self.call(who, "uploads_put_chunk", arg, Mode::Generated, figures);
        }
        let arg = candid::encode_args((up.id, ByteBuf::from(sha(&data)), up.size)).unwrap();
        self.call(who, "uploads_finish", arg, Mode::Generated, figures);
        if u.ratio(1, 2).unwrap_or(false) {
            if let Some(&blob) = self.known.blobs.last() {
                let args = MemoryCreateArgs {
                    capsule_id: cap,
                    meta: MemoryMeta { title: "m".into(), kind: MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec![] },
                    assets: vec![AssetInput { kind: AssetKind::Original, source: AssetSource::Blob(blob), mime: "image/jpeg".into(), width: None, height: None, duration_ms: None }],
                    idempotency_key: None,
                };
                self.call(who, "memories_create", candid::encode_one(args).unwrap(), Mode::Generated, figures);
            }
        }
    }

    fn advance(&mut self, u: &mut Unstructured, figures: &mut Figures) {
        let secs = *u.choose(&[1u64, 59, 61, 601, 3_600, 86_401]).unwrap_or(&1);
        let messages = self.host.advance_time(Duration::from_secs(secs));
        for m in messages {
            if let Err(r) = &m.reply {
                figures.traps += 1;
                figures.fail(format!("timer message {} failed: {r}", m.method));
            }
            if m.method.contains("timer_executor") {
                figures.timer_messages += 1;
                // each housekeeping timer runs one bounded pass
                self.native.gc_pass(self.host.time());
            }
        }
    }

    fn upgrade(&mut self, figures: &mut Figures) {
        figures.upgrades += 1;
        if let Err(r) = self.host.upgrade(self.wasm, &candid::encode_args(()).unwrap()) {
            figures.traps += 1;
            figures.fail(format!("upgrade failed: {r}"));
        }
        // The certification passes post_upgrade starts (zero-delay timers), not housekeeping.
        for m in self.host.tick() {
            if let Err(r) = &m.reply {
                figures.traps += 1;
                figures.fail(format!("timer message {} after the upgrade failed: {r}", m.method));
            }
        }
        self.native = open_native(&self.mem);
    }

    fn random_call(&mut self, u: &mut Unstructured, figures: &mut Figures) {
        let mut who = *u.choose(&callers()).unwrap_or(&Principal::anonymous());
        let (method, _) = *u.choose(&METHODS).unwrap_or(&METHODS[0]);
        let mode = match u.int_in_range(0u8..=19).unwrap_or(0) {
            0..=12 => Mode::Generated,
            13..=15 => Mode::Maximal,
            16..=18 => Mode::Mutated,
            _ => Mode::Raw,
        };
        let arg = match mode {
            Mode::Generated | Mode::Maximal => self.generate(u, method, mode == Mode::Maximal),
            Mode::Mutated => {
                let mut arg = self.generate(u, method, false);
                mutate(u, &mut arg);
                arg
            }
            Mode::Raw => {
                let len = u.int_in_range(0usize..=64).unwrap_or(0);
                u.bytes(len).map(<[u8]>::to_vec).unwrap_or_default()
            }
        };
        if let Some(p) = self.suggested.take() {
            if u.ratio(4, 5).unwrap_or(true) {
                who = p;
            }
        }
        self.call(who, method, arg, mode, figures);
    }

    /// Runs one call on both, and checks them.
    pub fn call(&mut self, who: Principal, method: &'static str, arg: Vec<u8>, mode: Mode, figures: &mut Figures) {
        figures.calls += 1;
        let is_query = METHODS.iter().any(|(m, q)| *m == method && *q);
        let f = figures.per_method.entry(method).or_default();
        *f.cases.entry(format!("{mode:?}")).or_default() += 1;
        if arg.len() > ic_host::MAX_INGRESS_ARG {
            return; // the IC never delivers it
        }
        let ctx = Ctx { caller: who, now: self.host.time(), is_controller: who == ic_host::DEFAULT_CONTROLLER };
        self.mem.reset();
        let native = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            native_call(&mut self.native, &ctx, method, &arg, !is_query)
        }));
        let native_writes = self.mem.written.get();
        let wasm = if is_query { self.host.query(who, method, &arg) } else { self.host.update(who, method, &arg) };
        let label = format!("{method} ({mode:?}) by {who} with {} arg bytes", arg.len());
        let limit = if is_query { QUERY_REPLY_LIMIT } else { UPDATE_REPLY_LIMIT };
        let outcome = match (&wasm.reply, native) {
            (_, Err(_)) => Outcome::Failure(format!("{label}: the native run panicked"), true),
            (Ok(bytes), Ok(Native::Reply(nb))) if comparable(method, bytes) != comparable(method, &nb) => {
                Outcome::Failure(
                    format!("{label}: the Wasm and native replies differ ({:?} vs {:?})", comparable(method, bytes), comparable(method, &nb)),
                    false,
                )
            }
            (Ok(bytes), Ok(Native::Reply(_))) if bytes.len() > limit => {
                Outcome::Failure(format!("{label}: a reply of {} bytes", bytes.len()), false)
            }
            (Ok(bytes), Ok(Native::Reply(_))) => {
                match candid::decode_one::<Result<candid::Reserved>>(bytes).ok().and_then(|r| r.err()) {
                    Some(Error::InProgress(_)) | None => Outcome::Ok(bytes.len()),
                    Some(_) => Outcome::TypedError(bytes.len()),
                }
            }
            (Err(r), Ok(Native::Reject)) if r.code == reject_code::CANISTER_REJECT => Outcome::Rejected,
            (Err(r), Ok(Native::Undecodable)) if r.code == reject_code::CANISTER_ERROR && is_query => Outcome::Undecodable,
            (Err(r), Ok(n)) => Outcome::Failure(format!("{label}: Wasm rejected ({r}) but native {n:?}"), r.code == reject_code::CANISTER_ERROR),
            (Ok(_), Ok(n)) => Outcome::Failure(format!("{label}: Wasm replied but native {n:?}"), false),
        };
        let f = figures.per_method.get_mut(method).expect("entry");
        f.max_instructions = f.max_instructions.max(wasm.instructions);
        let refused = match outcome {
            Outcome::Ok(len) => {
                f.ok += 1;
                f.max_reply = f.max_reply.max(len);
                if let Ok(bytes) = &wasm.reply {
                    self.harvest(method, bytes);
                }
                false
            }
            Outcome::TypedError(len) => {
                if std::env::var("FUZZ_DEBUG").is_ok_and(|m| m == method) {
                    let e = wasm.reply.as_ref().ok().and_then(|b| candid::decode_one::<Result<candid::Reserved>>(b).ok());
                    eprintln!("{label}: {e:?}");
                }
                f.typed_errors += 1;
                f.max_reply = f.max_reply.max(len);
                true
            }
            Outcome::Rejected => {
                if std::env::var("FUZZ_DEBUG").is_ok_and(|m| m == method) {
                    eprintln!("{label}: rejected {:?}", wasm.reply.as_ref().err());
                }
                f.rejected += 1;
                true
            }
            Outcome::Undecodable => {
                f.undecodable += 1;
                true
            }
            Outcome::Failure(msg, trap) => {
                if trap {
                    figures.traps += 1;
                } else {
                    figures.divergences += 1;
                }
                figures.fail(msg);
                return;
            }
        };
        if refused && (wasm.stable_bytes_written != 0 || native_writes != 0) {
            figures.unchanged_state_violations += 1;
            figures.fail(format!(
                "{label}: refused, but wrote {} stable bytes (native {native_writes})",
                wasm.stable_bytes_written
            ));
        }
    }

    fn harvest(&mut self, method: &str, bytes: &[u8]) {
        match method {
            "capsules_create" | "directory_capsules_create" => {
                if let Ok(Ok(c)) = candid::decode_one::<Result<Capsule>>(bytes) {
                    self.known.capsules.push(c.id);
                }
            }
            "uploads_begin" => {
                if let Ok(Ok(s)) = candid::decode_one::<Result<Session>>(bytes) {
                    self.known.sessions.push(s.id);
                    if let Some((size, chunk_size)) = self.pending_begin.take() {
                        if size == s.size && chunk_size == s.chunk_size {
                            self.known.uploads.push(Upload { id: s.id, owner: s.owner, size, chunk_size });
                        }
                    }
                }
            }
            "uploads_finish" => {
                if let Ok(Ok(b)) = candid::decode_one::<Result<BlobMeta>>(bytes) {
                    self.known.blobs.push(b.id);
                }
            }
            "memories_create" => {
                if let Ok(Ok(m)) = candid::decode_one::<Result<Memory>>(bytes) {
                    self.known.memories.push(m.id);
                }
            }
            _ => {}
        }
    }

    // ---------- argument generation ----------

    fn generate(&mut self, u: &mut Unstructured, method: &str, max: bool) -> Vec<u8> {
        if WRITES.contains(&method) {
            // mostly by someone who may write: the controller or a capsule's member
            self.suggested = u.choose(&callers()[..3]).ok().copied();
        }
        let g = Gen { known: &self.known, max };
        let enc = match method {
            "admin_gc" | "capsules_list" | "stats" | "upload_config" | "uploads_list" => candid::encode_args(()),
            "admin_set_config" => candid::encode_one(g.config(u)),
            "blobs_delete" | "blobs_meta" => candid::encode_one(g.id(u, &self.known.blobs)),
            "blobs_list" | "memories_list" => {
                candid::encode_args((g.id(u, &self.known.capsules), g.opt_id(u), g.limit(u)))
            }
            "blobs_read_chunk" => candid::encode_args((g.id(u, &self.known.blobs), g.u32(u))),
            "blobs_read_range" => candid::encode_args((g.id(u, &self.known.blobs), g.u64(u), g.u64(u))),
            "capsules_accept" | "capsules_get" => candid::encode_one(g.id(u, &self.known.capsules)),
            "capsules_create" => candid::encode_one(CapsuleCreateArgs { name: g.text(u, 512) }),
            "directory_capsules_create" => {
                candid::encode_one(DirectoryCapsuleArgs { id: g.u64(u), owner: g.principal(u), name: g.text(u, 512) })
            }
            "capsules_invitations" | "capsules_page" => candid::encode_args((g.opt_id(u), g.limit(u))),
            "capsules_remove_member" => candid::encode_args((g.id(u, &self.known.capsules), g.principal(u))),
            "capsules_set_member" => candid::encode_args((g.id(u, &self.known.capsules), g.principal(u), g.role(u))),
            "capsules_rotate_link_key" => candid::encode_one(g.id(u, &self.known.capsules)),
            "http_request" => candid::encode_one(g.http_request(u)),
            "links_create" => candid::encode_args((g.id(u, &self.known.memories), g.kind(u), g.u64(u))),
            "memories_set_public" => candid::encode_args((g.id(u, &self.known.memories), u.arbitrary::<bool>().unwrap_or(true))),
            "memories_add_asset" => candid::encode_args((g.id(u, &self.known.memories), g.asset(u))),
            "memories_create" => candid::encode_one(MemoryCreateArgs {
                capsule_id: g.id(u, &self.known.capsules),
                meta: g.meta(u),
                assets: g.assets(u),
                idempotency_key: g.opt_text(u, 128),
            }),
            "memories_delete" | "memories_get" => candid::encode_one(g.id(u, &self.known.memories)),
            "memories_remove_asset" => candid::encode_args((g.id(u, &self.known.memories), g.kind(u))),
            "memories_update" => candid::encode_args((g.id(u, &self.known.memories), g.meta(u))),
            "uploads_abort" | "uploads_status" => candid::encode_one(g.id(u, &self.known.sessions)),
            "uploads_begin" => {
                let args = g.begin(u);
                self.pending_begin = Some((args.size, args.chunk_size.unwrap_or(1_800_000)));
                let [controller, alice, bob, ..] = callers();
                self.suggested = u.choose(&[controller, alice, bob]).ok().copied();
                candid::encode_one(args)
            }
            "uploads_finish" => match g.upload(u) {
                Some(up) if u.ratio(3, 4).unwrap_or(false) => {
                    self.suggested = Some(up.owner);
                    candid::encode_args((up.id, ByteBuf::from(sha(&up.data())), up.size))
                }
                _ => candid::encode_args((g.id(u, &self.known.sessions), ByteBuf::from(g.bytes(u, 32)), g.u64(u))),
            },
            "uploads_page" => candid::encode_one(UploadsPageArgs {
                capsule_id: if u.ratio(1, 2).unwrap_or(false) { Some(g.id(u, &self.known.capsules)) } else { None },
                cursor: g.opt_id(u),
                limit: if u.ratio(1, 2).unwrap_or(false) { Some(g.limit(u)) } else { None },
            }),
            "uploads_put_chunk" => match g.upload(u) {
                Some(up) if u.ratio(3, 4).unwrap_or(false) => {
                    self.suggested = Some(up.owner);
                    let count = up.size.div_ceil(u64::from(up.chunk_size)) as u32;
                    let idx = u.int_in_range(0..=count.saturating_sub(1)).unwrap_or(0);
                    let data = up.data();
                    let start = idx as usize * up.chunk_size as usize;
                    let mut chunk = data[start..(start + up.chunk_size as usize).min(data.len())].to_vec();
                    if u.ratio(1, 10).unwrap_or(false) && !chunk.is_empty() {
                        chunk[0] ^= 1; // a conflicting retry, or a wrong first upload
                    }
                    candid::encode_args((up.id, idx, ByteBuf::from(chunk)))
                }
                _ => {
                    let len = if max { *u.choose(&[1_900_000usize, 1_900_001, 65_536]).unwrap_or(&1) } else { u.int_in_range(0..=300).unwrap_or(0) };
                    candid::encode_args((g.id(u, &self.known.sessions), g.u32(u), ByteBuf::from(vec![7u8; len])))
                }
            },
            other => panic!("no generator for {other}"),
        };
        enc.expect("encode a generated argument")
    }
}

/// Flips, inserts, cuts or overwrites a few bytes.
fn mutate(u: &mut Unstructured, arg: &mut Vec<u8>) {
    let n = u.int_in_range(1u8..=4).unwrap_or(1);
    for _ in 0..n {
        if arg.is_empty() {
            arg.push(u.arbitrary().unwrap_or(0));
            continue;
        }
        let at = u.int_in_range(0..=arg.len() - 1).unwrap_or(0);
        match u.int_in_range(0u8..=3).unwrap_or(0) {
            0 => arg[at] ^= 1 << u.int_in_range(0u8..=7).unwrap_or(0),
            1 => arg.insert(at, u.arbitrary().unwrap_or(0xff)),
            2 => arg.truncate(at),
            _ => arg[at] = *u.choose(&[0u8, 0x7f, 0x80, 0xff]).unwrap_or(&0),
        }
    }
}

/// Typed argument values: known ids most of the time, sizes at and past the limits in
/// maximal mode.
struct Gen<'k> {
    known: &'k Known,
    max: bool,
}

impl Gen<'_> {
    fn u64(&self, u: &mut Unstructured) -> u64 {
        match u.int_in_range(0u8..=4).unwrap_or(0) {
            0 => 0,
            1 => u64::MAX,
            2 => u.int_in_range(0u64..=4_000_000).unwrap_or(0),
            _ => u.arbitrary().unwrap_or(1),
        }
    }
    fn u32(&self, u: &mut Unstructured) -> u32 {
        match u.int_in_range(0u8..=3).unwrap_or(0) {
            0 => 0,
            1 => u32::MAX,
            _ => u.int_in_range(0u32..=70_000).unwrap_or(0),
        }
    }
    fn id(&self, u: &mut Unstructured, pool: &[u64]) -> u64 {
        if !pool.is_empty() && u.ratio(4, 5).unwrap_or(true) {
            *u.choose(pool).unwrap_or(&1)
        } else {
            *u.choose(&[0, 1, 2, 3, 99, u64::MAX]).unwrap_or(&0)
        }
    }
    fn opt_id(&self, u: &mut Unstructured) -> Option<u64> {
        if u.ratio(1, 2).unwrap_or(true) {
            None
        } else {
            Some(*u.choose(&[0, 1, 2, 5, u64::MAX - 1, u64::MAX]).unwrap_or(&0))
        }
    }
    fn limit(&self, u: &mut Unstructured) -> u32 {
        *u.choose(&[0, 1, 3, 50, 51, u32::MAX]).unwrap_or(&0)
    }
    /// A text: short, at the limit, or just past it.
    fn text(&self, u: &mut Unstructured, limit: usize) -> String {
        let len = if self.max {
            *u.choose(&[limit, limit + 1, 100_000]).unwrap_or(&limit)
        } else {
            u.int_in_range(0..=12).unwrap_or(0)
        };
        let ch = *u.choose(&['a', 'é', '\u{1F600}', '\0']).unwrap_or(&'a');
        let mut s = String::new();
        while s.len() + ch.len_utf8() <= len {
            s.push(ch);
        }
        s
    }
    fn opt_text(&self, u: &mut Unstructured, limit: usize) -> Option<String> {
        u.ratio(1, 2).unwrap_or(false).then(|| self.text(u, limit))
    }
    fn bytes(&self, u: &mut Unstructured, typical: usize) -> Vec<u8> {
        let len = if self.max { *u.choose(&[typical, typical + 1, 0]).unwrap_or(&typical) } else { typical };
        vec![u.arbitrary::<u8>().unwrap_or(0); len]
    }
    fn principal(&self, u: &mut Unstructured) -> Principal {
        let list = callers();
        match u.int_in_range(0u8..=5).unwrap_or(0) {
            0 => Principal::management_canister(),
            1 => Principal::from_slice(&[u.arbitrary().unwrap_or(1); 29]),
            _ => *u.choose(&list).unwrap_or(&list[1]),
        }
    }
    fn role(&self, u: &mut Unstructured) -> Role {
        *u.choose(&[Role::Reader, Role::Writer, Role::Owner]).unwrap_or(&Role::Reader)
    }
    fn kind(&self, u: &mut Unstructured) -> AssetKind {
        use AssetKind::*;
        *u.choose(&[Original, Display, Thumbnail, Placeholder, Poster, Preview, Other]).unwrap_or(&Other)
    }
    fn meta(&self, u: &mut Unstructured) -> MemoryMeta {
        let tags = if self.max { vec![self.text(u, 64); *u.choose(&[32usize, 33]).unwrap_or(&32)] } else { vec!["t".into()] };
        MemoryMeta {
            title: self.text(u, 512),
            kind: MemoryKind::Photo,
            description: self.text(u, 8 * 1024),
            taken_at_ns: u.arbitrary().unwrap_or(None),
            tags,
        }
    }
    fn asset(&self, u: &mut Unstructured) -> AssetInput {
        let source = if u.ratio(1, 2).unwrap_or(true) {
            AssetSource::Blob(self.id(u, &self.known.blobs))
        } else {
            let len = if self.max { *u.choose(&[32 * 1024usize, 32 * 1024 + 1]).unwrap_or(&1) } else { u.int_in_range(0..=200).unwrap_or(1) };
            AssetSource::Inline(ByteBuf::from(vec![0xab; len]))
        };
        AssetInput { kind: self.kind(u), source, mime: self.text(u, 512), width: Some(1), height: None, duration_ms: None }
    }
    fn assets(&self, u: &mut Unstructured) -> Vec<AssetInput> {
        let n = if self.max { *u.choose(&[7usize, 16, 17]).unwrap_or(&7) } else { u.int_in_range(0..=3).unwrap_or(0) };
        (0..n).map(|_| self.asset(u)).collect()
    }
    /// Picks from `valid` in generated mode, from `extreme` in maximal mode.
    fn pick<T: Copy>(&self, u: &mut Unstructured, valid: &[T], extreme: &[T]) -> T {
        let from = if self.max { extreme } else { valid };
        *u.choose(from).unwrap_or(&from[0])
    }
    fn config(&self, u: &mut Unstructured) -> ConfigUpdate {
        let mut c = ConfigUpdate::default();
        if u.ratio(1, 3).unwrap_or(false) {
            c.session_ttl_ns = Some(self.pick(u, &[60_000_000_000, 86_400_000_000_000], &[0, 59_999_999_999, u64::MAX]));
        }
        if u.ratio(1, 3).unwrap_or(false) {
            c.max_capsule_bytes = Some(self.pick(u, &[1_000_000, 100 << 30], &[0, u64::MAX]));
        }
        if u.ratio(1, 4).unwrap_or(false) {
            c.max_file_size = Some(self.pick(u, &[300_000, 4 << 30], &[0, 1, u64::MAX]));
        }
        if u.ratio(1, 4).unwrap_or(false) {
            c.max_live_sessions_per_caller = Some(self.pick(u, &[2, 64], &[0, 1000, 1001]));
        }
        if u.ratio(1, 4).unwrap_or(false) {
            c.max_capsules_per_caller = Some(self.pick(u, &[3, 16], &[0, u32::MAX]));
        }
        if u.ratio(1, 4).unwrap_or(false) {
            c.max_capsules = Some(self.pick(u, &[5, 100_000], &[0, u64::MAX]));
        }
        if u.ratio(1, 4).unwrap_or(false) {
            c.max_stored_bytes = Some(self.pick(u, &[2_000_000, 464 << 30], &[0, (464 << 30) + 1, u64::MAX]));
        }
        c
    }
    fn begin(&self, u: &mut Unstructured) -> BeginArgs {
        let size = if self.max {
            *u.choose(&[0u64, 4 << 30, (4 << 30) + 1, 65_536 * 65_537, u64::MAX]).unwrap_or(&0)
        } else {
            u.int_in_range(1u64..=200_000).unwrap_or(1)
        };
        let chunk_size = self.pick(u, &[None, Some(65_536u32), Some(65_536)], &[Some(65_535), Some(1_900_000), Some(1_900_001), Some(0)]);
        BeginArgs {
            capsule_id: self.id(u, &self.known.capsules),
            size,
            chunk_size,
            sha256: if u.ratio(1, 5).unwrap_or(false) { Some(ByteBuf::from(self.bytes(u, 32))) } else { None },
            mime: self.text(u, 512),
            name: self.text(u, 512),
            pmid: self.opt_text(u, 128),
            idempotency_key: self.opt_text(u, 128),
        }
    }
    /// A GET of a memory's asset or of content by digest, with or without a range,
    /// `If-None-Match` or a (forged) token; in maximal mode a long URL and many headers.
    fn http_request(&self, u: &mut Unstructured) -> HttpRequest {
        let mut url = match u.int_in_range(0u8..=5).unwrap_or(0) {
            0 => format!("/b/{}", "ab".repeat(32)),
            1 => self.text(u, 256),
            _ => {
                let kind = self.kind(u);
                let label = format!("{kind:?}").to_lowercase();
                format!("/m/{}/{label}", self.id(u, &self.known.memories))
            }
        };
        if u.ratio(1, 4).unwrap_or(false) {
            url += &format!("?token={}.{}", self.u64(u), self.text(u, 22));
        }
        let mut headers = Vec::new();
        if u.ratio(1, 2).unwrap_or(false) {
            let range = *u.choose(&["bytes=0-", "bytes=65536-", "bytes=-10", "bytes=99999999-", "bytes=5-3", "bytes=0-1,4-5"]).unwrap_or(&"bytes=0-");
            headers.push(("Range".to_string(), range.to_string()));
        }
        if u.ratio(1, 5).unwrap_or(false) {
            headers.push(("If-None-Match".to_string(), self.text(u, 80)));
        }
        if self.max {
            let n = *u.choose(&[64usize, 1500]).unwrap_or(&64);
            headers.extend((0..n).map(|i| (format!("x-{i}"), "v".repeat(1024))));
        }
        HttpRequest { method: "GET".into(), url, headers, body: ByteBuf::from(self.bytes(u, 0)), certificate_version: Some(2) }
    }
    fn upload(&self, u: &mut Unstructured) -> Option<Upload> {
        if self.known.uploads.is_empty() {
            return None;
        }
        u.choose(&self.known.uploads).ok().copied()
    }
}
