//! Housekeeping: expired sessions and the chunks nobody needs any more, freed in
//! bounded batches so no pass comes near the instruction limit, however much is due.
//! Freed arena space is reused by later uploads.

use ic_stable_structures::Memory;

use super::records::{SessionRecord, SessionStatus};
use super::{Ctx, State};
use crate::api::{Error, GcReport, Result};
use crate::storage::{ChunkKey, ChunkRef, GcItem, OwnerSessionKey};

/// Session records examined per pass.
pub const GC_SESSIONS_PER_PASS: u32 = 100;
/// Chunks freed per pass (each queued item also counts one, found chunks or not).
pub const GC_CHUNKS_PER_PASS: u32 = 500;

impl<M: Memory + Clone> State<M> {
    /// Queues the chunks stored under `stem` (holding `bytes`) for freeing. Only chunks
    /// that exist are ever visited: housekeeping walks the chunk map under the stem, not
    /// the indexes a session declared.
    pub(crate) fn enqueue_chunks(&mut self, stem: [u8; 32], bytes: u64) {
        if bytes == 0 {
            return;
        }
        let seq = self.st.hdr.next_gc_seq;
        self.st.hdr.next_gc_seq += 1;
        self.st.gc_queue.insert(seq, GcItem { stem, next_idx: 0, chunk_count: u32::MAX });
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
            match rec.status {
                SessionStatus::Open => {
                    self.enqueue_chunks(rec.stem(), rec.received_bytes);
                    self.end_reservation(&rec, false);
                    self.forget_open_session(&rec);
                    report.sessions_expired += 1;
                }
                SessionStatus::Finished(_) => self.forget_finished(&rec),
                SessionStatus::Aborted => {}
            }
            // The record no longer counts against its owner's session records.
            self.st.owner_sessions.remove(&OwnerSessionKey::record(rec.owner, rec.id));
            report.records_removed += 1;
        }
        let mut budget = GC_CHUNKS_PER_PASS;
        while budget > 0 {
            let Some((seq, mut item)) = self.st.gc_queue.first_key_value() else { break };
            let from = ChunkKey { stem: item.stem, idx: item.next_idx };
            let to = ChunkKey { stem: item.stem, idx: item.chunk_count };
            let found: Vec<(ChunkKey, ChunkRef)> =
                self.st.chunks.range(from..to).take(budget as usize).map(|e| (*e.key(), e.value())).collect();
            budget = budget.saturating_sub((found.len() as u32).max(1));
            for (key, c) in &found {
                self.st.chunks.remove(key);
                self.st.http.digests.remove(key);
                self.st.arena.free(c.offset, u64::from(c.len));
                self.st.hdr.gc_pending_bytes = self.st.hdr.gc_pending_bytes.saturating_sub(u64::from(c.len));
                self.st.hdr.bytes_freed_total += u64::from(c.len);
                report.chunks_freed += 1;
                report.bytes_freed += u64::from(c.len);
            }
            match found.last() {
                // The budget ran out inside this item: continue after its last chunk.
                Some((last, _)) if budget == 0 => {
                    item.next_idx = last.idx + 1;
                    self.st.gc_queue.insert(seq, item);
                }
                _ => {
                    self.st.gc_queue.remove(&seq);
                }
            }
        }
        report.more = !self.st.gc_queue.is_empty()
            || self.st.session_expiry.range(..=(now, u64::MAX)).next().is_some();
        self.st.save_header();
        report
    }

    /// The record of finished session `rec` is dropped: its `finished` entry goes with
    /// it unless the session made the blob it names (that entry lives as long as the blob,
    /// and `free_blob` removes it). Only sessions from before this rule have an entry of
    /// the other kind (those that found their bytes already stored, by dedup at begin or
    /// at finish); an entry naming a deleted blob answers nothing and goes too.
    fn forget_finished(&mut self, rec: &SessionRecord) {
        let Some(blob_id) = self.st.finished.get(&rec.id) else { return };
        let made_it = self.st.blobs.get(&blob_id).is_some_and(|b| b.0.session_id == rec.id);
        if !made_it {
            self.st.finished.remove(&rec.id);
        }
    }

    /// Controllers: run one housekeeping pass now.
    pub fn admin_gc(&mut self, ctx: &Ctx) -> Result<GcReport> {
        if !ctx.is_controller {
            return Err(Error::Unauthorized("only canister controllers can run housekeeping".into()));
        }
        Ok(self.gc_pass(ctx.now))
    }
}
