//! The certification of everything `http_request` answers (HTTP certification v2,
//! DFINITY's `ic-http-certification`).
//!
//! Every response the canister can give for an existing URL is certified in advance,
//! byte for byte, under the URL's exact path: the full body (one-part assets), each
//! part as a `206` (the parts are the upload's chunks; their body hashes are the chunk
//! digests taken at `uploads_put_chunk`), the `304`, the `403` and the `416`. Unknown
//! URLs get a `404` certified under the root wildcard. No response skips certification.
//!
//! The tree lives in the heap (it is a cache of what stable memory says). After an
//! upgrade it is rebuilt by bounded timer passes ([`State::http_rebuild_step`]), never in
//! `post_upgrade`, so an upgrade costs the same whatever is stored; until the rebuild is
//! done `http_request` answers `503` (uncertified, so a gateway shows an error and the
//! client retries).

use std::collections::{BTreeMap, BTreeSet};

use ic_http_certification::{
    response_hash, DefaultCelBuilder, DefaultResponseCertification, DefaultResponseOnlyCelExpression, HttpCertification,
    HttpCertificationPath, HttpCertificationTree, HttpCertificationTreeEntry, HttpResponse, StatusCode,
    CERTIFICATE_EXPRESSION_HEADER_NAME,
};
use ic_stable_structures::Memory as StableMemory;
use sha2::{Digest, Sha256};

use super::records::{AssetRecord, MemoryRecord};
use super::{hex, State};
use crate::api::AssetKind;
use crate::storage::http::PublicShaKey;
use crate::storage::ChunkKey;

/// Headers a gateway passes on: all of them certified.
pub const CERTIFIED_HEADERS: [&str; 8] = [
    "content-type",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "cache-control",
    "x-content-type-options",
    "content-security-policy",
];

/// User content never runs as a page of the canister's origin (an uploaded SVG or
/// HTML opened directly gets no script).
const CSP: &str = "sandbox; default-src 'none'; img-src 'self' data:; media-src 'self'; style-src 'unsafe-inline'";
pub const CACHE_MEMORY_URL: &str = "no-cache";
pub const CACHE_CONTENT_URL: &str = "public, max-age=31536000, immutable";
const CACHE_ERROR: &str = "no-store";

pub const BODY_403: &[u8] = b"403 Forbidden: this memory is private. Open it with a link its owners shared; the link may have expired or been revoked.\n";
pub const BODY_404: &[u8] = b"404 Not Found: no such memory, asset or content.\n";
pub const BODY_416: &[u8] = b"416 Range Not Satisfiable: the range starts past the end of the content.\n";

/// Most entries one rebuild pass inserts (the canister also stops a pass by its
/// instruction counter: see [`State::http_rebuild_step_while`]).
pub const REBUILD_ENTRIES_PER_PASS: usize = 20_000;
/// Most bytes one message hashes for missing chunk digests: SHA-256 costs ~78
/// instructions a byte on the IC, so 128 MiB is ~10 B of a message's 40 B (512 MiB, the
/// earlier bound, was ~42 B: over the limit).
pub const BACKFILL_BYTES_PER_PASS: u64 = 128 << 20;

/// Which URL form: memory URLs are access-checked and revalidated, content URLs
/// (public bytes by digest) are immutable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlForm {
    Memory,
    Content,
}

/// Where an asset's bytes are and how they split into certified parts.
#[derive(Clone, Debug)]
pub struct Source {
    pub size: u64,
    pub sha256: [u8; 32],
    pub mime: String,
    pub parts: Parts,
}

#[derive(Clone, Debug)]
pub enum Parts {
    Inline { offset: u64 },
    Blob { stem: [u8; 32], chunk_size: u32, chunk_count: u32 },
}

impl Source {
    pub fn part_count(&self) -> u32 {
        match self.parts {
            Parts::Inline { .. } => 1,
            Parts::Blob { chunk_count, .. } => chunk_count,
        }
    }

