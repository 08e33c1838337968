//! Space and counts, checked before anything is written.
//!
//! - A capsule holds at most `max_capsule_bytes`: its blobs and inline assets
//!   (`bytes_used`) plus the declared sizes of its open upload sessions
//!   (`reserved_bytes`, reserved at `uploads_begin`, given back when the session ends).
//!   So every begun upload fits at finish, and parallel uploads are refused at begin,
//!   not after the whole file was sent.
//! - The canister stores at most `max_stored_bytes` (at most 400 GiB of the IC's
//!   500 GiB): arena bytes in use (blobs, inline assets, chunks of open sessions and
//!   chunks waiting to be freed) plus what open sessions declared and have not sent.
//!   The arena itself never grows past that plus 1/16 (room for fragmentation); the
//!   rest of stable memory is headroom for the indexes, so a full canister still
//!   aborts, deletes and frees.
//! - Upload sessions: `max_live_sessions_per_caller` open ones per caller, and
//!   `max_session_records_per_caller` records per caller in every state (open, finished,
//!   aborted, expired and not yet collected: each is kept one TTL after it ends), counted
//!   from the caller's record entries in the `owner_sessions` index. A begin that finds
//!   its bytes already stored makes a record too, and is checked for space like any
//!   begin (it reserves nothing: there is nothing to upload).
//! - Capsules: `max_capsules_per_caller` per principal (controllers are exempt) and
//!   `max_capsules` in all; members plus invitations per capsule: `MAX_MEMBERS`.
//! - Memories: `max_memories_per_capsule` per capsule. Each memory is also charged to
//!   its capsule's `bytes_used` for its record and its certified HTTP responses
//!   (`records::memory_charge`), so a full capsule creates nothing more, not even
//!   memories over blobs it already has.

use candid::Principal;
use ic_stable_structures::Memory;

use super::records::{
    CapsuleRecord, Config, SessionRecord, MAX_CHUNKS, MAX_CHUNK_SIZE, MAX_LIVE_SESSIONS_LIMIT,
    MAX_MEMORIES_PER_CAPSULE_LIMIT, MAX_SESSION_RECORDS_LIMIT, MAX_STORED_BYTES_LIMIT,
};
use super::{Ctx, State};
use crate::api::{Error, Result};
use crate::storage::{Cbor, OwnerSessionKey, PrincipalKey};

impl<M: Memory + Clone> State<M> {
    /// Bytes counted against `max_stored_bytes` now.
    pub(crate) fn stored_bytes(&self) -> u64 {
        let h = &self.st.hdr;
        let in_use = self.st.arena.end.saturating_sub(self.st.arena.free_bytes);
        in_use.saturating_sub(h.session_bytes).saturating_add(h.reserved_bytes)
    }

    /// `cfg.max_stored_bytes` within what the layout can hold.
    pub(crate) fn max_stored_bytes(&self, cfg: &Config) -> u64 {
        cfg.max_stored_bytes.min(self.st.capacity_bytes())
    }

    /// Can `capsule` take `add` more bytes, and can the canister?
    pub(crate) fn check_space(&self, capsule: &CapsuleRecord, add: u64) -> Result<()> {
        if add == 0 {
            return Ok(()); // nothing new to store
        }
        let cfg = self.st.config();
        let held = capsule.bytes_used.saturating_add(capsule.reserved_bytes);
        if held.saturating_add(add) > cfg.max_capsule_bytes {
            return Err(Error::QuotaExceeded(format!(
                "capsule {} holds {} bytes and has {} reserved by open uploads, of its {} bytes; {add} more do not fit",
                capsule.id, capsule.bytes_used, capsule.reserved_bytes, cfg.max_capsule_bytes
            )));
        }
        let stored = self.stored_bytes();
        let max = self.max_stored_bytes(&cfg);
        if stored.saturating_add(add) > max {
            return Err(Error::QuotaExceeded(format!(
                "the canister stores {stored} of its {max} bytes; {add} more do not fit (deleted data is freed by housekeeping)"
            )));
        }
        Ok(())
    }

