//! Canister state (what survives messages and upgrades) and per-message context.

use candid::{CandidType, Principal};
use serde::Deserialize;

use crate::stable::StableMemory;

/// Wasm / stable memory page size (64 KiB).
pub const PAGE_SIZE: u64 = 64 * 1024;
/// A canister's run status (`canister_status`, `start_canister`, `stop_canister`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, CandidType, Deserialize, Default)]
pub enum CanisterStatus {
    #[default]
    Running,
    /// Stop requested: no new calls are accepted; stopped once its open calls finish.
    Stopping,
    Stopped,
}

impl CanisterStatus {
    /// The value of `ic0.canister_status`.
    pub fn code(self) -> u32 {
        match self {
            CanisterStatus::Running => 1,
            CanisterStatus::Stopping => 2,
            CanisterStatus::Stopped => 3,
        }
    }
}

/// Everything about the canister except its Wasm instance.
#[derive(Debug)]
pub(crate) struct CanisterState {
    pub canister_id: Principal,
    pub controllers: Vec<Principal>,
    pub stable: StableMemory,
    /// 0 = deactivated.
    pub global_timer: u64,
    pub certified_data: Vec<u8>,
    pub canister_version: u64,
    pub cycle_balance: u128,
    pub status: CanisterStatus,
}

impl Default for CanisterState {
    fn default() -> Self {
        Self {
            canister_id: Principal::management_canister(),
            controllers: Vec::new(),
            stable: StableMemory::default(),
            global_timer: 0,
            certified_data: Vec::new(),
            canister_version: 0,
            cycle_balance: 0,
            status: CanisterStatus::Running,
        }
    }
}

/// The small, canister-mutable parts of [`CanisterState`] saved for rollback.
#[derive(Debug, Clone)]
pub(crate) struct SmallState {
    pub global_timer: u64,
    pub certified_data: Vec<u8>,
    pub canister_version: u64,
    pub cycle_balance: u128,
}

impl CanisterState {
    pub fn small(&self) -> SmallState {
        SmallState {
            global_timer: self.global_timer,
            certified_data: self.certified_data.clone(),
            canister_version: self.canister_version,
            cycle_balance: self.cycle_balance,
        }
    }

    pub fn restore_small(&mut self, s: SmallState) {
        self.global_timer = s.global_timer;
        self.certified_data = s.certified_data;
        self.canister_version = s.canister_version;
        self.cycle_balance = s.cycle_balance;
    }
}

/// The kind of message (the IC's "execution context"), which decides what
/// parts of the system API are available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// `canister_init`.
    Init,
    /// `canister_pre_upgrade`.
    PreUpgrade,
    /// `canister_post_upgrade` (also run when a legacy state file is imported).
    PostUpgrade,
    /// `canister_inspect_message` (run before every external update).
    InspectMessage,
    /// `canister_update <name>`.
    Update,
    /// `canister_query <name>` called as a query: never commits.
    Query,
    /// `canister_query <name>` called through the update path: runs
    /// replicated, still never commits (as on the IC).
    ReplicatedQuery,
    /// `canister_global_timer`.
    GlobalTimer,
    /// Reply callback of an inter-canister call.
    ReplyCallback,
    /// Reject callback of an inter-canister call.
    RejectCallback,
    /// Cleanup callback (after a reply/reject callback trapped).
    Cleanup,
}

/// A call a canister has started with `ic0.call_new` (and maybe performed).
#[derive(Debug, Clone)]
pub(crate) struct OutgoingCall {
    pub callee: Vec<u8>,
    pub method: String,
    pub arg: Vec<u8>,
    pub callbacks: Callbacks,
    /// Cycles attached (already taken from the balance).
    pub cycles: u128,
}

/// Function-table indices and environments of a call's callbacks.
#[derive(Debug, Clone, Copy, CandidType, Deserialize)]
pub(crate) struct Callbacks {
    pub reply: (u32, u32),
    pub reject: (u32, u32),
    pub cleanup: Option<(u32, u32)>,
}

