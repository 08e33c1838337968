//! Messages between canisters: call contexts, the message queue and its delivery.
//!
//! One FIFO queue holds every request and response in flight, so messages from one
//! canister to another are delivered in the order they were sent (the IC's pairwise
//! ordering guarantee). Each delivered item is one step: its message runs (and commits
//! or rolls back), its effects on contexts and the queue are applied, and the step is
//! committed as one transaction of the store. Cycles attached to a call leave the
//! caller's balance when the call is made; what the callee does not accept comes back
//! with the response (all of it if the callee traps or does not exist).

use candid::{CandidType, Principal};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::canister::{Entry, Exec};
use crate::canister::INSTRUCTION_LIMIT_TRAP;
use crate::host::{reject, reject_code::*, ErrorCode, Host, Reject, MAX_MESSAGES_PER_DRAIN};
use crate::state::{Callbacks, CanisterStatus, Message, MessageKind, Response};

pub(crate) type CtxId = u64;

/// Where the response of a call context goes.
#[derive(Debug, Clone, CandidType, Deserialize)]
pub(crate) enum Origin {
    /// A call from outside: the response is kept for the caller.
    Ingress,
    /// A call from canister call context `ctx`: the response goes to its callbacks.
    Call { ctx: CtxId, callbacks: Callbacks },
    /// Timer / system task: the response is dropped.
    System,
}

/// A call being handled by `canister` (the management canister's too).
#[derive(Debug, Clone, CandidType, Deserialize)]
pub(crate) struct CallContext {
    pub canister: Principal,
    pub caller: ByteBuf,
    pub origin: Origin,
    /// Calls made by this context whose responses have not been delivered.
    pub outstanding: u32,
    pub responded: bool,
    pub instructions: u64,
    /// Cycles the caller attached that are not accepted (yet).
    pub cycles: u128,
}

/// A message in flight.
#[derive(Debug, Clone, CandidType, Deserialize)]
pub(crate) enum Queued {
    Request { to: Principal, from: Principal, ctx: CtxId, callbacks: Callbacks, method: String, arg: ByteBuf, cycles: u128 },
    Response { ctx: CtxId, callbacks: Callbacks, response: Result<ByteBuf, Reject>, refund: u128 },
}

impl Host {
    pub(crate) fn new_context(&mut self, canister: Principal, caller: Vec<u8>, origin: Origin, cycles: u128) -> CtxId {
        let id = self.next_ctx;
        self.next_ctx += 1;
        let ctx = CallContext {
            canister,
            caller: ByteBuf::from(caller),
            origin,
            outstanding: 0,
            responded: false,
            instructions: 0,
            cycles,
        };
        self.contexts.insert(id, ctx);
        id
    }

    pub(crate) fn trap_reject(&self, canister: Principal, trap: &str) -> Reject {
        let r = reject(CANISTER_ERROR, format!("Error from Canister {canister}: {trap}"));
        if trap.starts_with(INSTRUCTION_LIMIT_TRAP) {
            r
        } else {
            r.with(ErrorCode::CanisterCalledTrap)
        }
    }

    pub(crate) fn no_reply(&self, canister: Principal) -> Reject {
        reject(CANISTER_ERROR, format!("Canister {canister} did not reply to the call"))
    }

    /// Why `canister` cannot take a call now, if it cannot.
    pub(crate) fn callable(&self, canister: Principal) -> Result<(), Reject> {
        let Some(c) = self.canisters.get(&canister) else {
            return Err(reject(DESTINATION_INVALID, format!("Canister {canister} not found")).with(ErrorCode::CanisterNotFound));
        };
        match c.state().status {
            CanisterStatus::Running => {}
            CanisterStatus::Stopping => return Err(reject(CANISTER_ERROR, format!("Canister {canister} is stopping")).with(ErrorCode::CanisterStopping)),
            CanisterStatus::Stopped => return Err(reject(CANISTER_ERROR, format!("Canister {canister} is stopped")).with(ErrorCode::CanisterStopped)),
        }
        if c.module().is_none() {
            return Err(reject(CANISTER_ERROR, format!("Canister {canister} is empty: it has no Wasm module")).with(ErrorCode::CanisterWasmModuleNotFound));
        }
        Ok(())
    }