    /// Can `capsule` take a memory's `charge` (its record and certification, see
    /// `records::memory_charge`) and `inline` bytes of new inline assets? The capsule
    /// counts both; the canister's `max_stored_bytes` counts the arena, so only
    /// `inline`. `what` names the call in the refusal.
    pub(crate) fn check_memory_space(&self, cfg: &Config, capsule: &CapsuleRecord, inline: u64, charge: u64, what: &str) -> Result<()> {
        let add = inline.saturating_add(charge);
        let held = capsule.bytes_used.saturating_add(capsule.reserved_bytes);
        if add > 0 && held.saturating_add(add) > cfg.max_capsule_bytes {
            return Err(Error::QuotaExceeded(format!(
                "capsule {} holds {} bytes (blobs, inline assets, memories' records and certification) and has {} reserved by open uploads, of its {} bytes; {what} needs {add} more ({inline} inline, {charge} for the memory's record and certified responses): delete something first",
                capsule.id, capsule.bytes_used, capsule.reserved_bytes, cfg.max_capsule_bytes
            )));
        }
        if inline > 0 {
            let stored = self.stored_bytes();
            let max = self.max_stored_bytes(cfg);
            if stored.saturating_add(inline) > max {
                return Err(Error::QuotaExceeded(format!(
                    "the canister stores {stored} of its {max} bytes; {inline} more do not fit (deleted data is freed by housekeeping)"
                )));
            }
        }
        Ok(())
    }

    /// The number of memories in `capsule`, if it may hold one more
    /// (`max_memories_per_capsule`). Capsules created before memories were counted
    /// (`memory_count: None`) are counted here from the index, up to the limit + 1: work
    /// bounded by the limit (at most `MAX_MEMORIES_PER_CAPSULE_LIMIT` entries), done once
    /// per such capsule, since the create that follows stores the count.
    pub(crate) fn check_memory_count(&self, cfg: &Config, capsule: &CapsuleRecord) -> Result<u64> {
        let max = cfg.max_memories_per_capsule;
        let (n, exact) = match capsule.memory_count {
            Some(n) => (n, true),
            None => {
                let counted = self
                    .st
                    .capsule_memories
                    .range((capsule.id, 0)..=(capsule.id, u64::MAX))
                    .take(usize::try_from(max.saturating_add(1)).unwrap_or(usize::MAX))
                    .count() as u64;
                (counted, counted <= max)
            }
        };
        if n >= max {
            let at_least = if exact { "" } else { "at least " };
            return Err(Error::QuotaExceeded(format!(
                "capsule {} holds {at_least}{n} memories, the most one capsule may (max_memories_per_capsule = {max}): delete some first",
                capsule.id
            )));
        }
        Ok(n)
    }

    /// Session records `owner` holds, in any state, counted up to `max` (so at most
    /// `max` index keys are read).
    pub(crate) fn session_records_of(&self, owner: Principal, max: u32) -> u32 {
        let from = OwnerSessionKey::record(owner, 0);
        let to = OwnerSessionKey::record(owner, u64::MAX);
        self.st.owner_sessions.range(from..=to).take(max as usize).count() as u32
    }

    /// May `owner` begin one more upload session (`max_session_records_per_caller`)?
    pub(crate) fn check_session_records(&self, cfg: &Config, owner: Principal) -> Result<()> {
        let max = cfg.max_session_records_per_caller;
        let held = self.session_records_of(owner, max);
        if held >= max {
            let ttl_s = cfg.session_ttl_ns / 1_000_000_000;
            return Err(Error::QuotaExceeded(format!(
                "caller holds {held} upload session records, the most one caller may (max_session_records_per_caller = {max}): open, finished, aborted or expired sessions each keep a record until housekeeping drops it, one session_ttl_ns ({ttl_s} s) after the session ended"
            )));
        }
        Ok(())
    }

    /// Reserves a new open session's declared size (the caller writes `capsule`).
    pub(crate) fn reserve(&mut self, capsule: &mut CapsuleRecord, size: u64) {
        capsule.reserved_bytes += size;
        self.st.hdr.reserved_bytes += size;
    }

