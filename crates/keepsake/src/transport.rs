//! The transport seam: raw Candid bytes in, raw Candid bytes out. Two implementations:
//! [`crate::embedded::EmbeddedTransport`] (the canister Wasm in-process) and
//! [`crate::agent::AgentTransport`] (a replica or mainnet through ic-agent).

use candid::Principal;
use futures::future::LocalBoxFuture;

/// Query or update: decides how the call is sent (and whether it can change state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallKind {
    Query,
    Update,
}

/// One fully built request: the method, how to send it, and its Candid argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub kind: CallKind,
    pub method: &'static str,
    pub arg: Vec<u8>,
}

/// A failure below the canister's own typed `Error`: the call did not produce a reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransportError {
    /// Worth retrying (network trouble, timeouts, a busy subnet: IC reject code 2).
    Transient(String),
    /// Not worth retrying (a trap, an unknown method, a malformed request …).
    Fatal { code: Option<u32>, message: String },
}

impl TransportError {
    pub fn is_transient(&self) -> bool {
        matches!(self, TransportError::Transient(_))
    }
}

impl std::fmt::Display for TransportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransportError::Transient(m) => write!(f, "transient failure: {m}"),
            TransportError::Fatal {
                code: Some(c),
                message,
            } => write!(f, "call rejected (code {c}): {message}"),
            TransportError::Fatal {
                code: None,
                message,
            } => write!(f, "call failed: {message}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// Sends [`Request`]s to one canister as one caller.
///
/// Futures are not required to be `Send`: the engine drives its in-flight calls on a
/// single task (`FuturesUnordered`), which is all the concurrency an I/O-bound client
/// needs and lets the embedded host live behind a plain `Mutex`.
pub trait Transport {
    fn call(&self, req: Request) -> LocalBoxFuture<'_, Result<Vec<u8>, TransportError>>;
    /// The principal the canister sees as caller.
    fn caller(&self) -> Principal;
    /// A stable name of the target (used to key the resume journal).
    fn target(&self) -> String;
    /// Persist whatever local state the transport has (the embedded host's canister
    /// state). No-op for remote transports.
    fn checkpoint(&self) -> anyhow::Result<()> {
        Ok(())
    }
    /// The call as the canister's controller, where the user operates this canister
    /// (the embedded host on their own machine): `stats` is for controllers only.
    /// Remote transports call as their identity and cannot (`None`).
    fn call_as_controller(&self, _req: Request) -> Option<LocalBoxFuture<'_, Result<Vec<u8>, TransportError>>> {
        None
    }
}

/// A shared transport (e.g. one embedded canister used by a client and by a test that
/// also moves its clock).
impl<T: Transport + ?Sized> Transport for std::rc::Rc<T> {
    fn call(&self, req: Request) -> LocalBoxFuture<'_, Result<Vec<u8>, TransportError>> {
        (**self).call(req)
    }
    fn caller(&self) -> Principal {
        (**self).caller()
    }
    fn target(&self) -> String {
        (**self).target()
    }
    fn checkpoint(&self) -> anyhow::Result<()> {
        (**self).checkpoint()
    }
    fn call_as_controller(&self, req: Request) -> Option<LocalBoxFuture<'_, Result<Vec<u8>, TransportError>>> {
        (**self).call_as_controller(req)
    }
}
