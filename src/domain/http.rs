//! `http_request`: a memory's assets at `/m/<memory>/<kind>` and public bytes at
//! `/b/<sha256>`, with ranges, ETags and certification (see [`super::http_cert`]).
//!
//! Ranges: `bytes=a-b`, `bytes=a-` and `bytes=-n` answer `206` with the certified part
//! (an upload chunk) that holds the first requested byte, and `Content-Range` says
//! exactly which bytes came. Only whole parts can be certified in advance, so a range
//! that starts inside a part gets that whole part: a gateway verifies it and then cuts
//! out the bytes the client asked for; a client that wants more asks again from the end
//! of what came. Without a `Range` header a one-part asset answers `200`; a larger one
//! answers `206` with its first part, which DFINITY's HTTP gateway turns into a streamed
//! `200` by fetching and verifying the following parts. A range starting past the end
//! is `416`; a malformed or multi-range header is ignored (RFC 9110 allows it).

use ic_http_certification::utils::add_v2_certificate_header;
use ic_http_certification::{HttpCertificationPath, HttpResponse as CertResponse, StatusCode};

use super::http_cert::{not_found, response_hash_of, response_key, tree_path};
use ic_stable_structures::Memory as StableMemory;
use serde_bytes::ByteBuf;

use super::http_cert::{describe, kind_from_label, Parts, Reply, Source, UrlForm, BODY_403, BODY_404, BODY_416};
use super::{Ctx, State};
use crate::api::{AssetKind, HttpRequest, HttpResponse, Role};

/// What a URL names.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Memory { id: u64, kind: AssetKind },
    Content { sha256: [u8; 32] },
    Unknown,
}

fn route(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["m", id, kind] => {
            match (id.parse::<u64>(), kind_from_label(kind)) {
                // Only the canonical spelling: "/m/05/..." would be a different URL.
                (Ok(n), Some(kind)) if n.to_string() == *id => Route::Memory { id: n, kind },
                _ => Route::Unknown,
            }
        }
        ["b", digest] => match parse_digest(digest) {
            Some(sha256) => Route::Content { sha256 },
            None => Route::Unknown,
        },
        _ => Route::Unknown,
    }
}

