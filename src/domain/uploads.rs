//! Upload sessions: begin, put chunks in any order, finish atomically, abort.
//!
//! Every byte is hashed exactly once, in file order: the rolling SHA-256 advances over
//! the contiguous prefix of received chunks, at most `HASH_BYTES_PER_MESSAGE` (one full chunk) per
//! message (at least one chunk), so no message's cost grows with the file. Its
//! serialized state is saved in the session record on every put: an upgrade loses
//! nothing.
//!
//! Every check runs before the first write, so a refused call changes nothing.

use candid::Principal;
use ic_stable_structures::Memory;
use serde_bytes::ByteBuf;
use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest, Sha256};

use super::access::{at_least, session_not_found};
use super::pages::{collect_page, session_size};
use super::records::{
    BlobRecord, SessionRecord, SessionStatus, DEFAULT_CHUNK_SIZE, HASH_BYTES_PER_MESSAGE, MAX_CHUNKS, MAX_CHUNK_SIZE,
    MAX_KEY_LEN, MAX_TEXT_LEN, MIN_CHUNK_SIZE,
};
use super::{hex, Ctx, State};
use crate::api::{
    BeginArgs, BlobMeta, ChunkRange, Error, PutChunkOk, Result, Role, Session, SessionPage, SessionState,
    UploadsPageArgs,
};
use crate::storage::{Cbor, ChunkKey, ChunkRef, DedupEntry, OwnerSessionKey};

/// `sha256(pmid "#" session_id)`: unique per session even when parallel uploads share a
/// provisional memory id.
pub fn chunk_stem(pmid: &str, session_id: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(pmid.as_bytes());
    h.update(b"#");
    h.update(session_id.to_string().as_bytes());
    h.finalize().into()
}

fn serialize_hasher(h: &Sha256) -> ByteBuf {
    ByteBuf::from(h.serialize().to_vec())
}

fn deserialize_hasher(bytes: &[u8]) -> Sha256 {
    let state = bytes.try_into().expect("stored hasher state has the serialized size");
    Sha256::deserialize(state).expect("stored hasher state is valid")
}

fn check_text(what: &str, s: &str, max: usize) -> Result<()> {
    if s.len() > max {
        return Err(Error::InvalidArgument(format!("{what} is {} bytes; the limit is {max}", s.len())));
    }
    Ok(())
}

fn digest_arg(what: &str, b: &[u8]) -> Result<()> {
    if b.len() != 32 {
        return Err(Error::InvalidArgument(format!(
            "{what} must be a 32-byte SHA-256 digest, got {} bytes",
            b.len()
        )));
    }
    Ok(())
}

