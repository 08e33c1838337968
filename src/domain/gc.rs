//! Housekeeping: expired sessions and the chunks nobody needs any more, freed in
//! bounded batches so no pass comes near the instruction limit, however much is due.
//! Freed arena space is reused by later uploads.

use ic_stable_structures::Memory;

use super::records::{SessionRecord, SessionStatus};
use super::{Ctx, State};
use crate::api::{Error, GcReport, Result};
use crate::storage::{ChunkKey, GcItem, OwnerSessionKey};

/// Session records examined per pass.
pub const GC_SESSIONS_PER_PASS: u32 = 100;
/// Chunks freed per pass.
pub const GC_CHUNKS_PER_PASS: u32 = 500;

impl<M: Memory + Clone> State<M> {
    /// Queues chunks `0..chunk_count` under `stem` (holding `bytes`) for freeing.
    pub(crate) fn enqueue_chunks(&mut self, stem: [u8; 32], chunk_count: u32, bytes: u64) {
        let seq = self.st.hdr.next_gc_seq;
        self.st.hdr.next_gc_seq += 1;
        self.st.gc_queue.insert(seq, GcItem { stem, next_idx: 0, chunk_count });
        self.st.hdr.gc_pending_bytes += bytes;
    }

    /// Moves a session's expiry to `new`.
    pub(crate) fn set_expiry(&mut self, rec: &mut SessionRecord, new: u64) {
        if rec.expires_at_ns != new {
            self.st.session_expiry.remove(&(rec.expires_at_ns, rec.id));
            self.st.session_expiry.insert((new, rec.id), ());
            rec.expires_at_ns = new;
        }
    }

    /// One bounded housekeeping pass: drop session records past their expiry (an open
    /// one gives its chunks to the queue), then free up to a batch of queued chunks.
    pub fn gc_pass(&mut self, now: u64) -> GcReport {
        let mut report = GcReport::default();
        let due: Vec<(u64, u64)> = self
            .st
            .session_expiry
            .range(..=(now, u64::MAX))
            .take(GC_SESSIONS_PER_PASS as usize)
            .map(|e| *e.key())
            .collect();
        for key in due {
            self.st.session_expiry.remove(&key);
            let Some(rec) = self.st.sessions.remove(&key.1).map(|r| r.0) else { continue };
            if rec.status == SessionStatus::Open {
                self.enqueue_chunks(rec.stem(), rec.chunk_count, rec.received_bytes);
                self.st.hdr.open_sessions -= 1;
                self.st.hdr.session_bytes -= rec.received_bytes;
                self.st.owner_sessions.remove(&OwnerSessionKey { owner: rec.owner, session_id: rec.id });
                self.forget_hasher(rec.id);
                report.sessions_expired += 1;
            }
            report.records_removed += 1;
        }
        let mut budget = GC_CHUNKS_PER_PASS;
        while budget > 0 {
            let Some((seq, mut item)) = self.st.gc_queue.first_key_value() else { break };
            while budget > 0 && item.next_idx < item.chunk_count {
                let key = ChunkKey { stem: item.stem, idx: item.next_idx };
                self.st.http.digests.remove(&key);
                if let Some(c) = self.st.chunks.remove(&key) {
                    self.st.arena.free(c.offset, u64::from(c.len));
                    self.st.hdr.gc_pending_bytes -= u64::from(c.len);
                    self.st.hdr.bytes_freed_total += u64::from(c.len);
                    report.chunks_freed += 1;
                    report.bytes_freed += u64::from(c.len);
                }
                item.next_idx += 1;
                budget -= 1;
            }
            if item.next_idx < item.chunk_count {
                self.st.gc_queue.insert(seq, item);
            } else {
                self.st.gc_queue.remove(&seq);
            }
        }
        report.more = !self.st.gc_queue.is_empty()
            || self.st.session_expiry.range(..=(now, u64::MAX)).next().is_some();
        self.st.save_header();
        report
    }

    /// Controllers: run one housekeeping pass now.
    pub fn admin_gc(&mut self, ctx: &Ctx) -> Result<GcReport> {
        if !ctx.is_controller {
            return Err(Error::Unauthorized("only canister controllers can run housekeeping".into()));
        }
        Ok(self.gc_pass(ctx.now))
    }
}