fn parse_digest(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A parsed `Range` header: the first byte asked for, or unsatisfiable.
#[derive(Debug, PartialEq, Eq)]
enum RangeStart {
    /// No usable range: serve as if none was sent.
    None,
    From(u64),
    Unsatisfiable,
}

fn range_start(header: Option<&str>, size: u64) -> RangeStart {
    let Some(h) = header else { return RangeStart::None };
    let Some(spec) = h.trim().strip_prefix("bytes=") else { return RangeStart::None };
    if spec.contains(',') {
        return RangeStart::None;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return RangeStart::None };
    let (a, b) = (a.trim(), b.trim());
    if a.is_empty() {
        // Suffix: the last n bytes.
        return match b.parse::<u64>() {
            Ok(0) => RangeStart::Unsatisfiable,
            Ok(n) => RangeStart::From(size.saturating_sub(n)),
            Err(_) => RangeStart::None,
        };
    }
    let Ok(start) = a.parse::<u64>() else { return RangeStart::None };
    if !b.is_empty() && b.parse::<u64>().map_or(true, |end| end < start) {
        return RangeStart::None;
    }
    if start >= size {
        RangeStart::Unsatisfiable
    } else {
        RangeStart::From(start)
    }
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// `If-None-Match` lists the entity tag (or `*`).
fn etag_matches(header: Option<&str>, etag: &str) -> bool {
    header.is_some_and(|h| h.split(',').map(str::trim).any(|t| t == "*" || t.trim_start_matches("W/") == etag))
}

fn query_param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
    let (_, q) = url.split_once('?')?;
    q.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

fn plain(status: u16, body: &[u8]) -> HttpResponse {
    HttpResponse {
        status_code: status,
        headers: vec![
            ("content-type".into(), "text/plain; charset=utf-8".into()),
            ("content-length".into(), body.len().to_string()),
            ("cache-control".into(), "no-store".into()),
        ]
        .into_iter()
        .chain((status == 503).then(|| ("retry-after".into(), "2".into())))
        .collect(),
        body: ByteBuf::from(body.to_vec()),
        upgrade: None,
    }
}

const BODY_400: &[u8] = b"400 Bad Request: not a valid URL.\n";
const BODY_503: &[u8] = b"503 Service Unavailable: this content is not certified yet (the canister is certifying it); retry in a few seconds.\n";

impl<M: StableMemory + Clone> State<M> {
    /// Answers an HTTP request. `data_certificate` is what `ic0.data_certificate`
    /// returned (a query has one); without it the response is not certified.
    pub fn http_request(&self, ctx: &Ctx, req: &HttpRequest, data_certificate: Option<&[u8]>) -> HttpResponse {
        let path = match ic_http_certification::HttpRequest::get(req.url.clone()).build().get_path() {
            Ok(p) if p.starts_with('/') => p,
            // No gateway sends it (nor could verify an answer for it): say what is wrong.
            _ => return plain(400, BODY_400),
        };
        let found = match route(&path) {
            Route::Memory { id, kind } => self.memory_asset(ctx, req, id, kind).map(|r| (r, UrlForm::Memory)),
            Route::Content { sha256 } => self.public_content(&sha256).map(|s| {
                let access = if self.content_certified(&sha256) { Ok(s) } else { Err(PendingOrForbidden::Pending) };
                (access, UrlForm::Content)
            }),
            Route::Unknown => None,
        };
        let Some((access, form)) = found else {
            return self.certified(&path, HttpCertificationPath::wildcard("/"), &mut not_found(), BODY_404.to_vec(), data_certificate);
        };
        let src = match access {
            Ok(src) => src,
            Err(PendingOrForbidden::Pending) => return plain(503, BODY_503),
            Err(PendingOrForbidden::Forbidden(src)) => {
                return self.reply(&path, &src, form, Reply::Forbidden, BODY_403.to_vec(), data_certificate);
            }
        };
        if etag_matches(header(req, "if-none-match"), src.etag()) {
            return self.reply(&path, &src, form, Reply::NotModified, Vec::new(), data_certificate);
        }
        let (reply, body) = match range_start(header(req, "range"), src.size) {
            RangeStart::Unsatisfiable => (Reply::Unsatisfiable, BODY_416.to_vec()),
            RangeStart::None if src.part_count() == 1 => (Reply::Full, self.read_part(&src, 0)),
            RangeStart::None => (Reply::Part(0), self.read_part(&src, 0)),
            RangeStart::From(start) => {
                let i = src.part_of(start);
                (Reply::Part(i), self.read_part(&src, i))
            }
        };
        self.reply(&path, &src, form, reply, body, data_certificate)
    }

    /// The asset at `/m/<id>/<kind>` and whether the request may see it.
    fn memory_asset(
        &self,
        ctx: &Ctx,
        req: &HttpRequest,
        id: u64,
        kind: AssetKind,
    ) -> Option<Result<Source, PendingOrForbidden>> {
        let rec = self.st.memories.get(&id)?.0;
        let asset = rec.assets.iter().find(|a| a.kind == kind)?;
        if !self.memory_certified(id) {
            return Some(Err(PendingOrForbidden::Pending));
        }
        let Some(src) = self.memory_source(id, asset) else { return Some(Err(PendingOrForbidden::Pending)) };
        let member = self.require_role(ctx, rec.capsule_id, Role::Reader).is_ok();
        let allowed = member
            || self.st.http.public.contains_key(&id)
            || query_param(&req.url, "token").is_some_and(|t| self.link_token_valid(rec.capsule_id, id, kind, t, ctx.now));
        Some(if allowed { Ok(src) } else { Err(PendingOrForbidden::Forbidden(src)) })
    }

    fn read_part(&self, src: &Source, i: u32) -> Vec<u8> {
        let (start, end) = src.part_range(i);
        let mut out = vec![0u8; (end - start) as usize];
        match src.parts {
            Parts::Inline { offset } => self.st.arena.read(offset, &mut out),
            Parts::Blob { stem, .. } => {
                let c = self
                    .st
                    .chunks
                    .get(&crate::storage::ChunkKey { stem, idx: i })
                    .expect("a committed blob has all its chunks");
                self.st.arena.read(c.offset, &mut out);
            }
        }
        out
    }

    fn reply(
        &self,
        path: &str,
        src: &Source,
        form: UrlForm,
        reply: Reply,
        body: Vec<u8>,
        cert: Option<&[u8]>,
    ) -> HttpResponse {
        match describe(self, src, form, reply) {
            Some(mut c) => self.certified(path, HttpCertificationPath::exact(path.to_string()), &mut c, body, cert),
            None => plain(503, BODY_503),
        }
    }

    /// The response of `c` with `body` and, given a data certificate, the
    /// `IC-Certificate` header proving it.
    fn certified(
        &self,
        request_path: &str,
        cert_path: HttpCertificationPath<'static>,
        c: &mut super::http_cert::Certified,
        body: Vec<u8>,
        data_certificate: Option<&[u8]>,
    ) -> HttpResponse {
        let hash = response_hash_of(c);
        let Some(key) = response_key(&tree_path(&cert_path), &hash) else { return plain(503, BODY_503) };
        let mut headers = c.headers.clone();
        if let Some(data_certificate) = data_certificate {
            match self.http_witness(&cert_path, &key, request_path) {
                Some(witness) => {
                    let mut r = CertResponse::builder()
                        .with_status_code(StatusCode::from_u16(c.status).expect("valid status"))
                        .build();
                    add_v2_certificate_header(data_certificate, &mut r, &witness, &cert_path.to_expr_path());
                    headers.extend(r.headers().iter().cloned());
                }
                None => return plain(503, BODY_503),
            }
        } else if !self.st.http.tree.contains(&key) {
            return plain(503, BODY_503);
        }
        HttpResponse { status_code: c.status, headers, body: ByteBuf::from(body), upgrade: None }
    }
}

enum PendingOrForbidden {
    Pending,
    Forbidden(Source),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_only_canonical_urls() {
        assert_eq!(route("/m/5/original"), Route::Memory { id: 5, kind: AssetKind::Original });
        assert_eq!(route("/m/05/original"), Route::Unknown);
        assert_eq!(route("/m/5/Original"), Route::Unknown);
        assert_eq!(route("/m/5/original/x"), Route::Unknown);
        assert_eq!(route(&format!("/b/{}", "ab".repeat(32))), Route::Content { sha256: [0xab; 32] });
        assert_eq!(route(&format!("/b/{}", "AB".repeat(32))), Route::Unknown);
        assert_eq!(route("/b/abc"), Route::Unknown);
        assert_eq!(route("/"), Route::Unknown);
    }

    #[test]
    fn range_forms() {
        use RangeStart::*;
        assert_eq!(range_start(Option::None, 10), None);
        assert_eq!(range_start(Some("bytes=0-"), 10), From(0));
        assert_eq!(range_start(Some("bytes=3-5"), 10), From(3));
        assert_eq!(range_start(Some("bytes=-4"), 10), From(6));
        assert_eq!(range_start(Some("bytes=-40"), 10), From(0));
        assert_eq!(range_start(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(range_start(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(range_start(Some("bytes=5-3"), 10), None);
        assert_eq!(range_start(Some("bytes=0-1,4-5"), 10), None);
        assert_eq!(range_start(Some("items=0-1"), 10), None);
        assert_eq!(range_start(Some("bytes=x-"), 10), None);
    }

    #[test]
    fn etags_and_query() {
        assert!(etag_matches(Some("\"a\", \"b\""), "\"b\""));
        assert!(etag_matches(Some("W/\"b\""), "\"b\""));
        assert!(etag_matches(Some("*"), "\"b\""));
        assert!(!etag_matches(Some("\"c\""), "\"b\""));
        assert_eq!(query_param("/m/1/original?a=1&token=xyz", "token"), Some("xyz"));
        assert_eq!(query_param("/m/1/original?tokens=1", "token"), Option::None);
    }
}