    /// Byte range `[start, end)` of part `i`.
    pub fn part_range(&self, i: u32) -> (u64, u64) {
        match self.parts {
            Parts::Inline { .. } => (0, self.size),
            Parts::Blob { chunk_size, .. } => {
                let start = u64::from(i) * u64::from(chunk_size);
                (start, (start + u64::from(chunk_size)).min(self.size))
            }
        }
    }

    pub fn part_of(&self, offset: u64) -> u32 {
        match self.parts {
            Parts::Inline { .. } => 0,
            Parts::Blob { chunk_size, .. } => (offset / u64::from(chunk_size)) as u32,
        }
    }

    pub fn etag(&self) -> String {
        format!("\"{}\"", hex(&self.sha256))
    }
}

/// Every response the canister gives for an existing URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `200`, whole body; one-part sources only.
    Full,
    /// `206` with part `i` (for one-part sources: the whole body).
    Part(u32),
    NotModified,
    /// Memory URLs only.
    Forbidden,
    Unsatisfiable,
}

/// A response without its body, and the hash of that body.
pub struct Certified {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body_hash: [u8; 32],
}

pub fn memory_path(memory_id: u64, kind: AssetKind) -> String {
    format!("/m/{memory_id}/{}", kind_label(kind))
}

pub fn content_path(sha256: &[u8; 32]) -> String {
    format!("/b/{}", hex(sha256))
}

pub const KINDS: [AssetKind; 7] = [
    AssetKind::Original,
    AssetKind::Display,
    AssetKind::Thumbnail,
    AssetKind::Placeholder,
    AssetKind::Poster,
    AssetKind::Preview,
    AssetKind::Other,
];

pub fn kind_label(kind: AssetKind) -> &'static str {
    match kind {
        AssetKind::Original => "original",
        AssetKind::Display => "display",
        AssetKind::Thumbnail => "thumbnail",
        AssetKind::Placeholder => "placeholder",
        AssetKind::Poster => "poster",
        AssetKind::Preview => "preview",
        AssetKind::Other => "other",
    }
}

pub fn kind_from_label(s: &str) -> Option<AssetKind> {
    KINDS.into_iter().find(|k| kind_label(*k) == s)
}

pub fn kind_code(kind: AssetKind) -> u8 {
    KINDS.iter().position(|k| *k == kind).expect("every kind is listed") as u8
}

pub fn cel() -> DefaultResponseOnlyCelExpression<'static> {
    DefaultCelBuilder::response_only_certification()
        .with_response_certification(DefaultResponseCertification::certified_response_headers(
            CERTIFIED_HEADERS.to_vec(),
        ))
        .build()
}

/// The expression, its text and the text's hash, built once per Wasm instance.
struct Cel {
    expr: DefaultResponseOnlyCelExpression<'static>,
    text: String,
    hash: [u8; 32],
}

fn cached_cel() -> &'static Cel {
    static CEL: std::sync::OnceLock<Cel> = std::sync::OnceLock::new();
    CEL.get_or_init(|| {
        let expr = cel();
        let text = expr.to_string();
        let hash = sha(text.as_bytes());
        Cel { expr, text, hash }
    })
}

fn sha(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn error_headers(body: &[u8]) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "text/plain; charset=utf-8".into()),
        ("content-length".into(), body.len().to_string()),
        ("cache-control".into(), CACHE_ERROR.into()),
        ("x-content-type-options".into(), "nosniff".into()),
    ]
}

