//! Memories: metadata plus assets (original, display, thumbnail, placeholder, …), each a
//! finished blob of the capsule or a small inline image. Creating one is atomic: every
//! check runs before the first write. Blobs are reference-counted; dropping the last
//! reference frees the blob's chunks through housekeeping.
//!
//! Everything a member creates is counted: a capsule holds at most
//! `max_memories_per_capsule` memories, and each memory is charged to the capsule's
//! `bytes_used` for its record and its certified HTTP responses (`memory_charge`, kept
//! in the record as `charged_bytes` and given back exactly on delete). A memory has at
//! most `MAX_MEMORY_PARTS` certified parts.

use std::collections::BTreeSet;

use ic_stable_structures::Memory as StableMemory;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::pages::{collect_page, memory_size};
use super::records::{
    asset_parts, memory_charge, AssetRecord, BlobRecord, CapsuleRecord, InlineRef, MemoryRecord, MAX_ASSETS,
    MAX_CHUNK_SIZE, MAX_DESCRIPTION_LEN, MAX_INLINE_BYTES, MAX_KEY_LEN, MAX_MEMORY_PARTS, MAX_TAGS, MAX_TAG_LEN,
    MAX_TEXT_LEN,
};
use super::{Ctx, State};
use crate::api::{
    Asset, AssetInput, AssetKind, AssetSource, Error, Memory, MemoryCreateArgs, MemoryMeta, MemoryPage, Result, Role,
};
use crate::storage::Cbor;

fn invalid(msg: String) -> Error {
    Error::InvalidArgument(msg)
}

fn check_meta(meta: &MemoryMeta) -> Result<()> {
    if meta.title.len() > MAX_TEXT_LEN {
        return Err(invalid(format!("title is {} bytes; the limit is {MAX_TEXT_LEN}", meta.title.len())));
    }
    if meta.description.len() > MAX_DESCRIPTION_LEN {
        return Err(invalid(format!("description is over {MAX_DESCRIPTION_LEN} bytes")));
    }
    if meta.tags.len() > MAX_TAGS || meta.tags.iter().any(|t| t.is_empty() || t.len() > MAX_TAG_LEN) {
        return Err(invalid(format!("at most {MAX_TAGS} tags of 1 to {MAX_TAG_LEN} bytes each")));
    }
    Ok(())
}

/// Refuses a memory whose assets have more than `MAX_MEMORY_PARTS` certified parts.
fn check_parts(parts: impl IntoIterator<Item = u32>) -> Result<()> {
    let total: u64 = parts.into_iter().map(u64::from).sum();
    if total > u64::from(MAX_MEMORY_PARTS) {
        return Err(invalid(format!(
            "the memory's assets would have {total} certified parts (1 per inline asset, a blob's chunk count otherwise); \
             a memory has at most MAX_MEMORY_PARTS = {MAX_MEMORY_PARTS}: upload long files with a larger chunk size (up to {MAX_CHUNK_SIZE} bytes)"
        )));
    }
    Ok(())
}

/// What an asset input resolves to once checked, before anything is written.
enum Checked {
    Blob(BlobRecord),
    Inline(Vec<u8>),
}

impl Checked {
    fn parts(&self) -> u32 {
        match self {
            Checked::Blob(b) => asset_parts(Some(b.chunk_count)),
            Checked::Inline(_) => asset_parts(None),
        }
    }
    fn inline_bytes(&self) -> u64 {
        match self {
            Checked::Blob(_) => 0,
            Checked::Inline(b) => b.len() as u64,
        }
    }
}