impl<M: Memory + Clone> State<M> {
    pub fn uploads_begin(&mut self, ctx: &Ctx, args: BeginArgs) -> Result<Session> {
        let mut capsule = self.require_role(ctx, args.capsule_id, Role::Writer)?;
        let cfg = self.st.config();
        if let Some(key) = &args.idempotency_key {
            check_text("idempotency_key", key, MAX_KEY_LEN)?;
            if let Some(existing) = self.find_by_idempotency_key(ctx, capsule.id, key) {
                let same = existing.size == args.size
                    && args.chunk_size.is_none_or(|c| c == existing.chunk_size)
                    && args.sha256.as_ref() == existing.expected_sha256.as_ref();
                if !same {
                    return Err(Error::Conflict(format!(
                        "idempotency key {key:?} already names session {} with other parameters",
                        existing.id
                    )));
                }
                return Ok(self.session_view(&existing));
            }
        }
        if args.size == 0 {
            return Err(Error::InvalidArgument("size must be greater than 0".into()));
        }
        if args.size > cfg.max_file_size {
            return Err(Error::QuotaExceeded(format!(
                "file of {} bytes exceeds the maximum file size of {} bytes",
                args.size, cfg.max_file_size
            )));
        }
        let chunk_size = args.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE);
        if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
            return Err(Error::InvalidArgument(format!(
                "chunk_size {chunk_size} is outside [{MIN_CHUNK_SIZE}, {MAX_CHUNK_SIZE}]"
            )));
        }
        if let Some(d) = &args.sha256 {
            digest_arg("sha256", d)?;
        }
        check_text("mime", &args.mime, MAX_TEXT_LEN)?;
        check_text("name", &args.name, MAX_TEXT_LEN)?;
        if let Some(p) = &args.pmid {
            check_text("pmid", p, MAX_KEY_LEN)?;
        }
        let live = self.live_sessions_of(ctx.caller, ctx.now).count();
        if live >= cfg.max_live_sessions_per_caller as usize {
            return Err(Error::QuotaExceeded(format!(
                "caller already has {live} live upload sessions (limit {}); finish or abort some",
                cfg.max_live_sessions_per_caller
            )));
        }
        self.check_session_records(&cfg, ctx.caller)?;
        let chunk_count = args.size.div_ceil(u64::from(chunk_size));
        if chunk_count > u64::from(MAX_CHUNKS) {
            return Err(Error::InvalidArgument(format!(
                "a file of {} bytes in chunks of {chunk_size} needs {chunk_count} chunks; at most {MAX_CHUNKS}: use a larger chunk_size",
                args.size
            )));
        }
        let chunk_count = chunk_count as u32;
        // A begin needs room for its declared size whether or not the capsule already
        // holds these bytes: the answer does not depend on it, as it would not for the
        // same upload begun without a digest (reserved here, given back when finish
        // finds the bytes). One that finds them reserves nothing: nothing to upload.
        self.check_space(&capsule, args.size)?;
        let existing = args.sha256.as_ref().and_then(|d| {
            let sha256: [u8; 32] = d.as_slice().try_into().ok()?;
            self.dedup_lookup(capsule.id, sha256, args.size)
        });

        let id = self.st.hdr.next_session_id;
        self.st.hdr.next_session_id += 1;
        let rec = SessionRecord {
            id,
            capsule_id: capsule.id,
            owner: ctx.caller,
            size: args.size,
            chunk_size,
            chunk_count,
            expected_sha256: args.sha256,
            mime: args.mime,
            name: args.name,
            stem: ByteBuf::from(chunk_stem(args.pmid.as_deref().unwrap_or(""), id).to_vec()),
            pmid: args.pmid,
            idempotency_key: args.idempotency_key,
            created_at_ns: ctx.now,
            expires_at_ns: ctx.now.saturating_add(cfg.session_ttl_ns),
            status: existing.map_or(SessionStatus::Open, SessionStatus::Finished),
            received_chunks: 0,
            received_bytes: 0,
            hashed_chunks: 0,
            hashed_bytes: 0,
            hasher: serialize_hasher(&Sha256::new()),
        };
        self.st.sessions.insert(id, Cbor(rec.clone()));
        self.st.session_expiry.insert((rec.expires_at_ns, id), ());
        self.st.owner_sessions.insert(OwnerSessionKey::record(ctx.caller, id), ());
        // Already stored: the record answers (`Finished`) until housekeeping drops it,
        // and no `finished` entry outlives it (that entry belongs to the blob's own session).
        if existing.is_none() {
            self.st.hdr.open_sessions += 1;
            self.st.owner_sessions.insert(OwnerSessionKey { owner: ctx.caller, session_id: id }, ());
            self.st.capsule_sessions.insert((capsule.id, id), ());
            self.reserve(&mut capsule, rec.size);
            self.st.capsules.insert(capsule.id, Cbor(capsule));
        }
        self.st.save_header();
        Ok(self.session_view(&rec))
    }

    pub fn uploads_put_chunk(&mut self, ctx: &Ctx, session_id: u64, idx: u32, bytes: &[u8]) -> Result<PutChunkOk> {
        let mut rec = self.own_session_as_writer(ctx, session_id)?;
        check_open(&rec, ctx.now)?;
        if idx >= rec.chunk_count {
            return Err(Error::InvalidArgument(format!(
                "chunk index {idx} is out of range: session {session_id} has {} chunks",
                rec.chunk_count
            )));
        }
        let want = rec.chunk_len(idx);
        if bytes.len() != want as usize {
            return Err(Error::InvalidArgument(format!(
                "chunk {idx} of session {session_id} has {} bytes; it must have exactly {want}",
                bytes.len()
            )));
        }
        let key = ChunkKey { stem: rec.stem(), idx };
        if let Some(existing) = self.st.chunks.get(&key) {
            // A retry: identical bytes are a no-op, different bytes are refused.
            if !self.chunk_equals(existing, bytes) {
                return Err(Error::Conflict(format!(
                    "chunk {idx} of session {session_id} was already received with different bytes"
                )));
            }
            return Ok(PutChunkOk {
                stored: false,
                received_chunks: rec.received_chunks,
                received_bytes: rec.received_bytes,
                hashed_bytes: rec.hashed_bytes,
            });
        }
        let offset = self.alloc(u64::from(want))?;
        self.st.arena.write(offset, bytes);
        self.st.chunks.insert(key, ChunkRef { offset, len: want });
        if rec.chunk_count > 1 {
            // The body hash of this chunk's certified HTTP 206 response.
            self.st.http.digests.insert(key, Sha256::digest(bytes).into());
        }
        rec.received_chunks += 1;
        rec.received_bytes += u64::from(want);
        let expires = ctx.now.saturating_add(self.st.config().session_ttl_ns);
        self.set_expiry(&mut rec, expires);
        self.st.hdr.session_bytes += u64::from(want);
        self.advance_hash(&mut rec, Some((idx, bytes)));
        let ok = PutChunkOk {
            stored: true,
            received_chunks: rec.received_chunks,
            received_bytes: rec.received_bytes,
            hashed_bytes: rec.hashed_bytes,
        };
        self.st.sessions.insert(session_id, Cbor(rec));
        self.st.save_header();
        Ok(ok)
    }

    pub fn uploads_finish(&mut self, ctx: &Ctx, session_id: u64, sha256: &[u8], total_len: u64) -> Result<BlobMeta> {
        digest_arg("sha256", sha256)?;
        if !self.st.sessions.contains_key(&session_id) {
            return self.finish_after_record_dropped(ctx, session_id, sha256, total_len);
        }
        let (mut rec, role) = self.visible_session_role(ctx, session_id)?;
        if rec.owner != ctx.caller {
            return Err(Error::Unauthorized(format!(
                "only the creator of upload session {session_id} can finish it; owners can abort it"
            )));
        }
        if let SessionStatus::Finished(blob_id) = rec.status {
            // A retry: it writes nothing, so it needs no more than seeing the session.
            return self.finished_answer(session_id, blob_id, sha256, total_len);
        }
        at_least(ctx, Some(role), rec.capsule_id, Role::Writer, || session_not_found(session_id))?;
        check_open(&rec, ctx.now)?;
        if total_len != rec.size {
            return Err(Error::InvalidArgument(format!(
                "total_len {total_len} differs from the declared size {}",
                rec.size
            )));
        }
        if let Some(expected) = &rec.expected_sha256 {
            if expected.as_slice() != sha256 {
                return Err(Error::InvalidArgument(format!(
                    "sha256 {} differs from the one declared at uploads_begin ({})",
                    hex(sha256),
                    hex(expected)
                )));
            }
        }
        if rec.received_chunks < rec.chunk_count {
            let first_missing = self.received_ranges(&rec).first().map_or(0, |r| if r.start > 0 { 0 } else { r.end });
            return Err(Error::InvalidArgument(format!(
                "{} of {} chunks are missing (first missing: {first_missing}); put them, then finish",
                rec.chunk_count - rec.received_chunks,
                rec.chunk_count
            )));
        }
        let ttl = self.st.config().session_ttl_ns;
        if rec.hashed_chunks < rec.chunk_count {
            self.advance_hash(&mut rec, None);
            // Progress keeps the session alive, like a chunk does.
            self.set_expiry(&mut rec, ctx.now.saturating_add(ttl));
            self.st.sessions.insert(session_id, Cbor(rec.clone()));
            if rec.hashed_chunks < rec.chunk_count {
                return Err(Error::InProgress(format!(
                    "verifying: {} of {} bytes hashed; call uploads_finish again",
                    rec.hashed_bytes, rec.size
                )));
            }
        }
        let digest = self.take_hasher(&rec).finalize();
        if digest.as_slice() != sha256 {
            return Err(Error::ChecksumMismatch(format!(
                "the received bytes hash to {}, not {}; the session stays open: finish with the right digest, or abort",
                hex(&digest),
                hex(sha256)
            )));
        }
        let keep_until = ctx.now.saturating_add(ttl);
        if let Some(existing) = self.dedup_lookup(rec.capsule_id, digest.into(), rec.size).and_then(|id| self.st.blobs.get(&id)) {
            // The capsule already holds these bytes: reuse that blob, free the new chunks.
            let existing = existing.0;
            self.enqueue_chunks(rec.stem(), rec.received_bytes);
            self.close_session(&mut rec, SessionStatus::Finished(existing.id), keep_until, false);
            return Ok(blob_meta(&existing));
        }
        // Commit: a handful of small writes, none of which depends on the file size.
        // The bytes were reserved at begin: the quota cannot refuse them now.
        let blob_id = self.st.hdr.next_blob_id;
        let blob = BlobRecord {
            id: blob_id,
            capsule_id: rec.capsule_id,
            size: rec.size,
            sha256: ByteBuf::from(digest.to_vec()),
            chunk_size: rec.chunk_size,
            chunk_count: rec.chunk_count,
            stem: rec.stem.clone(),
            mime: rec.mime.clone(),
            name: rec.name.clone(),
            created_at_ns: ctx.now,
            session_id,
            refs: 0,
        };
        self.st.blobs.insert(blob_id, Cbor(blob.clone()));
        self.st.capsule_blobs.insert((blob.capsule_id, blob_id), ());
        self.st.dedup.insert(dedup_entry(&blob), ());
        let h = &mut self.st.hdr;
        h.next_blob_id += 1;
        h.blob_count += 1;
        h.blob_bytes += rec.size;
        self.close_session(&mut rec, SessionStatus::Finished(blob_id), keep_until, true);
        Ok(blob_meta(&blob))
    }

    /// Frees the session's chunks. Its creator (while a member) and the capsule's
    /// owners may abort it. Aborting twice is a no-op success.
    pub fn uploads_abort(&mut self, ctx: &Ctx, session_id: u64) -> Result<()> {
        let mut rec = self.visible_session(ctx, session_id)?;
        match rec.status {
            SessionStatus::Aborted => return Ok(()),
            SessionStatus::Finished(blob_id) => {
                return Err(Error::Conflict(format!(
                    "session {session_id} already finished as blob {blob_id}; delete the blob instead"
                )))
            }
            SessionStatus::Open => {}
        }
        self.abort_open_session(&mut rec, ctx.now);
        Ok(())
    }

    pub fn uploads_status(&self, ctx: &Ctx, session_id: u64) -> Result<Session> {
        let rec = self.visible_session(ctx, session_id)?;
        Ok(self.session_view(&rec))
    }

    /// The caller's live (open, unexpired) sessions: the first page of `uploads_page`.
    pub fn uploads_list(&self, ctx: &Ctx) -> Vec<Session> {
        self.uploads_page(ctx, UploadsPageArgs::default()).map(|p| p.sessions).unwrap_or_default()
    }

    /// Open sessions page by page: the caller's own, or (for its owners) every open
    /// session of a capsule, by session id.
    pub fn uploads_page(&self, ctx: &Ctx, args: UploadsPageArgs) -> Result<SessionPage> {
        let from = args.cursor.map_or(0, |c| c.saturating_add(1));
        let limit = args.limit.unwrap_or(0);
        let load = |id: u64| {
            self.st.sessions.get(&id).map(|r| r.0).filter(|r| r.status == SessionStatus::Open && !r.is_expired(ctx.now))
        };
        let (sessions, next_cursor) = match args.capsule_id {
            None => {
                let keys = self
                    .st
                    .owner_sessions
                    .range(OwnerSessionKey { owner: ctx.caller, session_id: from }..=OwnerSessionKey { owner: ctx.caller, session_id: u64::MAX })
                    .map(|e| e.key().session_id);
                collect_page(keys, limit, load, session_size, |r| self.session_view(&r))
            }
            Some(capsule_id) => {
                self.require_role(ctx, capsule_id, Role::Owner)?;
                let keys = self.st.capsule_sessions.range((capsule_id, from)..=(capsule_id, u64::MAX)).map(|e| e.key().1);
                collect_page(keys, limit, load, session_size, |r| self.session_view(&r))
            }
        };
        Ok(SessionPage { sessions, next_cursor })
    }

    // ---- internals ----

    /// Ends an open session: gives back its reservation (a new blob keeps the bytes),
    /// and keeps the record (for idempotent retries) until `keep_until`, when
    /// housekeeping drops it. A session that made a new blob also gets its `finished`
    /// entry, which answers a retried finish after the record is gone for as long as
    /// the blob exists (one entry per blob, removed with it); a session whose bytes were
    /// already stored answers from its record only, so nothing of it outlives the record.
    fn close_session(&mut self, rec: &mut SessionRecord, status: SessionStatus, keep_until: u64, new_blob: bool) {
        self.end_reservation(rec, new_blob);
        self.forget_open_session(rec);
        if let (SessionStatus::Finished(blob_id), true) = (&status, new_blob) {
            self.st.finished.insert(rec.id, *blob_id);
        }
        rec.status = status;
        self.set_expiry(rec, keep_until);
        self.st.sessions.insert(rec.id, Cbor(rec.clone()));
        self.st.save_header();
    }

    /// Drops an open session from the open-session counts and indexes.
    pub(crate) fn forget_open_session(&mut self, rec: &SessionRecord) {
        self.st.hdr.open_sessions -= 1;
        self.st.hdr.session_bytes -= rec.received_bytes;
        self.st.owner_sessions.remove(&OwnerSessionKey { owner: rec.owner, session_id: rec.id });
        self.st.capsule_sessions.remove(&(rec.capsule_id, rec.id));
        self.hashers.remove(&rec.id);
    }

    /// Aborts an open session: its received chunks go to housekeeping (so abort costs
    /// the same for 1 MB and 1 GB) and its reservation is given back.
    pub(crate) fn abort_open_session(&mut self, rec: &mut SessionRecord, now: u64) {
        self.enqueue_chunks(rec.stem(), rec.received_bytes);
        let keep_until = now.saturating_add(self.st.config().session_ttl_ns);
        self.close_session(rec, SessionStatus::Aborted, keep_until, false);
    }

    /// The answer to finishing a session that finished as `blob_id`.
    fn finished_answer(&self, session_id: u64, blob_id: u64, sha256: &[u8], total_len: u64) -> Result<BlobMeta> {
        match self.st.blobs.get(&blob_id).map(|b| b.0) {
            Some(b) if b.sha256.as_slice() == sha256 && b.size == total_len => Ok(blob_meta(&b)),
            Some(b) => Err(Error::Conflict(format!(
                "session {session_id} already finished as blob {blob_id} ({} bytes, sha256 {})",
                b.size,
                hex(&b.sha256)
            ))),
            None => Err(Error::NotFound(format!(
                "session {session_id} finished as blob {blob_id}, which has since been deleted"
            ))),
        }
    }

    /// A retried finish after housekeeping dropped the session record: the blob the
    /// session made answers, for callers who can read it, while that blob exists. (A
    /// session that found its bytes already stored is `NotFound` once its record is
    /// gone, one TTL after it finished: begin again with the digest, which answers at
    /// once.)
    fn finish_after_record_dropped(&self, ctx: &Ctx, session_id: u64, sha256: &[u8], total_len: u64) -> Result<BlobMeta> {
        let blob_id = self.st.finished.get(&session_id).ok_or_else(|| session_not_found(session_id))?;
        match self.visible_blob(ctx, blob_id, Role::Reader) {
            Ok(_) => self.finished_answer(session_id, blob_id, sha256, total_len),
            Err(_) => Err(session_not_found(session_id)),
        }
    }

    /// A blob of the capsule with these bytes, if any.
    pub(crate) fn dedup_lookup(&self, capsule_id: u64, sha256: [u8; 32], size: u64) -> Option<u64> {
        let first = DedupEntry::first(capsule_id, sha256, size);
        self.st.dedup.range(first..).next().map(|e| *e.key()).filter(|e| e.same_bytes(&first)).map(|e| e.blob_id)
    }

    fn live_sessions_of(&self, owner: Principal, now: u64) -> impl Iterator<Item = SessionRecord> + '_ {
        let from = OwnerSessionKey { owner, session_id: 0 };
        let to = OwnerSessionKey { owner, session_id: u64::MAX };
        self.st
            .owner_sessions
            .range(from..=to)
            .filter_map(|e| self.st.sessions.get(&e.key().session_id).map(|r| r.0))
            .filter(move |r| r.status == SessionStatus::Open && !r.is_expired(now))
    }

    fn find_by_idempotency_key(&self, ctx: &Ctx, capsule_id: u64, key: &str) -> Option<SessionRecord> {
        self.live_sessions_of(ctx.caller, ctx.now)
            .find(|r| r.capsule_id == capsule_id && r.idempotency_key.as_deref() == Some(key))
    }

    fn chunk_equals(&self, c: ChunkRef, bytes: &[u8]) -> bool {
        if c.len as usize != bytes.len() {
            return false;
        }
        const STEP: usize = 64 * 1024;
        let mut buf = vec![0u8; STEP.min(bytes.len())];
        bytes.chunks(STEP).enumerate().all(|(i, want)| {
            let got = &mut buf[..want.len()];
            self.st.arena.read(c.offset + (i * STEP) as u64, got);
            got == want
        })
    }

    /// The live hasher for `rec`: from the heap cache if it matches the record, else
    /// rebuilt from the serialized state (after an upgrade, say).
    fn take_hasher(&mut self, rec: &SessionRecord) -> Sha256 {
        Self::restore_hasher(&mut self.hashers, rec)
    }

    fn restore_hasher(cache: &mut std::collections::HashMap<u64, (u32, Sha256)>, rec: &SessionRecord) -> Sha256 {
        match cache.remove(&rec.id) {
            Some((n, h)) if n == rec.hashed_chunks => h,
            _ => deserialize_hasher(&rec.hasher),
        }
    }

    /// Feeds the contiguous received prefix to the rolling hash, in file order, within
    /// the per-message budget (always at least one chunk). `fresh` is the chunk this
    /// message brought, hashed from the message itself rather than read back.
    fn advance_hash(&mut self, rec: &mut SessionRecord, fresh: Option<(u32, &[u8])>) {
        let budget = HASH_BYTES_PER_MESSAGE;
        let stem = rec.stem();
        let mut hasher: Option<Sha256> = None;
        let mut done = 0u64;
        let mut buf = Vec::new();
        while rec.hashed_chunks < rec.chunk_count {
            let idx = rec.hashed_chunks;
            let len = u64::from(rec.chunk_len(idx));
            if done > 0 && done + len > budget {
                break;
            }
            let bytes: &[u8] = match fresh {
                Some((i, bytes)) if i == idx => bytes,
                _ => {
                    let Some(c) = self.st.chunks.get(&ChunkKey { stem, idx }) else { break };
                    buf.resize(c.len as usize, 0);
                    self.st.arena.read(c.offset, &mut buf);
                    &buf
                }
            };
            hasher.get_or_insert_with(|| Self::restore_hasher(&mut self.hashers, rec)).update(bytes);
            rec.hashed_chunks += 1;
            rec.hashed_bytes += len;
            done += len;
        }
        if let Some(h) = hasher {
            rec.hasher = serialize_hasher(&h);
            self.hashers.insert(rec.id, (rec.hashed_chunks, h));
        }
    }

    pub(crate) fn received_ranges(&self, rec: &SessionRecord) -> Vec<ChunkRange> {
        let stem = rec.stem();
        let mut out: Vec<ChunkRange> = Vec::new();
        let from = ChunkKey { stem, idx: 0 };
        let to = ChunkKey { stem, idx: u32::MAX };
        for e in self.st.chunks.range(from..=to) {
            let idx = e.key().idx;
            match out.last_mut() {
                Some(r) if r.end == idx => r.end = idx + 1,
                _ => out.push(ChunkRange { start: idx, end: idx + 1 }),
            }
        }
        out
    }

    pub(crate) fn session_view(&self, rec: &SessionRecord) -> Session {
        let received = match rec.status {
            SessionStatus::Aborted => vec![],
            _ => self.received_ranges(rec),
        };
        Session {
            id: rec.id,
            capsule_id: rec.capsule_id,
            owner: rec.owner,
            size: rec.size,
            chunk_size: rec.chunk_size,
            chunk_count: rec.chunk_count,
            sha256: rec.expected_sha256.clone(),
            mime: rec.mime.clone(),
            name: rec.name.clone(),
            pmid: rec.pmid.clone(),
            created_at_ns: rec.created_at_ns,
            expires_at_ns: rec.expires_at_ns,
            state: match rec.status {
                SessionStatus::Open => SessionState::Open,
                SessionStatus::Finished(blob_id) => SessionState::Finished { blob_id },
                SessionStatus::Aborted => SessionState::Aborted,
            },
            received_chunks: rec.received_chunks,
            received_bytes: rec.received_bytes,
            hashed_bytes: rec.hashed_bytes,
            received,
        }
    }
}

