//! Reading committed blobs: metadata, one chunk, or a byte range.

use ic_stable_structures::Memory;

use super::records::{BlobRecord, MAX_READ_BYTES};
use super::uploads::blob_meta;
use super::{Ctx, State};
use crate::api::{BlobMeta, Error, Result, Role};
use crate::storage::ChunkKey;

impl<M: Memory + Clone> State<M> {
    fn readable_blob(&self, ctx: &Ctx, blob_id: u64) -> Result<BlobRecord> {
        let blob = self
            .st
            .blobs
            .get(&blob_id)
            .map(|b| b.0)
            .ok_or_else(|| Error::NotFound(format!("blob {blob_id} does not exist")))?;
        self.require_role(ctx, blob.capsule_id, Role::Reader)?;
        Ok(blob)
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