    /// Gives back what an open session reserved; `commit` moves it into the capsule's
    /// used bytes (the session became a new blob).
    pub(crate) fn end_reservation(&mut self, rec: &SessionRecord, commit: bool) {
        let size = rec.reserved();
        self.st.hdr.reserved_bytes = self.st.hdr.reserved_bytes.saturating_sub(size);
        if let Some(mut c) = self.st.capsules.get(&rec.capsule_id).map(|c| c.0) {
            c.reserved_bytes = c.reserved_bytes.saturating_sub(size);
            if commit {
                c.bytes_used += rec.size;
            }
            self.st.capsules.insert(c.id, Cbor(c));
        }
    }

    /// Reserves `len` bytes of the arena, within its cap.
    pub(crate) fn alloc(&mut self, len: u64) -> Result<u64> {
        let cap = self.max_stored_bytes(&self.st.config());
        let limit = cap.saturating_add(cap / 16);
        self.st
            .arena
            .alloc_within(len, limit)
            .map_err(|_| Error::QuotaExceeded("the canister's storage is full; delete data or try later".into()))
    }

    /// May `ctx.caller` create one more capsule?
    pub(crate) fn check_capsule_create(&self, ctx: &Ctx) -> Result<()> {
        self.check_capsule_count()?;
        let cfg = self.st.config();
        let made = self.capsules_created_by(ctx.caller);
        if !ctx.is_controller && made >= cfg.max_capsules_per_caller {
            return Err(Error::QuotaExceeded(format!(
                "caller has created {made} capsules, the most one principal may (max_capsules_per_caller)"
            )));
        }
        Ok(())
    }

    /// Has the canister room for one more capsule (`max_capsules`)?
    pub(crate) fn check_capsule_count(&self) -> Result<()> {
        let max = self.st.config().max_capsules;
        if self.st.capsules.len() >= max {
            return Err(Error::QuotaExceeded(format!("the canister holds its maximum of {max} capsules")));
        }
        Ok(())
    }

    pub(crate) fn capsules_created_by(&self, p: Principal) -> u32 {
        self.st.principals.get(&PrincipalKey(p)).unwrap_or(0)
    }

    pub(crate) fn count_capsule_created(&mut self, p: Principal) {
        let n = self.capsules_created_by(p);
        self.st.principals.insert(PrincipalKey(p), n + 1);
    }
}

/// The limits a controller may set.
pub(crate) fn validate_config(cfg: &Config) -> Result<()> {
    let max_file = u64::from(MAX_CHUNKS) * u64::from(MAX_CHUNK_SIZE);
    let problem = if cfg.max_file_size == 0 || cfg.max_file_size > max_file {
        format!("max_file_size must be 1 to {max_file} bytes ({MAX_CHUNKS} chunks of {MAX_CHUNK_SIZE})")
    } else if cfg.max_live_sessions_per_caller == 0 || cfg.max_live_sessions_per_caller > MAX_LIVE_SESSIONS_LIMIT {
        format!("max_live_sessions_per_caller must be 1 to {MAX_LIVE_SESSIONS_LIMIT}")
    } else if cfg.session_ttl_ns < 60_000_000_000 {
        "session_ttl_ns must be at least 60 s".to_string()
    } else if cfg.max_session_records_per_caller < cfg.max_live_sessions_per_caller
        || cfg.max_session_records_per_caller > MAX_SESSION_RECORDS_LIMIT
    {
        format!("max_session_records_per_caller must be max_live_sessions_per_caller ({}) to {MAX_SESSION_RECORDS_LIMIT}", cfg.max_live_sessions_per_caller)
    } else if cfg.max_memories_per_capsule > MAX_MEMORIES_PER_CAPSULE_LIMIT {
        format!(
            "max_memories_per_capsule must be at most {MAX_MEMORIES_PER_CAPSULE_LIMIT}: capsules created before memories were counted are counted once up to it"
        )
    } else if cfg.max_stored_bytes > MAX_STORED_BYTES_LIMIT {
        format!(
            "max_stored_bytes must be at most {MAX_STORED_BYTES_LIMIT}: the rest of the 500 GiB of stable memory is headroom for indexes and housekeeping"
        )
    } else {
        return Ok(());
    };
    Err(Error::InvalidArgument(problem))
}
