//! Domain logic: uploads, blobs, capsules. Pure Rust over any `Memory`, so it is tested
//! natively over `VectorMemory`; the endpoint layer in `lib.rs` only adds the caller,
//! the time and Candid.

pub mod blobs;
pub mod capsules;
pub mod gc;
pub mod memories;
pub mod records;
pub mod uploads;

use std::collections::HashMap;

use candid::Principal;
use ic_stable_structures::Memory;
use sha2::Sha256;

use crate::api::{Error, Result, Role, Stats, UploadConfig};
use crate::storage::{Stable, LAYOUT_VERSION};
use records::CapsuleRecord;

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
    hashers: HashMap<u64, (u32, Sha256)>,
}

impl<M: Memory + Clone> State<M> {
    pub fn open(memory: M) -> std::result::Result<Self, String> {
        Ok(State { st: Stable::open(memory)?, hashers: HashMap::new() })
    }

    pub fn upload_config(&self) -> UploadConfig {
        self.st.config().view()
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
            reserved_bytes: None,
            stored_bytes: None,
        }
    }

    pub(crate) fn capsule(&self, id: u64) -> Result<CapsuleRecord> {
        self.st
            .capsules
            .get(&id)
            .map(|c| c.0)
            .ok_or_else(|| Error::NotFound(format!("capsule {id} does not exist")))
    }

    /// The caller's role in a capsule; controllers act as owners.
    pub(crate) fn role(&self, ctx: &Ctx, capsule: &CapsuleRecord) -> Option<Role> {
        if ctx.is_controller {
            return Some(Role::Owner);
        }
        capsule.role_of(&ctx.caller)
    }

    pub(crate) fn require_role(&self, ctx: &Ctx, capsule_id: u64, min: Role) -> Result<CapsuleRecord> {
        if ctx.caller == Principal::anonymous() && min > Role::Reader {
            return Err(Error::Unauthorized("anonymous callers cannot write; sign in first".into()));
        }
        let capsule = self.capsule(capsule_id)?;
        match self.role(ctx, &capsule) {
            Some(r) if r >= min => Ok(capsule),
            Some(r) => Err(Error::Unauthorized(format!(
                "caller {} is {r:?} of capsule {capsule_id}; this needs {min:?}",
                ctx.caller
            ))),
            None => Err(Error::Unauthorized(format!(
                "caller {} is not a member of capsule {capsule_id}",
                ctx.caller
            ))),
        }
    }
}

impl<M: Memory + Clone> State<M> {
    pub(crate) fn forget_hasher(&mut self, session_id: u64) {
        self.hashers.remove(&session_id);
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
