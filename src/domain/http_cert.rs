//! What `http_request` certifies (HTTP certification v2, DFINITY's
//! `ic-http-certification`): the responses and their paths in the certification tree.
//!
//! Every response the canister can give for an existing URL is certified in advance,
//! byte for byte, under the URL's exact path: the full body (one-part assets), each
//! part as a `206` (the parts are the upload's chunks; their body hashes are the chunk
//! digests taken at `uploads_put_chunk`), the `304`, the `403` and the `416`. Unknown
//! URLs get a `404` certified under the root wildcard. No response skips certification.
//!
//! The tree lives in stable memory ([`crate::storage::hash_tree`]): it survives an
//! upgrade as it is, so the first request after one is served certified; keeping it in
//! step with the memories is [`super::http_certify`].
//!
//! **Private means unprobeable.** A memory URL's ETag is a MAC of the content under the
//! canister's secret (`link_secret`), and every certified response of a memory URL but
//! the constant `403` carries it (the `416` too). So no response hash of a memory URL can
//! be computed from the file alone, and a stranger's witness (whose pruned nodes are
//! the hashes of the URL's other responses) cannot be checked against a file someone
//! holds. Content URLs (`/b/<sha256>`, public by construction) keep the digest as ETag.

use hmac::{Hmac, KeyInit, Mac};
use ic_certification::{label, HashTree};
use ic_http_certification::utils::more_specific_wildcards_for;
use ic_http_certification::{
    response_hash, DefaultCelBuilder, DefaultResponseCertification, DefaultResponseOnlyCelExpression,
    HttpCertificationPath, HttpResponse, StatusCode, CERTIFICATE_EXPRESSION_HEADER_NAME,
};
use ic_stable_structures::Memory as StableMemory;
use sha2::{Digest, Sha256};

use super::records::AssetRecord;
use super::{hex, State};
use crate::api::AssetKind;
use crate::storage::hash_tree::{encode, Key};
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

/// Most bytes one message hashes for missing chunk digests: SHA-256 costs ~78
/// instructions a byte on the IC, so 128 MiB is ~10 B of a message's 40 B.
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
    /// The entity tag, quoted: a MAC for memory URLs, the digest for content URLs.
    pub etag: String,
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

    pub fn etag(&self) -> &str {
        &self.etag
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
#[derive(Clone, Debug)]
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
            ("etag".into(), src.etag.clone()),
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
                ("etag".into(), src.etag.clone()),
                ("cache-control".into(), cache.into()),
                ("x-content-type-options".into(), "nosniff".into()),
            ],
            body_hash: sha(b""),
        },
        Reply::Forbidden => Certified { status: 403, headers: error_headers(BODY_403), body_hash: sha(BODY_403) },
        Reply::Unsatisfiable => {
            let mut headers = error_headers(BODY_416);
            headers.push(("content-range".into(), format!("bytes */{}", src.size)));
            // Without it, the size alone would make this hash computable.
            headers.push(("etag".into(), src.etag.clone()));
            Certified { status: 416, headers, body_hash: sha(BODY_416) }
        }
    })
}

/// Adds the certificate-expression header and returns the response's hash.
pub fn response_hash_of(c: &mut Certified) -> [u8; 32] {
    let cel = cached_cel();
    if !c.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(CERTIFICATE_EXPRESSION_HEADER_NAME)) {
        c.headers.push((CERTIFICATE_EXPRESSION_HEADER_NAME.to_string(), cel.text.clone()));
    }
    let response = HttpResponse::builder()
        .with_status_code(StatusCode::from_u16(c.status).expect("valid status"))
        .with_headers(c.headers.clone())
        .build();
    // The library's `response_only` re-renders the expression for every response;
    // this takes the same hash with the expression rendered once.
    response_hash(&response, &cel.expr.response, Some(c.body_hash))
}

pub fn not_found() -> Certified {
    Certified { status: 404, headers: error_headers(BODY_404), body_hash: sha(BODY_404) }
}

/// A certification path's labels below `http_expr`.
pub fn tree_path(path: &HttpCertificationPath) -> Vec<Vec<u8>> {
    path.to_expr_path().into_iter().skip(1).map(String::into_bytes).collect()
}

/// The tree key of one certified response under `path`.
pub fn response_key(path: &[Vec<u8>], response_hash: &[u8; 32]) -> Option<Key> {
    let mut labels: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
    labels.extend([cached_cel().hash.as_slice(), b"", response_hash.as_slice()]);
    encode(&labels)
}

/// The key every response of `path` lies under.
pub fn path_prefix(path: &[Vec<u8>]) -> Key {
    encode(path).expect("our URL paths are short")
}

/// Where the `404` of every unknown URL is certified, and its key.
pub fn not_found_key() -> Key {
    let path = tree_path(&HttpCertificationPath::wildcard("/"));
    response_key(&path, &response_hash_of(&mut not_found())).expect("short")
}

type HmacSha256 = Hmac<Sha256>;

/// The entity tag of a memory URL: a MAC of its bytes under the canister's secret.
pub fn memory_etag(secret: &[u8], memory_id: u64, kind: AssetKind, sha256: &[u8; 32]) -> String {
    let mut m = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
    m.update(b"keepsake etag v1\0");
    m.update(&memory_id.to_be_bytes());
    m.update(&[kind_code(kind)]);
    m.update(sha256);
    format!("\"{}\"", hex(&m.finalize().into_bytes()[..16]))
}

pub fn content_etag(sha256: &[u8; 32]) -> String {
    format!("\"{}\"", hex(sha256))
}

impl<M: StableMemory + Clone> State<M> {
    /// The witness for response `key` of `path` (served at `request_path`), with the
    /// absence proofs a wildcard response needs; `None` if it is not in the tree.
    pub(crate) fn http_witness(&self, path: &HttpCertificationPath, key: &Key, request_path: &str) -> Option<HashTree> {
        if !self.st.http.tree.contains(key) {
            return None;
        }
        let responding = tree_path(path);
        let mut absent = Vec::new();
        if responding.last().is_some_and(|l| l == b"<*>") {
            let requested = tree_path(&HttpCertificationPath::exact(request_path.to_string()));
            absent.push(requested.clone());
            absent.extend(more_specific_wildcards_for(&requested, &responding));
        }
        let absent: Vec<Key> = absent.iter().filter_map(|p| encode(p)).collect();
        Some(label("http_expr", self.st.http.tree.witness(std::slice::from_ref(key), &absent)))
    }

    pub(crate) fn asset_source(&self, a: &AssetRecord, etag: impl FnOnce(&[u8; 32]) -> Option<String>) -> Option<Source> {
        let sha256: [u8; 32] = a.sha256.as_slice().try_into().ok()?;
        let etag = etag(&sha256)?;
        if let Some(r) = a.inline {
            return Some(Source { size: u64::from(r.len), sha256, mime: a.mime.clone(), parts: Parts::Inline { offset: r.offset }, etag });
        }
        let blob = self.st.blobs.get(&a.blob_id?)?.0;
        Some(Source {
            size: blob.size,
            sha256,
            mime: a.mime.clone(),
            parts: Parts::Blob { stem: blob.stem(), chunk_size: blob.chunk_size, chunk_count: blob.chunk_count },
            etag,
        })
    }

    /// The source of a memory URL; `None` before the canister has its secret.
    pub(crate) fn memory_source(&self, memory_id: u64, a: &AssetRecord) -> Option<Source> {
        let secret = self.st.http.meta().link_secret?;
        self.asset_source(a, |sha| Some(memory_etag(&secret, memory_id, a.kind, sha)))
    }
}