/// The response for `reply`; `None` if a part's digest is missing (not backfilled yet).
pub fn describe<M: StableMemory + Clone>(st: &State<M>, src: &Source, form: UrlForm, reply: Reply) -> Option<Certified> {
    let cache = match form {
        UrlForm::Memory => CACHE_MEMORY_URL,
        UrlForm::Content => CACHE_CONTENT_URL,
    };
    let mime = if src.mime.is_empty() { "application/octet-stream" } else { src.mime.as_str() };
    let content = |len: u64| -> Vec<(String, String)> {
        vec![
            ("content-type".into(), mime.into()),
            ("content-length".into(), len.to_string()),
            ("accept-ranges".into(), "bytes".into()),
            ("etag".into(), src.etag()),
            ("cache-control".into(), cache.into()),
            ("x-content-type-options".into(), "nosniff".into()),
            ("content-security-policy".into(), CSP.into()),
        ]
    };
    Some(match reply {
        Reply::Full => Certified { status: 200, headers: content(src.size), body_hash: src.sha256 },
        Reply::Part(i) => {
            let (start, end) = src.part_range(i);
            let mut headers = content(end - start);
            headers.push(("content-range".into(), format!("bytes {start}-{}/{}", end - 1, src.size)));
            let body_hash = match src.parts {
                Parts::Blob { stem, chunk_count, .. } if chunk_count > 1 => {
                    st.st.http.digests.get(&ChunkKey { stem, idx: i })?
                }
                _ => src.sha256,
            };
            Certified { status: 206, headers, body_hash }
        }
        Reply::NotModified => Certified {
            status: 304,
            headers: vec![
                ("etag".into(), src.etag()),
                ("cache-control".into(), cache.into()),
                ("x-content-type-options".into(), "nosniff".into()),
            ],
            body_hash: sha(b""),
        },
        Reply::Forbidden => Certified { status: 403, headers: error_headers(BODY_403), body_hash: sha(BODY_403) },
        Reply::Unsatisfiable => {
            let mut headers = error_headers(BODY_416);
            headers.push(("content-range".into(), format!("bytes */{}", src.size)));
            Certified { status: 416, headers, body_hash: sha(BODY_416) }
        }
    })
}

/// Adds the certificate-expression header and builds the tree entry of a response.
pub fn entry(path: HttpCertificationPath<'static>, c: &mut Certified) -> HttpCertificationTreeEntry<'static> {
    let cel = cached_cel();
    if !c.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(CERTIFICATE_EXPRESSION_HEADER_NAME)) {
        c.headers.push((CERTIFICATE_EXPRESSION_HEADER_NAME.to_string(), cel.text.clone()));
    }
    let response = HttpResponse::builder()
        .with_status_code(StatusCode::from_u16(c.status).expect("valid status"))
        .with_headers(c.headers.clone())
        .build();
    // The library's `response_only` re-renders the expression for every response;
    // the prehashed form takes the same two hashes computed once.
    let response_hash = response_hash(&response, &cel.expr.response, Some(c.body_hash));
    HttpCertificationTreeEntry::new(path, HttpCertification::response_only_prehashed(cel.hash, response_hash))
}

pub fn not_found_entry() -> (HttpCertificationTreeEntry<'static>, Certified) {
    let mut c = Certified { status: 404, headers: error_headers(BODY_404), body_hash: sha(BODY_404) };
    (entry(HttpCertificationPath::wildcard("/"), &mut c), c)
}

/// Rebuild progress after an upgrade (heap only: an upgrade starts it over).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Rebuild {
    Memories { next: u64 },
    Content { next: [u8; 32] },
    Done,
}

/// The heap certification tree and what is missing from it.
pub struct HttpCache {
    pub tree: HttpCertificationTree,
    rebuild: Rebuild,
    /// Memories whose certification waits for chunk digests (old uploads).
    pending: BTreeSet<u64>,
    /// The asset kinds (bit `kind_code`) each memory has URLs for in `tree`: re-certifying
    /// deletes only those (a delete of an absent path still rehashes the tree along it).
    certified: BTreeMap<u64, u8>,
    /// The root hash changed; the endpoint layer sets the certified data.
    pub dirty: bool,
    pub entries: u64,
}

