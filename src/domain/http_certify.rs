//! Keeping the certification tree (in stable memory) in step with the memories.
//!
//! A memory is certified in the message that creates or changes it: every URL it has
//! gets its responses' paths ([`super::http_cert`]), each URL rewritten only if they
//! changed. That work is bounded by construction: a memory has at most
//! [`CERTIFIED_PARTS_LIMIT`] parts in all, and assets past it stay uncertified (their
//! URLs answer `503`) rather than let one memory outgrow a message.
//!
//! Background passes exist only for what cannot be done in that message: the one-time
//! certification of memories that existed before the tree did (layout 4 → 5), and
//! memories whose chunk digests must first be computed (blobs uploaded before layout
//! 3) or that were created before the canister had its secret. A pass predicts what
//! its next step will cost ([`State::memory_certify_cost`]) and stops before a step
//! that would not fit; its progress lives in stable memory, so an upgrade or a trapped
//! pass loses nothing.

use std::collections::BTreeSet;

use ic_http_certification::HttpCertificationPath;
use ic_stable_structures::Memory as StableMemory;
use sha2::{Digest, Sha256};

use super::http_cert::{
    content_etag, describe, kind_code, memory_path, content_path, not_found_key, path_prefix, response_hash_of,
    response_key, tree_path, Parts, Reply, Source, UrlForm, KINDS, BACKFILL_BYTES_PER_PASS,
};
use super::records::{MemoryRecord, MAX_MEMORY_PARTS};
use super::State;
use crate::storage::hash_tree::Key;
use crate::storage::http::{Backlog, PublicShaKey};
use crate::storage::ChunkKey;

/// Most parts (certified `206`s) of one memory's URLs: an asset whose parts would pass
/// it is left uncertified. `memories_create` refuses memories past it.
pub const CERTIFIED_PARTS_LIMIT: u64 = MAX_MEMORY_PARTS as u64;

/// What certifying costs, in the IC's instructions, for passes to stop before a step
/// that would not fit (measured in `tests/wasm_http_durable.rs`, with margin): a fixed
/// part per memory, a part per certified response, and SHA-256 per byte of backfill.
pub const CERTIFY_MEMORY_COST: u64 = 30_000_000;
pub const CERTIFY_RESPONSE_COST: u64 = 1_500_000;
pub const HASH_BYTE_COST: u64 = 80;

/// Heap state of HTTP serving: only whether the root changed since the endpoint layer
/// last set the certified data.
pub struct HttpCache {
    pub dirty: bool,
}

impl Default for HttpCache {
    fn default() -> Self {
        HttpCache { dirty: true }
    }
}

/// What a certification pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RebuildReport {
    pub entries: usize,
    pub digest_bytes: u64,
    /// Work is left for another pass.
    pub more: bool,
}

