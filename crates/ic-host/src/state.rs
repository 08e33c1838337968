//! Canister state (what survives messages and upgrades) and per-message context.

use candid::Principal;

/// Wasm / stable memory page size (64 KiB).
pub const PAGE_SIZE: u64 = 64 * 1024;
/// Default stable memory limit: 500 GiB worth of pages.
pub const DEFAULT_MAX_STABLE_PAGES: u64 = 500 * 1024 * 1024 * 1024 / PAGE_SIZE;

/// Stable memory, stored sparsely: `data` only extends as far as the highest
/// byte ever written; everything between `data.len()` and the logical size
/// reads as zero.
///
/// Writes are journaled (offset + overwritten bytes) while a message runs so
/// that a trap can undo them in O(bytes written) rather than O(memory size).
#[derive(Debug, Default)]
pub(crate) struct StableMemory {
    data: Vec<u8>,
    pages: u64,
    pub max_pages: u64,
    journal: Option<Journal>,
}

#[derive(Debug)]
struct Journal {
    pages: u64,
    data_len: usize,
    /// (offset, bytes that were there before the write), in write order.
    writes: Vec<(usize, Vec<u8>)>,
}

/// A stable memory access outside the current size.
#[derive(Debug)]
pub(crate) struct OutOfBounds;

impl StableMemory {
    pub fn new(max_pages: u64) -> Self {
        Self { data: Vec::new(), pages: 0, max_pages, journal: None }
    }

    /// Restores from persisted parts; `data` may be shorter than `pages` (zero tail).
    pub fn from_parts(mut data: Vec<u8>, pages: u64, max_pages: u64) -> Option<Self> {
        let size = pages.checked_mul(PAGE_SIZE)?;
        if data.len() as u64 > size {
            return None;
        }
        trim_zeros(&mut data);
        Some(Self { data, pages, max_pages, journal: None })
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }

    pub fn size_bytes(&self) -> u64 {
        self.pages * PAGE_SIZE
    }

    /// The stored prefix of stable memory (the rest is zero).
    pub fn stored(&self) -> &[u8] {
        &self.data
    }

    /// Starts journaling (one level; beginning again keeps the older journal).
    pub fn begin(&mut self) {
        if self.journal.is_none() {
            self.journal = Some(Journal { pages: self.pages, data_len: self.data.len(), writes: Vec::new() });
        }
    }

    pub fn commit(&mut self) {
        self.journal = None;
    }

    pub fn rollback(&mut self) {
        if let Some(j) = self.journal.take() {
            for (offset, old) in j.writes.into_iter().rev() {
                self.data[offset..offset + old.len()].copy_from_slice(&old);
            }
            self.data.truncate(j.data_len);
            self.pages = j.pages;
        }
    }

    /// `ic0.stable64_grow`: old size in pages, or `u64::MAX` when over the limit.
    pub fn grow(&mut self, new_pages: u64) -> u64 {
        match self.pages.checked_add(new_pages) {
            Some(total) if total <= self.max_pages => {
                let old = self.pages;
                self.pages = total;
                old
            }
            _ => u64::MAX,
        }
    }

    fn check(&self, offset: u64, len: u64) -> Result<(), OutOfBounds> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size_bytes() => Ok(()),
            _ => Err(OutOfBounds),
        }
    }

    pub fn read(&self, offset: u64, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len() as u64)?;
        let start = offset as usize;
        let stored_end = self.data.len();
        if start >= stored_end {
            dst.fill(0);
            return Ok(());
        }
        let n = dst.len().min(stored_end - start);
        dst[..n].copy_from_slice(&self.data[start..start + n]);
        dst[n..].fill(0);
        Ok(())
    }

    /// Writes `src`; `Err(None)` = out of bounds, `Err(Some(_))` = host out of memory.
    pub fn write(&mut self, offset: u64, src: &[u8]) -> Result<(), WriteError> {
        self.check(offset, src.len() as u64).map_err(|_| WriteError::OutOfBounds)?;
        if src.is_empty() {
            return Ok(());
        }
        let start = usize::try_from(offset).map_err(|_| WriteError::HostMemory)?;
        let end = start + src.len();
        let len = self.data.len();
        if let Some(j) = self.journal.as_mut() {
            if start < len {
                j.writes.push((start, self.data[start..end.min(len)].to_vec()));
            }
        }
        if end > len {
            // Amortized growth, but never beyond the logical size.
            let cap_target = end.max(len.saturating_mul(2).min(self.size_bytes() as usize));
            self.data.try_reserve_exact(cap_target - len).map_err(|_| WriteError::HostMemory)?;
            self.data.resize(end, 0);
        }
        self.data[start..end].copy_from_slice(src);
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) enum WriteError {
    OutOfBounds,
    HostMemory,
}

pub(crate) fn trim_zeros(data: &mut Vec<u8>) {
    let keep = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    data.truncate(keep);
}

/// Everything about the canister except its Wasm instance.
#[derive(Debug)]
pub(crate) struct CanisterState {
    pub canister_id: Principal,
    pub controllers: Vec<Principal>,
    pub stable: StableMemory,
    pub time: u64,
    /// 0 = deactivated.
    pub global_timer: u64,
    pub certified_data: Vec<u8>,
    pub canister_version: u64,
    pub cycle_balance: u128,
}

/// The small, canister-mutable parts of [`CanisterState`] saved for rollback.
#[derive(Debug, Clone)]
pub(crate) struct SmallState {
    pub global_timer: u64,
    pub certified_data: Vec<u8>,
    pub canister_version: u64,
}

impl CanisterState {
    pub fn small(&self) -> SmallState {
        SmallState {
            global_timer: self.global_timer,
            certified_data: self.certified_data.clone(),
            canister_version: self.canister_version,
        }
    }

    pub fn restore_small(&mut self, s: SmallState) {
        self.global_timer = s.global_timer;
        self.certified_data = s.certified_data;
        self.canister_version = s.canister_version;
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
    /// `canister_post_upgrade` (also run by [`crate::Host::load_state`]).
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
}

/// Function-table indices and environments of a call's callbacks.
#[derive(Debug, Clone, Copy)]
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
    /// Instructions charged for system API calls (see [`crate::metering`]).
    pub system_api_instructions: u64,
    /// The message of a trap raised by the host (ic0.trap or a system API misuse).
    pub host_trap: Option<String>,
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
            host_trap: None,
            data_certificate: None,
        }
    }
}

/// The wasmtime store data.
pub(crate) struct StoreData {
    pub canister: CanisterState,
    pub msg: Message,
    pub logs: Vec<String>,
    /// Charge system API calls (see [`crate::metering`]).
    pub metering: bool,
}

impl StoreData {
    pub fn log(&mut self, line: String) {
        if std::env::var_os("IC_HOST_LOG").is_some_and(|v| v == "1") {
            eprintln!("[ic-host {}] {}", self.canister.canister_id, line);
        }
        self.logs.push(line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_rolls_back_writes_and_growth() {
        let mut s = StableMemory::new(100);
        assert_eq!(s.grow(1), 0);
        s.write(10, b"hello").unwrap();
        s.commit();
        s.begin();
        assert_eq!(s.grow(2), 1);
        s.write(12, b"XXXXXXXX").unwrap();
        s.write(PAGE_SIZE * 2, b"far").unwrap();
        s.rollback();
        assert_eq!(s.pages(), 1);
        let mut buf = [0u8; 8];
        s.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"hello\0\0\0");
        assert_eq!(s.stored().len(), 15);
        assert!(s.read(PAGE_SIZE, &mut buf).is_err());
        assert_eq!(s.grow(1000), u64::MAX);
    }
}
