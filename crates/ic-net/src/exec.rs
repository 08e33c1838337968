//! Execution, apart from the network front: the [`Host`] lives on its own thread and
//! takes [`Command`]s from a channel. The thread keeps the host's clock on the wall
//! clock (never backwards), fires canister timers as time passes, and owns the
//! ingress history.
//!
//! Commands are taken in batches (group commit): for the calls of a batch, the
//! acceptance checks run and their `Received` records are made durable; then every
//! command runs in arrival order; then the host's log and the history are synced once;
//! only then are the answers handed out. A reply therefore never reports an effect that
//! a crash could still take back, and an accepted call is never run twice.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, Result};
use candid::Principal;
use ic_host::{reject_code, CallResult, Durability, Host, Reject};
use tokio::sync::oneshot;

use crate::ingress::{Entry, History, RequestId, Status};
use crate::tree::{CanisterInfo, Snapshot};

/// At most this many commands form one batch.
const MAX_BATCH: usize = 64;
/// How often an idle host thread wakes up to move time and run due timers.
const IDLE_TICK: Duration = Duration::from_millis(200);

/// Nanoseconds since the epoch, by the wall clock.
pub fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

/// An update call that passed the front's checks (envelope, expiry, signature).
#[derive(Debug, Clone)]
pub struct Call {
    pub request_id: RequestId,
    pub sender: Principal,
    pub effective: Principal,
    pub expiry: u64,
    pub canister: Principal,
    pub method: String,
    pub arg: Vec<u8>,
}

/// What became of a call.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Not accepted (not in the state; nothing ran): a non-replicated rejection.
    Refused(Reject),
    /// Accepted; its status now, and the host's time.
    Status { status: Status, time: u64 },
}

type Job = Box<dyn FnOnce(&mut Host) + Send>;
/// An answer handed out after the batch is durable.
type Reply = Box<dyn FnOnce(&mut Exec)>;

pub enum Command {
    Call { call: Call, accepted: Option<oneshot::Sender<Result<(), Reject>>>, done: oneshot::Sender<Outcome> },
    Query { canister: Principal, caller: Principal, method: String, arg: Vec<u8>, done: oneshot::Sender<(Result<Vec<u8>, Reject>, u64)> },
    ReadState { canister: Option<Principal>, request: Option<RequestId>, metadata: Vec<String>, done: oneshot::Sender<Snapshot> },
    /// Runs a closure on the host thread (setup, tests, benchmarks).
    With(Job),
    /// The messages of the last ingress call or query.
    LastCall(oneshot::Sender<Vec<CallResult>>),
    Shutdown(oneshot::Sender<Result<()>>),
}

/// The front's side of the channel (cheap to clone).
#[derive(Clone)]
pub struct ExecHandle {
    tx: Sender<Command>,
}

impl ExecHandle {
    pub(crate) fn send(&self, cmd: Command) -> Result<(), Reject> {
        self.tx.send(cmd).map_err(|_| Reject::new(reject_code::SYS_TRANSIENT, "the network is shutting down"))
    }

    /// Runs `f` on the host thread and returns its result (blocking; not from async code).
    pub fn with_host<R: Send + 'static>(&self, f: impl FnOnce(&mut Host) -> R + Send + 'static) -> Result<R> {
        let (tx, rx) = std::sync::mpsc::channel();
        self.send(Command::With(Box::new(move |h| {
            let _ = tx.send(f(h));
        })))
        .map_err(|r| anyhow!(r.message))?;
        rx.recv().map_err(|_| anyhow!("the host thread stopped"))
    }

    /// The messages the last ingress call (or query) ran, with their instructions.
    pub fn last_call(&self) -> Result<Vec<CallResult>> {
        let (tx, rx) = oneshot::channel();
        self.send(Command::LastCall(tx)).map_err(|r| anyhow!(r.message))?;
        rx.blocking_recv().map_err(|_| anyhow!("the host thread stopped"))
    }
}

/// Starts the host thread. `history` is the ingress history it owns.
pub fn spawn(mut host: Host, history: History) -> (ExecHandle, JoinHandle<()>, Sender<Command>) {
    let (tx, rx) = mpsc::channel();
    host.set_durability(Durability::Deferred);
    let thread = std::thread::Builder::new()
        .name("ic-net host".into())
        .spawn(move || Exec { host, history, last: Vec::new() }.run(rx))
        .expect("spawn the host thread");
    (ExecHandle { tx: tx.clone() }, thread, tx)
}

