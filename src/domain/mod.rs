//! Domain logic: uploads, blobs, capsules. Pure Rust over any `Memory`, so it is tested
//! natively over `VectorMemory`; the endpoint layer in `lib.rs` only adds the caller,
//! the time and Candid.

pub mod access;
pub mod blobs;
pub mod capsules;
pub mod gc;
pub mod http;
pub mod http_cert;
pub mod http_certify;
pub mod links;
pub mod members;
pub mod memories;
pub mod pages;
pub mod quota;
pub mod records;
pub mod uploads;

use std::collections::HashMap;

use candid::Principal;
use ic_stable_structures::Memory;
use sha2::Sha256;

use crate::api::{Stats, UploadConfig};
use crate::storage::{Stable, LAYOUT_VERSION};

/// Who is calling, and when.
#[derive(Clone, Copy, Debug)]
pub struct Ctx {
    pub caller: Principal,
    pub now: u64,
    /// Canister controllers administer the canister.
    pub is_controller: bool,
}

/// The canister's whole state: stable structures plus a heap cache of live hashers.
/// Dropping a `State` and opening a new one over the same memory is exactly what an
/// upgrade does.
pub struct State<M: Memory> {
    pub(crate) st: Stable<M>,
    /// Live rolling hashers by session id, with the chunk count they cover. A cache of
    /// the serialized state in the session record, never the only copy.
    pub(crate) hashers: HashMap<u64, (u32, Sha256)>,
    /// Whether the certification tree's root changed (the tree is in stable memory).
    pub(crate) http: http_certify::HttpCache,
}

impl<M: Memory + Clone> State<M> {
    pub fn open(memory: M) -> std::result::Result<Self, String> {
        let mut s = State { st: Stable::open(memory)?, hashers: HashMap::new(), http: http_certify::HttpCache::default() };
        s.ensure_not_found_certified();
        Ok(s)
    }

    pub fn upload_config(&self) -> UploadConfig {
        let cfg = self.st.config();
        let mut v = cfg.view();
        v.max_stored_bytes = Some(self.max_stored_bytes(&cfg));
        v
    }

    pub fn stats(&self) -> Stats {
        let h = &self.st.hdr;
        Stats {
            layout_version: LAYOUT_VERSION,
            blobs: h.blob_count,
            blob_bytes: h.blob_bytes,
            open_sessions: h.open_sessions,
            session_bytes: h.session_bytes,
            arena_bytes: self.st.arena.end,
            free_bytes: self.st.arena.free_bytes,
            stable_pages: self.st.stable_pages(),
            capsules: self.st.capsules.len(),
            memories: h.memory_count,
            gc_pending_bytes: h.gc_pending_bytes,
            bytes_freed_total: h.bytes_freed_total,
            reserved_bytes: Some(h.reserved_bytes),
            stored_bytes: Some(self.stored_bytes()),
            capacity_bytes: Some(self.st.capacity_bytes()),
        }
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