/// What a message did with its call context.
#[derive(Debug, Clone)]
pub(crate) enum Response {
    Reply(Vec<u8>),
    Reject(String),
}

/// Per-message context, reset before every message.
#[derive(Debug)]
pub(crate) struct Message {
    pub kind: MessageKind,
    pub method: String,
    pub caller: Vec<u8>,
    pub arg: Vec<u8>,
    /// Set for reject callbacks.
    pub reject: Option<(u32, String)>,
    /// False when the call context was already responded to (or the kind cannot respond).
    pub can_respond: bool,
    pub reply_buf: Vec<u8>,
    pub response: Option<Response>,
    pub pending_call: Option<OutgoingCall>,
    pub performed_calls: Vec<OutgoingCall>,
    pub accepted: bool,
    pub fuel_limit: u64,
    /// Instructions spent by earlier messages of this call context.
    pub context_instructions: u64,
    pub stable_read: u64,
    pub stable_written: u64,
    /// Instructions charged for system API calls (see [`crate::metering`]), the dirtied
    /// stable pages' charge included.
    pub system_api_instructions: u64,
    /// 4 KiB stable pages this message may dirty / access (see [`crate::metering::PageLimits`]).
    pub dirty_page_limit: u64,
    pub accessed_page_limit: u64,
    /// The message of a trap raised by the host (ic0.trap or a system API misuse).
    pub host_trap: Option<String>,
    /// The host's time (`ic0.time`).
    pub time: u64,
    /// Cycles the caller attached that are still available to accept.
    pub cycles_available: u128,
    /// Cycles refunded with the response (reply/reject callbacks).
    pub cycles_refunded: u128,
    /// `ic0.data_certificate_*`: set for non-replicated queries (see `crate::certify`).
    pub data_certificate: Option<Vec<u8>>,
}

impl Message {
    pub fn new(kind: MessageKind, method: &str, caller: Vec<u8>, arg: Vec<u8>) -> Self {
        Self {
            kind,
            method: method.to_string(),
            caller,
            arg,
            reject: None,
            can_respond: matches!(
                kind,
                MessageKind::Update
                    | MessageKind::Query
                    | MessageKind::ReplicatedQuery
                    | MessageKind::ReplyCallback
                    | MessageKind::RejectCallback
            ),
            reply_buf: Vec::new(),
            response: None,
            pending_call: None,
            performed_calls: Vec::new(),
            accepted: false,
            fuel_limit: 0,
            context_instructions: 0,
            stable_read: 0,
            stable_written: 0,
            system_api_instructions: 0,
            dirty_page_limit: crate::metering::DIRTY_PAGE_LIMITS.for_kind(kind),
            accessed_page_limit: crate::metering::ACCESSED_PAGE_LIMITS.for_kind(kind),
            host_trap: None,
            time: 0,
            cycles_available: 0,
            cycles_refunded: 0,
            data_certificate: None,
        }
    }
}

impl Default for Message {
    fn default() -> Self {
        Message::new(MessageKind::Init, "", Vec::new(), Vec::new())
    }
}

/// Log lines kept per canister (older ones are dropped, so a long-running host does not grow).
const MAX_LOG_LINES: usize = 10_000;

/// The wasmtime store data.
#[derive(Default)]
pub(crate) struct StoreData {
    pub canister: CanisterState,
    pub msg: Message,
    pub logs: Vec<String>,
}

impl StoreData {
    pub fn log(&mut self, line: String) {
        if std::env::var_os("IC_HOST_LOG").is_some_and(|v| v == "1") {
            eprintln!("[ic-host {}] {}", self.canister.canister_id, line);
        }
        if self.logs.len() >= MAX_LOG_LINES {
            self.logs.drain(..MAX_LOG_LINES / 2);
        }
        self.logs.push(line);
    }
}