impl Default for HttpCache {
    fn default() -> Self {
        let mut tree = HttpCertificationTree::default();
        tree.insert(&not_found_entry().0);
        HttpCache {
            tree,
            rebuild: Rebuild::Memories { next: 0 },
            pending: BTreeSet::new(),
            certified: BTreeMap::new(),
            dirty: true,
            entries: 1,
        }
    }
}

impl HttpCache {
    pub fn ready(&self) -> bool {
        self.rebuild == Rebuild::Done
    }

    pub fn is_pending(&self, memory_id: u64) -> bool {
        self.pending.contains(&memory_id)
    }

    pub fn root_hash(&self) -> [u8; 32] {
        self.tree.root_hash()
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

impl<M: StableMemory + Clone> State<M> {
    pub(crate) fn asset_source(&self, a: &AssetRecord) -> Option<Source> {
        let sha256: [u8; 32] = a.sha256.as_slice().try_into().ok()?;
        if let Some(r) = a.inline {
            return Some(Source { size: u64::from(r.len), sha256, mime: a.mime.clone(), parts: Parts::Inline { offset: r.offset } });
        }
        let blob = self.st.blobs.get(&a.blob_id?)?.0;
        Some(Source {
            size: blob.size,
            sha256,
            mime: a.mime.clone(),
            parts: Parts::Blob { stem: blob.stem(), chunk_size: blob.chunk_size, chunk_count: blob.chunk_count },
        })
    }

    /// Every certified response of one URL.
    fn path_entries(&self, path: &str, src: &Source, form: UrlForm) -> Option<Vec<HttpCertificationTreeEntry<'static>>> {
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
                Some(entry(HttpCertificationPath::exact(path.to_string()), &mut c))
            })
            .collect()
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

    /// Re-certifies every URL of one memory (after it changed, or during a rebuild).
    /// Returns the entries inserted; a memory whose digests are not all there yet is
    /// left uncertified and marked pending.
    fn certify_memory(&mut self, memory_id: u64, budget: &mut u64) -> usize {
        let had = self.http.certified.remove(&memory_id).unwrap_or(0);
        for kind in KINDS.into_iter().filter(|&k| had & (1 << kind_code(k)) != 0) {
            self.http.tree.delete_by_path(&HttpCertificationPath::exact(memory_path(memory_id, kind)));
        }
        self.http.dirty = true;
        self.http.pending.remove(&memory_id);
        let Some(rec) = self.st.memories.get(&memory_id).map(|m| m.0) else { return 0 };
        let sources: Vec<(AssetKind, Source)> =
            rec.assets.iter().filter_map(|a| self.asset_source(a).map(|s| (a.kind, s))).collect();
        for (_, src) in &sources {
            if !self.backfill_digests(src, budget) {
                self.http.pending.insert(memory_id);
                return 0;
            }
        }
        let mut n = 0;
        for (kind, src) in sources {
            let Some(entries) = self.path_entries(&memory_path(memory_id, kind), &src, UrlForm::Memory) else {
                self.http.pending.insert(memory_id);
                continue;
            };
            for e in &entries {
                self.http.tree.insert(e);
            }
            *self.http.certified.entry(memory_id).or_default() |= 1 << kind_code(kind);
            n += entries.len();
        }
        self.http.entries += n as u64;
        n
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
        self.asset_source(asset)
    }