impl<M: StableMemory + Clone> State<M> {
    pub fn memories_create(&mut self, ctx: &Ctx, args: MemoryCreateArgs) -> Result<Memory> {
        let capsule = self.require_role(ctx, args.capsule_id, Role::Writer)?;
        check_meta(&args.meta)?;
        let idem = match &args.idempotency_key {
            Some(key) => {
                if key.len() > MAX_KEY_LEN {
                    return Err(invalid(format!("idempotency_key is over {MAX_KEY_LEN} bytes")));
                }
                let mut h = Sha256::new();
                h.update(ctx.caller.as_slice());
                h.update(capsule.id.to_be_bytes());
                h.update(key.as_bytes());
                let k: [u8; 32] = h.finalize().into();
                if let Some(existing) = self.st.memory_idempotency.get(&k).and_then(|id| self.st.memories.get(&id)) {
                    return Ok(self.memory_view(&existing.0));
                }
                Some(k)
            }
            None => None,
        };
        if args.assets.len() > MAX_ASSETS {
            return Err(invalid(format!("a memory has at most {MAX_ASSETS} assets")));
        }
        let mut kinds = BTreeSet::new();
        let mut checked = Vec::with_capacity(args.assets.len());
        for a in &args.assets {
            if !kinds.insert(a.kind) {
                return Err(invalid(format!("asset kind {:?} appears twice", a.kind)));
            }
            checked.push(self.check_asset(capsule.id, a)?);
        }
        check_parts(checked.iter().map(Checked::parts))?;
        let inline_bytes: u64 = checked.iter().map(Checked::inline_bytes).sum();
        let charge = memory_charge(&args.meta, args.assets.iter().zip(&checked).map(|(a, c)| (a.mime.as_str(), c.parts())));
        let cfg = self.st.config();
        self.check_memory_space(&cfg, &capsule, inline_bytes, charge, "this memory")?;
        let count = self.check_memory_count(&cfg, &capsule)?;

        // Every check passed: write.
        let id = self.st.hdr.next_memory_id;
        let mut assets = Vec::with_capacity(checked.len());
        for (input, c) in args.assets.into_iter().zip(checked) {
            assets.push(self.attach_asset(input, c));
        }
        self.st.hdr.next_memory_id += 1;
        self.st.hdr.memory_count += 1;
        let rec = MemoryRecord {
            id,
            capsule_id: capsule.id,
            meta: args.meta,
            assets,
            created_by: ctx.caller,
            created_at_ns: ctx.now,
            updated_at_ns: ctx.now,
            idempotency: idem.map(|k| ByteBuf::from(k.to_vec())),
            charged_bytes: charge,
        };
        self.st.memories.insert(id, Cbor(rec.clone()));
        self.st.capsule_memories.insert((capsule.id, id), ());
        if let Some(k) = idem {
            self.st.memory_idempotency.insert(k, id);
        }
        self.update_capsule(capsule.id, |c| {
            c.bytes_used = c.bytes_used.saturating_add(inline_bytes + charge);
            c.memory_count = Some(count + 1);
        });
        self.st.save_header();
        self.http_memory_changed(id);
        Ok(self.memory_view(&rec))
    }

    pub fn memories_get(&self, ctx: &Ctx, id: u64) -> Result<Memory> {
        let rec = self.visible_memory(ctx, id, Role::Reader)?;
        Ok(self.memory_view(&rec))
    }

    /// A capsule's memories in creation order, `limit` (at most 50) at a time, and no
    /// more than fit one reply (a memory carries up to seven 32 KiB inline images).
    pub fn memories_list(&self, ctx: &Ctx, capsule_id: u64, cursor: Option<u64>, limit: u32) -> Result<MemoryPage> {
        self.require_role(ctx, capsule_id, Role::Reader)?;
        let from = cursor.map_or(0, |c| c.saturating_add(1));
        let ids = self.st.capsule_memories.range((capsule_id, from)..=(capsule_id, u64::MAX)).map(|e| e.key().1);
        let (memories, next_cursor) =
            collect_page(ids, limit, |id| self.st.memories.get(&id).map(|m| m.0), memory_size, |m| self.memory_view(&m));
        Ok(MemoryPage { memories, next_cursor })
    }

    pub fn memories_update(&mut self, ctx: &Ctx, id: u64, meta: MemoryMeta) -> Result<Memory> {
        let mut rec = self.visible_memory(ctx, id, Role::Writer)?;
        check_meta(&meta)?;
        let charge = memory_charge(&meta, self.stored_parts(&rec.assets));
        if charge > rec.charged_bytes {
            let cfg = self.st.config();
            self.check_memory_space(&cfg, &self.capsule(rec.capsule_id)?, 0, charge - rec.charged_bytes, "this update")?;
        }
        let delta = charge as i64 - rec.charged_bytes as i64;
        rec.meta = meta;
        rec.charged_bytes = charge;
        rec.updated_at_ns = ctx.now;
        self.st.memories.insert(id, Cbor(rec.clone()));
        self.add_capsule_bytes(rec.capsule_id, delta);
        Ok(self.memory_view(&rec))
    }