/// How certifying one memory ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Certify {
    Done(usize),
    /// The canister has no secret yet (just installed): ETags cannot be made.
    NoSecret,
    /// Chunk digests are still being computed; the memory waits in `pending`.
    OutOfBudget,
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl<M: StableMemory + Clone> State<M> {
    fn backlog(&self) -> Backlog {
        self.st.http.meta().backlog
    }

    fn set_backlog(&mut self, backlog: Backlog) {
        let mut meta = self.st.http.meta();
        meta.backlog = backlog;
        self.st.http.set_meta(meta);
    }

    /// Is `memory_id` past the one-time backlog (certified by its own messages)?
    fn memory_in_scope(&self, memory_id: u64) -> bool {
        match self.backlog() {
            Backlog::Memories { next } => memory_id < next,
            _ => true,
        }
    }

    /// Are this memory's URLs in the tree (or provably absent from it)?
    pub(crate) fn memory_certified(&self, memory_id: u64) -> bool {
        self.memory_in_scope(memory_id) && !self.st.http.pending.contains_key(&memory_id)
    }

    /// Is `/b/<sha256>` certified?
    pub(crate) fn content_certified(&self, sha256: &[u8; 32]) -> bool {
        match self.backlog() {
            Backlog::Memories { .. } => false,
            Backlog::Content { next } => sha256 < &next,
            Backlog::Done => true,
        }
    }

    /// The tree keys of every response of one URL; `None` if a part's digest is missing.
    fn url_keys(&self, path: &[Vec<u8>], src: &Source, form: UrlForm) -> Option<Vec<Key>> {
        let n = src.part_count();
        let mut replies = vec![Reply::NotModified, Reply::Unsatisfiable];
        if form == UrlForm::Memory {
            replies.push(Reply::Forbidden);
        }
        if n == 1 {
            replies.push(Reply::Full);
        }
        replies.extend((0..n).map(Reply::Part));
        replies
            .into_iter()
            .map(|r| {
                let mut c = describe(self, src, form, r)?;
                Some(response_key(path, &response_hash_of(&mut c)).expect("our URL paths are short"))
            })
            .collect()
    }

    /// Makes the tree hold exactly `src`'s responses at `path` (none for `None`).
    /// Returns the responses certified.
    fn certify_url(&mut self, path: &str, src: Option<&Source>, form: UrlForm) -> usize {
        let tp = tree_path(&HttpCertificationPath::exact(path.to_string()));
        let prefix = path_prefix(&tp);
        let mut keys = src.and_then(|s| self.url_keys(&tp, s, form)).unwrap_or_default();
        keys.sort();
        let n = keys.len();
        if self.st.http.tree.keys_under(&prefix) != keys {
            self.st.http.tree.replace_under(&prefix, keys);
            self.http.dirty = true;
        }
        n
    }

    /// Computes missing chunk digests of a source (blobs uploaded before layout 3), at
    /// most `budget` bytes; true when all are there.
    fn backfill_digests(&mut self, src: &Source, budget: &mut u64) -> bool {
        let Parts::Blob { stem, chunk_count, .. } = src.parts else { return true };
        if chunk_count <= 1 {
            return true;
        }
        let mut buf = Vec::new();
        for idx in 0..chunk_count {
            let key = ChunkKey { stem, idx };
            if self.st.http.digests.contains_key(&key) {
                continue;
            }
            let Some(c) = self.st.chunks.get(&key) else { return false };
            if *budget < u64::from(c.len) {
                return false;
            }
            *budget -= u64::from(c.len);
            buf.resize(c.len as usize, 0);
            self.st.arena.read(c.offset, &mut buf);
            self.st.http.digests.insert(key, sha(&buf));
        }
        true
    }

    /// What certifying `memory_id` will cost at most (instructions), backfill included.
    pub fn memory_certify_cost(&self, memory_id: u64, backfill_budget: u64) -> u64 {
        let Some(rec) = self.st.memories.get(&memory_id).map(|m| m.0) else { return CERTIFY_MEMORY_COST };
        let mut responses = 0u64;
        let mut backfill = 0u64;
        for a in &rec.assets {
            let (parts, missing) = match a.blob_id.and_then(|b| self.st.blobs.get(&b)) {
                Some(b) => {
                    let b = b.0;
                    let last = ChunkKey { stem: b.stem(), idx: b.chunk_count.saturating_sub(1) };
                    let missing = b.chunk_count > 1 && !self.st.http.digests.contains_key(&last);
                    (u64::from(b.chunk_count), if missing { b.size } else { 0 })
                }
                None => (1, 0),
            };
            responses += parts.min(CERTIFIED_PARTS_LIMIT) + 5;
            backfill += missing;
        }
        let public = 1 + u64::from(self.st.http.public.contains_key(&memory_id));
        CERTIFY_MEMORY_COST
            + public * responses * CERTIFY_RESPONSE_COST
            + backfill.min(backfill_budget) * HASH_BYTE_COST
    }

    /// Certifies every URL of one memory (after it changed, or from the backlog).
    fn certify_memory(&mut self, memory_id: u64, budget: &mut u64) -> Certify {
        self.st.http.pending.remove(&memory_id);
        let rec = self.st.memories.get(&memory_id).map(|m| m.0);
        let assets = rec.as_ref().map(|r| r.assets.clone()).unwrap_or_default();
        let mut sources = Vec::with_capacity(assets.len());
        for a in &assets {
            match self.memory_source(memory_id, a) {
                Some(s) => sources.push((a.kind, s)),
                None if !self.has_link_secret() => {
                    self.st.http.pending.insert(memory_id, ());
                    self.uncertify_memory(memory_id);
                    return Certify::NoSecret;
                }
                None => {}
            }
        }
        for (_, src) in &sources {
            if !self.backfill_digests(src, budget) {
                self.st.http.pending.insert(memory_id, ());
                self.uncertify_memory(memory_id);
                return Certify::OutOfBudget;
            }
        }
        let mut n = 0;
        let mut parts = 0u64;
        for kind in KINDS {
            let src = sources.iter().find(|(k, _)| *k == kind).map(|(_, s)| s);
            // Past the limit an asset stays uncertified: one memory never outgrows a message.
            let src = src.filter(|s| {
                parts += u64::from(s.part_count());
                parts <= CERTIFIED_PARTS_LIMIT
            });
            n += self.certify_url(&memory_path(memory_id, kind), src, UrlForm::Memory);
        }
        Certify::Done(n)
    }

    fn uncertify_memory(&mut self, memory_id: u64) {
        for kind in KINDS {
            self.certify_url(&memory_path(memory_id, kind), None, UrlForm::Memory);
        }
    }

    /// The source `/b/<sha256>` serves: the first public asset with these bytes.
    pub(crate) fn public_content(&self, sha256: &[u8; 32]) -> Option<Source> {
        let from = PublicShaKey { sha256: *sha256, memory_id: 0, kind: 0 };
        let key = self.st.http.public_sha.range(from..).next().map(|e| *e.key())?;
        if key.sha256 != *sha256 {
            return None;
        }
        let rec = self.st.memories.get(&key.memory_id)?.0;
        let asset = rec.assets.iter().find(|a| kind_code(a.kind) == key.kind)?;
        self.asset_source(asset, |sha| Some(content_etag(sha)))
    }

    fn certify_content(&mut self, sha256: &[u8; 32]) -> usize {
        let src = self.public_content(sha256).filter(|s| u64::from(s.part_count()) <= CERTIFIED_PARTS_LIMIT);
        self.certify_url(&content_path(sha256), src.as_ref(), UrlForm::Content)
    }

    /// Publishes or unpublishes a memory's assets under `/b/<sha256>` and re-certifies
    /// the affected URLs.
    pub(crate) fn sync_public(&mut self, memory_id: u64, rec: Option<&MemoryRecord>, public: bool) {
        let mut touched = BTreeSet::new();
        if let Some(old) = self.st.http.public.remove(&memory_id) {
            for (kind, sha) in old.0 {
                if let Ok(sha256) = <[u8; 32]>::try_from(sha.as_slice()) {
                    self.st.http.public_sha.remove(&PublicShaKey { sha256, memory_id, kind });
                    touched.insert(sha256);
                }
            }
        }
        if let (true, Some(rec)) = (public, rec) {
            let mut published = Vec::new();
            for a in &rec.assets {
                if let Ok(sha256) = <[u8; 32]>::try_from(a.sha256.as_slice()) {
                    self.st.http.public_sha.insert(PublicShaKey { sha256, memory_id, kind: kind_code(a.kind) }, ());
                    published.push((kind_code(a.kind), a.sha256.clone()));
                    touched.insert(sha256);
                }
            }
            self.st.http.public.insert(memory_id, crate::storage::Cbor(published));
        }
        for sha in touched {
            if self.content_certified(&sha) {
                self.certify_content(&sha);
            }
        }
    }

    /// A memory was created, changed or deleted: its URLs and, if it is public, the
    /// content URLs of its bytes follow.
    pub(crate) fn http_memory_changed(&mut self, memory_id: u64) {
        let rec = self.st.memories.get(&memory_id).map(|m| m.0);
        let public = rec.is_some() && self.st.http.public.contains_key(&memory_id);
        if self.memory_in_scope(memory_id) {
            let mut budget = BACKFILL_BYTES_PER_PASS;
            self.certify_memory(memory_id, &mut budget);
        }
        self.sync_public(memory_id, rec.as_ref(), public);
    }

    /// The `404` of unknown URLs is in the tree (a new tree, or one from layout 4).
    pub(crate) fn ensure_not_found_certified(&mut self) {
        let key = not_found_key();
        if !self.st.http.tree.contains(&key) {
            self.st.http.tree.insert(key);
            self.http.dirty = true;
        }
    }

    /// One bounded certification pass (the layout-4 backlog, then memories waiting for
    /// digests or the secret). Call until `more` is false.
    pub fn http_rebuild_step(&mut self) -> RebuildReport {
        self.http_rebuild_step_while(|_| true)
    }

    /// [`State::http_rebuild_step`] that takes a step only if `fits(cost)` says its
    /// predicted cost fits what is left of the message (the first step always runs:
    /// no step can cost more than a message allows).
    pub fn http_rebuild_step_while(&mut self, fits: impl Fn(u64) -> bool) -> RebuildReport {
        let mut report = RebuildReport::default();
        let mut budget = BACKFILL_BYTES_PER_PASS;
        let mut steps = 0usize;
        loop {
            match self.backlog() {
                Backlog::Memories { next } => {
                    let Some(id) = self.st.memories.range(next..).next().map(|e| *e.key()) else {
                        self.set_backlog(Backlog::Content { next: [0; 32] });
                        continue;
                    };
                    if steps > 0 && !fits(self.memory_certify_cost(id, budget)) {
                        report.more = true;
                        break;
                    }
                    steps += 1;
                    match self.certify_memory(id, &mut budget) {
                        Certify::Done(n) => report.entries += n,
                        Certify::OutOfBudget => {
                            // This memory goes on next pass, from where its digests stopped.
                            self.st.http.pending.remove(&id);
                            report.more = true;
                            break;
                        }
                        Certify::NoSecret => {}
                    }
                    self.set_backlog(Backlog::Memories { next: id + 1 });
                }
                Backlog::Content { next } => {
                    let from = PublicShaKey { sha256: next, memory_id: 0, kind: 0 };
                    let Some(key) = self.st.http.public_sha.range(from..).next().map(|e| *e.key()) else {
                        self.set_backlog(Backlog::Done);
                        continue;
                    };
                    let cost = CERTIFY_MEMORY_COST + (CERTIFIED_PARTS_LIMIT + 5) * CERTIFY_RESPONSE_COST;
                    if steps > 0 && !fits(cost) {
                        report.more = true;
                        break;
                    }
                    steps += 1;
                    report.entries += self.certify_content(&key.sha256);
                    self.set_backlog(match next_digest(&key.sha256) {
                        Some(n) => Backlog::Content { next: n },
                        None => Backlog::Done,
                    });
                }
                Backlog::Done => {
                    report.more = self.certify_pending(&fits, &mut steps, &mut budget, &mut report.entries);
                    break;
                }
            }
        }
        report.digest_bytes = BACKFILL_BYTES_PER_PASS - budget;
        report
    }

    /// Memories that waited for digests or the secret, in id order; true if some are
    /// left that this pass could not take.
    fn certify_pending(&mut self, fits: &impl Fn(u64) -> bool, steps: &mut usize, budget: &mut u64, entries: &mut usize) -> bool {
        let mut from = 0;
        while let Some(id) = self.st.http.pending.range(from..).next().map(|e| *e.key()) {
            if !self.has_link_secret() {
                return false; // the secret's arrival starts a pass
            }
            if *steps > 0 && !fits(self.memory_certify_cost(id, *budget)) {
                return true;
            }
            *steps += 1;
            match self.certify_memory(id, budget) {
                Certify::Done(n) => {
                    *entries += n;
                    if self.st.http.public.contains_key(&id) {
                        let rec = self.st.memories.get(&id).map(|m| m.0);
                        self.sync_public(id, rec.as_ref(), true);
                    }
                }
                Certify::OutOfBudget => return true,
                Certify::NoSecret => return false,
            }
            from = id + 1;
        }
        false
    }

    /// Is there certification left for background passes (the layout-4 backlog, or
    /// memories waiting for digests or the secret)?
    pub fn http_has_work(&self) -> bool {
        self.backlog() != Backlog::Done || !self.st.http.pending.is_empty()
    }

    /// Root hash of the certification tree: the canister's certified data.
    pub fn http_root_hash(&self) -> [u8; 32] {
        ic_certification::labeled_hash(b"http_expr", &self.st.http.tree.root_hash())
    }

    /// Certified responses in the tree.
    pub fn http_entries(&self) -> u64 {
        self.st.http.tree.len()
    }

    /// Chunk digests kept (one per chunk of every multi-chunk upload).
    pub fn http_digest_count(&self) -> u64 {
        self.st.http.digests.len()
    }

    /// Takes the "root hash changed" flag (the endpoint layer then sets certified data).
    pub fn http_take_dirty(&mut self) -> bool {
        std::mem::take(&mut self.http.dirty)
    }
}

/// The smallest digest greater than `d`, if any.
fn next_digest(d: &[u8; 32]) -> Option<[u8; 32]> {
    let mut n = *d;
    for i in (0..32).rev() {
        if n[i] == 0xff {
            n[i] = 0;
        } else {
            n[i] += 1;
            return Some(n);
        }
    }
    None
}