    fn certify_content(&mut self, sha256: &[u8; 32]) -> usize {
        let path = content_path(sha256);
        self.http.tree.delete_by_path(&HttpCertificationPath::exact(path.clone()));
        self.http.dirty = true;
        let Some(src) = self.public_content(sha256) else { return 0 };
        // Public memories were certified first, so their digests are there.
        let Some(entries) = self.path_entries(&path, &src, UrlForm::Content) else { return 0 };
        for e in &entries {
            self.http.tree.insert(e);
        }
        self.http.entries += entries.len() as u64;
        entries.len()
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
            let covered = match &self.http.rebuild {
                Rebuild::Memories { .. } => false,
                Rebuild::Content { next } => sha < *next,
                Rebuild::Done => true,
            };
            if covered {
                self.certify_content(&sha);
            }
        }
    }

    /// A memory was created, changed or deleted: its URLs and, if it is public, the
    /// content URLs of its bytes follow.
    pub(crate) fn http_memory_changed(&mut self, memory_id: u64) {
        let rec = self.st.memories.get(&memory_id).map(|m| m.0);
        let public = rec.is_some() && self.st.http.public.contains_key(&memory_id);
        let covered = match self.http.rebuild {
            Rebuild::Memories { next } => memory_id < next,
            _ => true,
        };
        if covered {
            let mut budget = BACKFILL_BYTES_PER_PASS;
            self.certify_memory(memory_id, &mut budget);
        }
        self.sync_public(memory_id, rec.as_ref(), public);
    }

    /// One bounded certification pass: rebuilds the tree after an upgrade, then
    /// certifies memories that waited for digests. Call until `more` is false.
    pub fn http_rebuild_step(&mut self) -> RebuildReport {
        self.http_rebuild_step_while(|| true)
    }

    /// [`State::http_rebuild_step`] that also stops, after at least one memory, once
    /// `more_time()` says no: the canister passes its instruction counter, because what an
    /// entry costs depends on what it certifies (an entry count alone let a pass of
    /// 20,000 entries reach the 40 B instruction limit).
    pub fn http_rebuild_step_while(&mut self, more_time: impl Fn() -> bool) -> RebuildReport {
        let mut report = RebuildReport::default();
        let mut budget = BACKFILL_BYTES_PER_PASS;
        while report.entries < REBUILD_ENTRIES_PER_PASS && (report.entries == 0 || more_time()) {
            match self.http.rebuild.clone() {
                Rebuild::Memories { next } => {
                    let Some(id) = self.st.memories.range(next..).next().map(|e| *e.key()) else {
                        self.http.rebuild = Rebuild::Content { next: [0; 32] };
                        continue;
                    };
                    report.entries += self.certify_memory(id, &mut budget);
                    if self.http.pending.contains(&id) && budget < BACKFILL_BYTES_PER_PASS {
                        // Out of hashing budget: this memory continues next pass.
                        report.more = true;
                        break;
                    }
                    self.http.rebuild = Rebuild::Memories { next: id + 1 };
                }
                Rebuild::Content { next } => {
                    let from = PublicShaKey { sha256: next, memory_id: 0, kind: 0 };
                    let Some(key) = self.st.http.public_sha.range(from..).next().map(|e| *e.key()) else {
                        self.http.rebuild = Rebuild::Done;
                        continue;
                    };
                    report.entries += self.certify_content(&key.sha256);
                    match next_digest(&key.sha256) {
                        Some(n) => self.http.rebuild = Rebuild::Content { next: n },
                        None => self.http.rebuild = Rebuild::Done,
                    }
                }
                Rebuild::Done => {
                    // Memories that waited for digests. One whose digests cannot be
                    // computed (no progress) stays pending without looping the timer.
                    let ids: Vec<u64> = self.http.pending.iter().copied().collect();
                    for id in ids {
                        if report.entries >= REBUILD_ENTRIES_PER_PASS || (report.entries > 0 && !more_time()) {
                            report.more = true;
                            break;
                        }
                        let before = budget;
                        report.entries += self.certify_memory(id, &mut budget);
                        if self.http.pending.contains(&id) {
                            if budget < before {
                                report.more = true;
                                break;
                            }
                        } else if self.st.http.public.contains_key(&id) {
                            let rec = self.st.memories.get(&id).map(|m| m.0);
                            self.sync_public(id, rec.as_ref(), true);
                        }
                    }
                    break;
                }
            }
        }
        report.digest_bytes = BACKFILL_BYTES_PER_PASS - budget;
        report.more |= !self.http.ready();
        report
    }

    /// Root hash of the certification tree: the canister's certified data.
    pub fn http_root_hash(&self) -> [u8; 32] {
        self.http.root_hash()
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