struct Exec {
    host: Host,
    history: History,
    last: Vec<CallResult>,
}

/// A command of the batch, after its acceptance was decided.
enum Step {
    Run(Call, oneshot::Sender<Outcome>),
    /// A call already known (or refused): answered after the batch ran.
    Answer(RequestId, Option<Outcome>, oneshot::Sender<Outcome>),
    Other(Command),
}

impl Exec {
    fn run(mut self, rx: Receiver<Command>) {
        loop {
            let first = match rx.recv_timeout(IDLE_TICK) {
                Ok(cmd) => Some(cmd),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let ran_timers = self.advance_clock();
            let mut batch: Vec<Command> = first.into_iter().collect();
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            let shutdown = match batch.iter().position(|c| matches!(c, Command::Shutdown(_))) {
                Some(i) => match batch.swap_remove(i) {
                    Command::Shutdown(tx) => Some(tx),
                    _ => None,
                },
                None => None,
            };
            self.run_batch(batch, ran_timers);
            if let Some(tx) = shutdown {
                let _ = self.history.sync();
                let _ = tx.send(self.host.close());
                return;
            }
        }
        let _ = self.host.sync();
    }

    /// Moves the host's clock to the wall clock (never back) and runs due timers.
    fn advance_clock(&mut self) -> bool {
        let now = now_ns();
        if now > self.host.time() {
            self.host.set_time(now);
        }
        let _ = self.history.prune(now);
        !self.host.tick().is_empty()
    }

    fn run_batch(&mut self, batch: Vec<Command>, mut dirty: bool) {
        let now = now_ns();
        // 1. Acceptance: refuse what cannot enter, record the rest as received.
        let mut steps = Vec::with_capacity(batch.len());
        let mut accepted_acks = Vec::new();
        for cmd in batch {
            let Command::Call { call, accepted, done } = cmd else {
                steps.push(Step::Other(cmd));
                continue;
            };
            let verdict = self.accept(&call, now);
            match verdict {
                Ok(true) => {
                    if let Some(a) = accepted {
                        accepted_acks.push(a);
                    }
                    steps.push(Step::Run(call, done));
                }
                Ok(false) => {
                    if let Some(a) = accepted {
                        accepted_acks.push(a);
                    }
                    steps.push(Step::Answer(call.request_id, None, done));
                }
                Err(r) => {
                    if let Some(a) = accepted {
                        let _ = a.send(Err(r.clone()));
                    }
                    steps.push(Step::Answer(call.request_id, Some(Outcome::Refused(r)), done));
                }
            }
        }
        if let Err(e) = self.history.sync() {
            self.fail_all(steps, format!("recording the calls failed: {e:#}"));
            return;
        }
        for a in accepted_acks {
            let _ = a.send(Ok(()));
        }
        // 2. Execution, in arrival order.
        let mut replies: Vec<Reply> = Vec::new();
        for step in steps {
            match step {
                Step::Run(call, done) => {
                    dirty = true;
                    let status = self.execute(&call);
                    let time = self.host.time();
                    replies.push(Box::new(move |_| {
                        let _ = done.send(Outcome::Status { status, time });
                    }));
                }
                Step::Answer(id, outcome, done) => replies.push(Box::new(move |ex: &mut Exec| {
                    let outcome = outcome.unwrap_or_else(|| {
                        let status = ex.history.get(&id).map_or(Status::Done, |e| e.status.clone());
                        Outcome::Status { status, time: ex.host.time() }
                    });
                    let _ = done.send(outcome);
                })),
                Step::Other(cmd) => {
                    dirty |= matches!(cmd, Command::With(_));
                    if let Some(reply) = self.other(cmd) {
                        replies.push(reply);
                    }
                }
            }
        }
        // 3. Durable, then answered.
        if dirty {
            if let Err(e) = self.host.sync() {
                eprintln!("ic-net: syncing the host's state failed: {e:#}");
            }
        }
        if let Err(e) = self.history.sync() {
            eprintln!("ic-net: syncing the ingress history failed: {e:#}");
        }
        for r in replies {
            r(self);
        }
    }

    /// `Ok(true)`: accepted and recorded; `Ok(false)`: already known (a duplicate);
    /// `Err`: refused, not recorded.
    fn accept(&mut self, call: &Call, now: u64) -> Result<bool, Reject> {
        if self.history.get(&call.request_id).is_some() {
            return Ok(false);
        }
        if call.expiry < now {
            return Err(Reject::new(reject_code::SYS_TRANSIENT, "the request expired before the network processed it"));
        }
        self.host.accepts_ingress(call.canister, call.sender, &call.method, &call.arg)?;
        let entry = Entry { sender: call.sender, effective: call.effective, expiry: call.expiry, status: Status::Received };
        self.history
            .put(call.request_id, entry)
            .map_err(|e| Reject::new(reject_code::SYS_TRANSIENT, format!("recording the call failed: {e:#}")))?;
        Ok(true)
    }

    fn execute(&mut self, call: &Call) -> Status {
        let r = self.host.update_call(call.canister, call.sender, &call.method, &call.arg);
        self.last = self.host.last_messages().to_vec();
        let status = match r.reply {
            Ok(bytes) => Status::Replied(bytes),
            Err(rej) => Status::Rejected { code: client_code(rej.code), message: rej.message, error_code: rej.error_code.map(|c| c.as_str().to_string()) },
        };
        let entry = Entry { sender: call.sender, effective: call.effective, expiry: call.expiry, status: status.clone() };
        if let Err(e) = self.history.put(call.request_id, entry) {
            eprintln!("ic-net: recording the answer of a call failed: {e:#}");
        }
        status
    }

    fn other(&mut self, cmd: Command) -> Option<Reply> {
        match cmd {
            Command::Query { canister, caller, method, arg, done } => {
                let r = self.host.query_call(canister, caller, &method, &arg);
                self.last = self.host.last_messages().to_vec();
                let reply = r.reply.map_err(|mut rej| {
                    rej.code = client_code(rej.code);
                    rej
                });
                let time = self.host.time();
                Some(Box::new(move |_| {
                    let _ = done.send((reply, time));
                }))
            }
            Command::ReadState { canister, request, metadata, done } => {
                let snap = self.snapshot(canister, request, &metadata);
                Some(Box::new(move |_| {
                    let _ = done.send(snap);
                }))
            }
            Command::With(job) => {
                job(&mut self.host);
                None
            }
            Command::LastCall(tx) => {
                let last = self.last.clone();
                Some(Box::new(move |_| {
                    let _ = tx.send(last);
                }))
            }
            Command::Call { .. } | Command::Shutdown(_) => None,
        }
    }

    fn snapshot(&self, canister: Option<Principal>, request: Option<RequestId>, metadata: &[String]) -> Snapshot {
        let h = &self.host;
        let canister = canister.map(|id| {
            if !h.canister_exists(id) {
                return CanisterInfo::default();
            }
            let mut info = CanisterInfo {
                id: Some(id),
                module_hash: h.canister_module_hash(id),
                controllers: h.canister_controllers(id).map(<[Principal]>::to_vec).unwrap_or_default(),
                certified_data: h.canister_certified_data(id).map(<[u8]>::to_vec).unwrap_or_default(),
                metadata: Vec::new(),
            };
            for name in metadata {
                if let Some(d) = h.canister_custom_section(id, &format!("icp:public {name}")) {
                    info.metadata.push((name.clone(), true, d.to_vec()));
                } else if let Some(d) = h.canister_custom_section(id, &format!("icp:private {name}")) {
                    info.metadata.push((name.clone(), false, d.to_vec()));
                }
            }
            info
        });
        let request = request.and_then(|id| self.history.get(&id).map(|e| (id, e.clone())));
        Snapshot { time: h.time(), canister, request }
    }

    fn fail_all(&mut self, steps: Vec<Step>, why: String) {
        let r = Reject::new(reject_code::SYS_TRANSIENT, why);
        for s in steps {
            match s {
                Step::Run(_, done) | Step::Answer(_, _, done) => {
                    let _ = done.send(Outcome::Refused(r.clone()));
                }
                Step::Other(cmd) => {
                    if let Some(reply) = self.other(cmd) {
                        reply(self);
                    }
                }
            }
        }
    }
}

/// Reject codes clients know (1 to 5): the host's own error (0) is a canister error,
/// "response unknown" (6) is transient.
fn client_code(code: u32) -> u32 {
    match code {
        1..=5 => code,
        reject_code::SYS_UNKNOWN => reject_code::SYS_TRANSIENT,
        _ => reject_code::CANISTER_ERROR,
    }
}
