//! Committed blobs: metadata, one chunk or a byte range; the list of a capsule's blobs,
//! and deleting the ones no memory uses (finished uploads never attached to a memory,
//! and every blob uploaded before memories existed), which otherwise would count
//! against the quota forever.

use ic_stable_structures::Memory;

use super::pages::{blob_size, collect_page};
use super::records::{BlobRecord, MAX_READ_BYTES};
use super::uploads::{blob_meta, dedup_entry};
use super::{Ctx, State};
use crate::api::{BlobMeta, BlobPage, Error, Result, Role};
use crate::storage::ChunkKey;

impl<M: Memory + Clone> State<M> {
    fn readable_blob(&self, ctx: &Ctx, blob_id: u64) -> Result<BlobRecord> {
        self.visible_blob(ctx, blob_id, Role::Reader)
    }

    /// A capsule's blobs by id, with how many memory assets use each.
    pub fn blobs_list(&self, ctx: &Ctx, capsule_id: u64, cursor: Option<u64>, limit: u32) -> Result<BlobPage> {
        self.require_role(ctx, capsule_id, Role::Reader)?;
        let from = cursor.map_or(0, |c| c.saturating_add(1));
        let ids = self.st.capsule_blobs.range((capsule_id, from)..=(capsule_id, u64::MAX)).map(|e| e.key().1);
        let (blobs, next_cursor) =
            collect_page(ids, limit, |id| self.st.blobs.get(&id).map(|b| b.0), blob_size, |b| blob_meta(&b));
        Ok(BlobPage { blobs, next_cursor })
    }

    /// Writers delete a blob no memory uses; its space is freed by housekeeping.
    pub fn blobs_delete(&mut self, ctx: &Ctx, blob_id: u64) -> Result<()> {
        let blob = self.visible_blob(ctx, blob_id, Role::Writer)?;
        if blob.refs > 0 {
            return Err(Error::Conflict(format!(
                "blob {blob_id} is used by {} memory asset(s); delete those memories or assets instead",
                blob.refs
            )));
        }
        self.free_blob(&blob);
        self.st.save_header();
        Ok(())
    }

    /// Drops a blob: its records and index entries now, its chunks through
    /// housekeeping, its bytes from the capsule's use.
    pub(crate) fn free_blob(&mut self, blob: &BlobRecord) {
        self.st.blobs.remove(&blob.id);
        self.st.dedup.remove(&dedup_entry(blob));
        self.st.capsule_blobs.remove(&(blob.capsule_id, blob.id));
        self.st.finished.remove(&blob.session_id);
        self.enqueue_chunks(blob.stem(), blob.size);
        self.st.hdr.blob_count -= 1;
        self.st.hdr.blob_bytes -= blob.size;
        self.add_capsule_bytes(blob.capsule_id, -(blob.size as i64));
    }

    pub fn blobs_meta(&self, ctx: &Ctx, blob_id: u64) -> Result<BlobMeta> {
        Ok(blob_meta(&self.readable_blob(ctx, blob_id)?))
    }

    pub fn blobs_read_chunk(&self, ctx: &Ctx, blob_id: u64, idx: u32) -> Result<Vec<u8>> {
        let blob = self.readable_blob(ctx, blob_id)?;
        if idx >= blob.chunk_count {
            return Err(Error::InvalidArgument(format!(
                "chunk index {idx} is out of range: blob {blob_id} has {} chunks",
                blob.chunk_count
            )));
        }
        let c = self.chunk_ref(&blob, idx);
        let mut out = vec![0u8; c.len as usize];
        self.st.arena.read(c.offset, &mut out);
        Ok(out)
    }

    /// `len` bytes from `offset`; at most `max_read_bytes` per call.
    pub fn blobs_read_range(&self, ctx: &Ctx, blob_id: u64, offset: u64, len: u64) -> Result<Vec<u8>> {
        let blob = self.readable_blob(ctx, blob_id)?;
        let max = MAX_READ_BYTES;
        if len > max {
            return Err(Error::InvalidArgument(format!("len {len} exceeds the read limit of {max} bytes")));
        }
        if offset.checked_add(len).is_none_or(|end| end > blob.size) {
            return Err(Error::InvalidArgument(format!(
                "range [{offset}, {offset}+{len}) is outside blob {blob_id} of {} bytes",
                blob.size
            )));
        }
        let mut out = vec![0u8; len as usize];
        let cs = u64::from(blob.chunk_size);
        let mut pos = offset;
        while pos < offset + len {
            let idx = (pos / cs) as u32;
            let within = pos % cs;
            let c = self.chunk_ref(&blob, idx);
            let take = (u64::from(c.len) - within).min(offset + len - pos);
            let at = (pos - offset) as usize;
            self.st.arena.read(c.offset + within, &mut out[at..at + take as usize]);
            pos += take;
        }
        Ok(out)
    }

    fn chunk_ref(&self, blob: &BlobRecord, idx: u32) -> crate::storage::ChunkRef {
        self.st
            .chunks
            .get(&ChunkKey { stem: blob.stem(), idx })
            .expect("a committed blob has all its chunks")
    }
}