    pub fn memories_add_asset(&mut self, ctx: &Ctx, id: u64, input: AssetInput) -> Result<Memory> {
        let mut rec = self.visible_memory(ctx, id, Role::Writer)?;
        if rec.assets.iter().any(|a| a.kind == input.kind) {
            return Err(Error::Conflict(format!(
                "memory {id} already has a {:?} asset; remove it first",
                input.kind
            )));
        }
        if rec.assets.len() >= MAX_ASSETS {
            return Err(invalid(format!("a memory has at most {MAX_ASSETS} assets")));
        }
        let c = self.check_asset(rec.capsule_id, &input)?;
        let mut parts = self.stored_parts(&rec.assets);
        parts.push((input.mime.as_str(), c.parts()));
        check_parts(parts.iter().map(|p| p.1))?;
        let charge = memory_charge(&rec.meta, parts);
        let inline_bytes = c.inline_bytes();
        let cfg = self.st.config();
        let extra = charge.saturating_sub(rec.charged_bytes);
        self.check_memory_space(&cfg, &self.capsule(rec.capsule_id)?, inline_bytes, extra, "this asset")?;
        let delta = charge as i64 - rec.charged_bytes as i64;
        let asset = self.attach_asset(input, c);
        rec.assets.push(asset);
        rec.charged_bytes = charge;
        rec.updated_at_ns = ctx.now;
        self.st.memories.insert(id, Cbor(rec.clone()));
        self.add_capsule_bytes(rec.capsule_id, inline_bytes as i64 + delta);
        self.st.save_header();
        self.http_memory_changed(id);
        Ok(self.memory_view(&rec))
    }

    pub fn memories_remove_asset(&mut self, ctx: &Ctx, id: u64, kind: AssetKind) -> Result<Memory> {
        let mut rec = self.visible_memory(ctx, id, Role::Writer)?;
        let Some(pos) = rec.assets.iter().position(|a| a.kind == kind) else {
            return Err(Error::NotFound(format!("memory {id} has no {kind:?} asset")));
        };
        let asset = rec.assets.remove(pos);
        self.release_asset(rec.capsule_id, &asset);
        // Never more than was charged: a memory created before charging stays at 0.
        let charge = memory_charge(&rec.meta, self.stored_parts(&rec.assets)).min(rec.charged_bytes);
        let refund = rec.charged_bytes - charge;
        rec.charged_bytes = charge;
        rec.updated_at_ns = ctx.now;
        self.st.memories.insert(id, Cbor(rec.clone()));
        self.add_capsule_bytes(rec.capsule_id, -(refund as i64));
        self.st.save_header();
        self.http_memory_changed(id);
        Ok(self.memory_view(&rec))
    }

    /// Deletes the memory; blobs no other memory references are freed.
    pub fn memories_delete(&mut self, ctx: &Ctx, id: u64) -> Result<()> {
        let rec = self.visible_memory(ctx, id, Role::Writer)?;
        for a in &rec.assets {
            self.release_asset(rec.capsule_id, a);
        }
        self.st.memories.remove(&id);
        self.st.capsule_memories.remove(&(rec.capsule_id, id));
        if let Some(k) = &rec.idempotency {
            if let Ok(k) = <[u8; 32]>::try_from(k.as_slice()) {
                self.st.memory_idempotency.remove(&k);
            }
        }
        self.update_capsule(rec.capsule_id, |c| {
            c.bytes_used = c.bytes_used.saturating_sub(rec.charged_bytes);
            c.memory_count = c.memory_count.map(|n| n.saturating_sub(1));
        });
        self.st.hdr.memory_count -= 1;
        self.st.save_header();
        self.http_memory_changed(id);
        Ok(())
    }

    // ---- internals ----

    fn check_asset(&self, capsule_id: u64, a: &AssetInput) -> Result<Checked> {
        if a.mime.len() > MAX_TEXT_LEN {
            return Err(invalid(format!("asset mime is over {MAX_TEXT_LEN} bytes")));
        }
        match &a.source {
            AssetSource::Blob(blob_id) => {
                // Another capsule's blob answers like one that does not exist.
                let blob = self.st.blobs.get(blob_id).map(|b| b.0).filter(|b| b.capsule_id == capsule_id).ok_or_else(|| {
                    Error::NotFound(format!(
                        "blob {blob_id} does not exist in capsule {capsule_id} (is its upload finished?)"
                    ))
                })?;
                Ok(Checked::Blob(blob))
            }
            AssetSource::Inline(bytes) => {
                if bytes.is_empty() || bytes.len() > MAX_INLINE_BYTES {
                    return Err(invalid(format!(
                        "inline {:?} asset has {} bytes; inline assets hold 1 to {MAX_INLINE_BYTES} bytes",
                        a.kind,
                        bytes.len()
                    )));
                }
                Ok(Checked::Inline(bytes.to_vec()))
            }
        }
    }