/// An open session that has not expired.
fn check_open(rec: &SessionRecord, now: u64) -> Result<()> {
    match rec.status {
        SessionStatus::Finished(blob_id) => {
            Err(Error::Conflict(format!("session {} is already finished (blob {blob_id})", rec.id)))
        }
        SessionStatus::Aborted => Err(Error::Conflict(format!("session {} was aborted", rec.id))),
        SessionStatus::Open if rec.is_expired(now) => Err(expired(rec.id)),
        SessionStatus::Open => Ok(()),
    }
}

pub(crate) fn dedup_entry(b: &BlobRecord) -> DedupEntry {
    DedupEntry { capsule_id: b.capsule_id, sha256: b.sha256(), size: b.size, blob_id: b.id }
}

fn expired(session_id: u64) -> Error {
    Error::Expired(format!(
        "upload session {session_id} expired; begin a new session and upload again"
    ))
}

pub(crate) fn blob_meta(b: &BlobRecord) -> BlobMeta {
    BlobMeta {
        id: b.id,
        capsule_id: b.capsule_id,
        size: b.size,
        sha256: b.sha256.clone(),
        chunk_size: b.chunk_size,
        chunk_count: b.chunk_count,
        mime: b.mime.clone(),
        name: b.name.clone(),
        created_at_ns: b.created_at_ns,
        session_id: b.session_id,
        refs: Some(b.refs),
    }
}