    /// Applies the effects of an executed (and already committed or rolled back)
    /// message of call context `ctx` run by `canister`.
    pub(crate) fn finish(&mut self, canister: Principal, ctx: CtxId, exec: Exec) {
        let summary = match (&exec.trap, &exec.msg.response) {
            (Some(t), _) => Err(self.trap_reject(canister, t)),
            (None, Some(Response::Reply(d))) => Ok(d.clone()),
            (None, Some(Response::Reject(m))) => Err(reject(CANISTER_REJECT, m.clone())),
            (None, None) => Ok(Vec::new()),
        };
        self.record(canister, &exec, summary);
        let Exec { trap, instructions, msg, .. } = exec;
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.instructions += instructions;
            if trap.is_none() && matches!(msg.kind, MessageKind::Update | MessageKind::ReplyCallback | MessageKind::RejectCallback) {
                c.cycles = msg.cycles_available;
            }
        }
        if trap.is_none() {
            for call in msg.performed_calls {
                if let Some(c) = self.contexts.get_mut(&ctx) {
                    c.outstanding += 1;
                }
                let callee = Principal::try_from_slice(&call.callee).ok();
                match callee.filter(|p| *p == Principal::management_canister() || self.canisters.contains_key(p)) {
                    Some(to) => self.queue.push_back(Queued::Request {
                        to,
                        from: canister,
                        ctx,
                        callbacks: call.callbacks,
                        method: call.method,
                        arg: ByteBuf::from(call.arg),
                        cycles: call.cycles,
                    }),
                    None => {
                        let name = callee.map(|p| p.to_text()).unwrap_or_else(|| format!("0x{}", crate::engine::hex(&call.callee)));
                        self.queue.push_back(Queued::Response {
                            ctx,
                            callbacks: call.callbacks,
                            response: Err(reject(DESTINATION_INVALID, format!("Canister {name} not found")).with(ErrorCode::CanisterNotFound)),
                            refund: call.cycles,
                        });
                    }
                }
            }
            match msg.response {
                Some(Response::Reply(d)) => self.respond(ctx, Ok(d)),
                Some(Response::Reject(m)) => self.respond(ctx, Err(reject(CANISTER_REJECT, m))),
                None => {}
            }
        }
        self.close_if_done(ctx, canister, trap.as_deref());
    }

    /// A context with no calls outstanding is done: if it never responded, its caller
    /// gets the trap (or "did not reply").
    fn close_if_done(&mut self, ctx: CtxId, canister: Principal, trap: Option<&str>) {
        let Some(c) = self.contexts.get(&ctx) else { return };
        if c.outstanding == 0 {
            if !c.responded {
                let r = match trap {
                    Some(t) => self.trap_reject(canister, t),
                    None => self.no_reply(canister),
                };
                self.respond(ctx, Err(r));
            }
            self.contexts.remove(&ctx);
        }
    }

    /// Sends the response of context `ctx` (once), with its unaccepted cycles.
    pub(crate) fn respond(&mut self, ctx: CtxId, response: Result<Vec<u8>, Reject>) {
        let Some(c) = self.contexts.get_mut(&ctx) else { return };
        if c.responded {
            return;
        }
        c.responded = true;
        let refund = std::mem::take(&mut c.cycles);
        match &c.origin {
            Origin::Ingress => {
                self.ingress_results.insert(ctx, response);
            }
            Origin::Call { ctx: parent, callbacks } => {
                let (parent, callbacks) = (*parent, *callbacks);
                let response = response.map(ByteBuf::from);
                self.queue.push_back(Queued::Response { ctx: parent, callbacks, response, refund });
            }
            Origin::System => {}
        }
    }

    /// Runs queued requests and responses until the queue is empty, one step each.
    pub(crate) fn drain(&mut self) {
        let mut processed = 0;
        while let Some(item) = self.queue.pop_front() {
            if self.failed.is_some() {
                self.queue.push_front(item);
                return;
            }
            processed += 1;
            if processed > MAX_MESSAGES_PER_DRAIN {
                self.queue.push_front(item);
                self.abort_all(format!(
                    "ic-host: more than {MAX_MESSAGES_PER_DRAIN} messages in one drain (call loop?); aborted"
                ));
                self.commit_step();
                return;
            }
            match item {
                Queued::Request { to, from, ctx, callbacks, method, arg, cycles } => {
                    self.deliver_request(to, from, ctx, callbacks, method, arg.into_vec(), cycles)
                }
                Queued::Response { ctx, callbacks, response, refund } => {
                    self.deliver_response(ctx, callbacks, response.map(ByteBuf::into_vec), refund)
                }
            }
            self.commit_step();
        }
    }

    fn abort_all(&mut self, why: String) {
        self.queue.clear();
        for (id, c) in std::mem::take(&mut self.contexts) {
            if matches!(c.origin, Origin::Ingress) && !c.responded {
                self.ingress_results.insert(id, Err(reject(SYS_UNKNOWN, why.clone())));
            }
        }
        self.pending_stops.clear();
        for c in self.canisters.values_mut() {
            c.data_mut().log(why.clone());
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn deliver_request(
        &mut self,
        to: Principal,
        from: Principal,
        from_ctx: CtxId,
        callbacks: Callbacks,
        method: String,
        arg: Vec<u8>,
        cycles: u128,
    ) {
        let caller = from.as_slice().to_vec();
        let ctx = self.new_context(to, caller.clone(), Origin::Call { ctx: from_ctx, callbacks }, cycles);
        if to == Principal::management_canister() {
            self.management_call(ctx, from, &method, &arg);
            return;
        }
        if let Err(r) = self.callable(to) {
            self.respond(ctx, Err(r));
            self.contexts.remove(&ctx);
            return;
        }
        let export = format!("canister_update {method}");
        if !self.canisters[&to].has_func(&export) {
            let r = if self.query_export(to, &method).is_some() {
                // Replicated query from a canister: run it, discard its changes.
                self.run_query(to, caller, &method, &arg, MessageKind::ReplicatedQuery).reply
            } else {
                Err(reject(DESTINATION_INVALID, format!("Canister {to} has no update method '{method}'")).with(ErrorCode::CanisterMethodNotFound))
            };
            self.respond(ctx, r);
            self.contexts.remove(&ctx);
            return;
        }
        let mut msg = Message::new(MessageKind::Update, &method, caller, arg);
        msg.cycles_available = cycles;
        let exec = self.run(to, &Entry::Export(export), msg, self.limits.update, false);
        self.finish(to, ctx, exec);
    }

    fn deliver_response(&mut self, ctx: CtxId, callbacks: Callbacks, response: Result<Vec<u8>, Reject>, refund: u128) {
        let Some(c) = self.contexts.get_mut(&ctx) else { return };
        c.outstanding = c.outstanding.saturating_sub(1);
        let (canister, caller, responded, spent, available) =
            (c.canister, c.caller.to_vec(), c.responded, c.instructions, c.cycles);
        let Some(target) = self.canisters.get_mut(&canister) else {
            self.contexts.remove(&ctx); // the canister is gone
            return;
        };
        // Refunded cycles are the caller's again, whatever its callback does.
        target.state_mut().cycle_balance += refund;
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
        msg.cycles_refunded = refund;
        msg.cycles_available = available;
        let exec = self.run(canister, &entry, msg, self.limits.update, false);
        let mut cleanup = None;
        if exec.trap.is_some() {
            if let Some((fun, env)) = callbacks.cleanup {
                let mut cmsg = Message::new(MessageKind::Cleanup, "", caller, Vec::new());
                cmsg.context_instructions = spent + exec.instructions;
                cleanup = Some(self.run(canister, &Entry::Callback(fun, env), cmsg, self.limits.update, false));
            }
        }
        let cleanup_instructions = cleanup.as_ref().map_or(0, |c| c.instructions);
        if let Some(c) = self.contexts.get_mut(&ctx) {
            c.instructions += cleanup_instructions;
        }
        self.finish(canister, ctx, exec);
        // Recorded right after its callback.
        if let Some(cleanup) = cleanup {
            let summary = match &cleanup.trap {
                Some(t) => Err(self.trap_reject(canister, t)),
                None => Ok(Vec::new()),
            };
            self.record(canister, &cleanup, summary);
        }
    }

    /// Stopping canisters with no open call context stop; their `stop_canister` calls
    /// are answered.
    pub(crate) fn settle_stopping(&mut self) {
        let stopping: Vec<Principal> = self
            .canisters
            .iter()
            .filter(|(_, c)| c.state().status == CanisterStatus::Stopping)
            .map(|(id, _)| *id)
            .collect();
        for id in stopping {
            if self.contexts.values().any(|c| c.canister == id) {
                continue;
            }
            if let Some(c) = self.canisters.get_mut(&id) {
                c.state_mut().status = CanisterStatus::Stopped;
            }
            for ctx in self.pending_stops.remove(&id).unwrap_or_default() {
                self.respond(ctx, Ok(crate::management::empty_reply()));
                self.contexts.remove(&ctx);
            }
        }
    }
}