    /// Writes one checked asset: a blob gains a reference, inline bytes go to the arena.
    fn attach_asset(&mut self, input: AssetInput, checked: Checked) -> AssetRecord {
        let (blob_id, inline, size, sha256) = match checked {
            Checked::Blob(checked) => {
                // Re-read: an earlier asset of the same message may reference it too.
                let mut blob = self.st.blobs.get(&checked.id).map_or(checked, |b| b.0);
                blob.refs += 1;
                let out = (Some(blob.id), None, blob.size, blob.sha256.clone());
                self.st.blobs.insert(blob.id, Cbor(blob));
                out
            }
            Checked::Inline(bytes) => {
                // Out of stable memory is the one failure left after the checks; trap so
                // the whole message, including earlier assets, rolls back.
                let offset = self.alloc(bytes.len() as u64).unwrap_or_else(|e| panic!("cannot store an inline asset: {e}"));
                self.st.arena.write(offset, &bytes);
                let sha = ByteBuf::from(Sha256::digest(&bytes).to_vec());
                (None, Some(InlineRef { offset, len: bytes.len() as u32 }), bytes.len() as u64, sha)
            }
        };
        AssetRecord {
            kind: input.kind,
            blob_id,
            inline,
            size,
            sha256,
            mime: input.mime,
            width: input.width,
            height: input.height,
            duration_ms: input.duration_ms,
        }
    }

    /// Drops an asset's hold on its bytes. The last reference to a blob frees it.
    fn release_asset(&mut self, capsule_id: u64, a: &AssetRecord) {
        if let Some(r) = a.inline {
            self.st.arena.free(r.offset, u64::from(r.len));
            self.st.hdr.bytes_freed_total += u64::from(r.len);
            self.add_capsule_bytes(capsule_id, -i64::from(r.len));
        }
        let Some(blob_id) = a.blob_id else { return };
        let Some(mut blob) = self.st.blobs.get(&blob_id).map(|b| b.0) else { return };
        blob.refs = blob.refs.saturating_sub(1);
        if blob.refs > 0 {
            self.st.blobs.insert(blob_id, Cbor(blob));
            return;
        }
        self.free_blob(&blob);
    }

    pub(crate) fn add_capsule_bytes(&mut self, capsule_id: u64, delta: i64) {
        if delta == 0 {
            return;
        }
        self.update_capsule(capsule_id, |c| c.bytes_used = c.bytes_used.saturating_add_signed(delta));
    }

    fn update_capsule(&mut self, capsule_id: u64, f: impl FnOnce(&mut CapsuleRecord)) {
        if let Some(mut c) = self.st.capsules.get(&capsule_id).map(|c| c.0) {
            f(&mut c);
            self.st.capsules.insert(capsule_id, Cbor(c));
        }
    }

    /// `(mime, certified parts)` of stored assets, as `memory_charge` takes them.
    fn stored_parts<'a>(&self, assets: &'a [AssetRecord]) -> Vec<(&'a str, u32)> {
        assets
            .iter()
            .map(|a| {
                let chunks = a.blob_id.map(|b| self.st.blobs.get(&b).map_or(1, |b| b.0.chunk_count));
                (a.mime.as_str(), asset_parts(chunks))
            })
            .collect()
    }

    fn memory_view(&self, m: &MemoryRecord) -> Memory {
        Memory {
            id: m.id,
            capsule_id: m.capsule_id,
            meta: m.meta.clone(),
            assets: m
                .assets
                .iter()
                .map(|a| Asset {
                    kind: a.kind,
                    blob_id: a.blob_id,
                    inline: a.inline.map(|r| {
                        let mut buf = vec![0u8; r.len as usize];
                        self.st.arena.read(r.offset, &mut buf);
                        ByteBuf::from(buf)
                    }),
                    size: a.size,
                    sha256: a.sha256.clone(),
                    mime: a.mime.clone(),
                    width: a.width,
                    height: a.height,
                    duration_ms: a.duration_ms,
                })
                .collect(),
            created_by: m.created_by,
            created_at_ns: m.created_at_ns,
            updated_at_ns: m.updated_at_ns,
        }
    }
}
