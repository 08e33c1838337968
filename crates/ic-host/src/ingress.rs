//! The acceptance of an ingress message, apart from its execution: what a replica
//! checks before a call enters the IC's state (a network front answers a refusal
//! here as a non-replicated rejection, and only accepted calls are recorded and run).

use candid::Principal;

use crate::canister::Entry;
use crate::host::{reject, reject_code::*, ErrorCode, Host, Reject, MAX_INGRESS_ARG};
use crate::state::{Message, MessageKind};

impl Host {
    /// Whether an ingress update call of `method` on `canister` by `caller` would be
    /// accepted: the state is writable, the argument fits the ingress limit, the
    /// canister exists, runs and has a module, it exports the method (as an update, or
    /// as a query, which then runs replicated), and `canister_inspect_message`, if the
    /// canister exports it, accepts the message. Nothing is committed. Calls to the
    /// management canister are accepted here; their checks (controllers, arguments)
    /// happen when they run.
    pub fn accepts_ingress(&mut self, canister: Principal, caller: Principal, method: &str, arg: &[u8]) -> Result<(), Reject> {
        self.check_failed()?;
        if arg.len() > MAX_INGRESS_ARG {
            return Err(reject(
                CANISTER_REJECT,
                format!("ic-host: argument of {} bytes exceeds the ingress limit of {MAX_INGRESS_ARG} bytes (2 MiB)", arg.len()),
            ));
        }
        if canister == Principal::management_canister() {
            return Ok(());
        }
        self.callable(canister)?;
        let has_update = self.canisters[&canister].has_func(&format!("canister_update {method}"));
        if !has_update && self.query_export(canister, method).is_none() {
            return Err(reject(DESTINATION_INVALID, format!("Canister {canister} has no update method '{method}'")).with(ErrorCode::CanisterMethodNotFound));
        }
        if !has_update || !self.canisters[&canister].has_func("canister_inspect_message") {
            return Ok(());
        }
        let msg = Message::new(MessageKind::InspectMessage, method, caller.as_slice().to_vec(), arg.to_vec());
        let exec = self.run(canister, &Entry::Export("canister_inspect_message".into()), msg, self.limits.inspect, true);
        match &exec.trap {
            Some(t) => Err(self.trap_reject(canister, t)),
            None if !exec.msg.accepted => Err(reject(
                CANISTER_REJECT,
                format!("Canister {canister} rejected the message (inspect_message did not accept it)"),
            ).with(ErrorCode::CanisterRejectedMessage)),
            None => Ok(()),
        }
    }
}
