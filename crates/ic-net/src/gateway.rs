//! The HTTP gateway of the local network: a browser's `GET http://<canister-id>.localhost:<port>/…`
//! (or `…/<path>?canisterId=<id>`) becomes a query of the canister's `http_request`, made
//! with ic-agent over this network's own interface, and the answer is verified by DFINITY's
//! gateway logic (`ic-http-gateway-protocol`: response verification v2 against the
//! network's root key) before it is handed out. What does not verify is a 500, never the
//! canister's bytes. A non-range GET of a large asset that the canister answers with its
//! first certified 206 part is streamed as a 200, every later part verified as it comes.
//!
//! One step is ours: a `Range: bytes=a-[b]` that the canister answers with the whole
//! certified part holding `a` (parts are certified whole) is cut, after verification, to
//! start at `a` (and end at `b`), so clients that insist on the exact range (resumed
//! downloads) get it. Every request is logged to stderr as one line:
//! `gateway <status> <verified|unverified|refused> <METHOD> <canister> <path> range=<…> bytes=<n|stream>`.

use bytes::Bytes;
use candid::Principal;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Either, Full};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_RANGE, HOST, RANGE, REFERER};
use hyper::{Request, Response, StatusCode, Uri};
use ic_agent::Agent;
use ic_http_gateway_protocol::{HttpGatewayClient, HttpGatewayRequestArgs};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// A response body: whole, or streamed part by part.
pub type AnyBody = UnsyncBoxBody<Bytes, BoxError>;

pub fn whole(b: impl Into<Bytes>) -> AnyBody {
    Full::new(b.into()).map_err(|e| match e {}).boxed_unsync()
}

/// The gateway: an ic-agent client of this network that trusts only its root key.
pub struct Gateway {
    client: HttpGatewayClient,
}

impl Gateway {
    /// A gateway calling the network at `url` (this network's own address), whose
    /// certificates must verify under `root_key` (DER).
    pub fn new(url: &str, root_key: Vec<u8>) -> anyhow::Result<Gateway> {
        let agent = Agent::builder().with_url(url).build()?;
        agent.set_root_key(root_key);
        let client = HttpGatewayClient::builder().with_agent(agent).build()?;
        Ok(Gateway { client })
    }

    /// Answers one browser request for `canister` (`body` already read).
    pub async fn handle(&self, canister: Principal, req: Request<Bytes>) -> Response<AnyBody> {
        let method = req.method().clone();
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str()).to_string();
        let wanted = req.headers().get(RANGE).and_then(|v| v.to_str().ok()).map(str::to_string);
        let answer = self.client.request(HttpGatewayRequestArgs { canister_request: req, canister_id: canister }).send().await;
        let meta = answer.metadata;
        let verdict = match (&meta.internal_error, meta.response_verification_version) {
            (Some(_), _) => "refused",
            (None, Some(_)) => "verified",
            (None, None) => "unverified",
        };
        let (mut parts, body) = answer.canister_response.into_parts();
        let (body, len) = match body {
            Either::Left(stream) => (stream.map_err(BoxError::from).boxed_unsync(), "stream".to_string()),
            Either::Right(full) => {
                let mut bytes = full.collect().await.map(|c| c.to_bytes()).unwrap_or_default();
                if parts.status == StatusCode::PARTIAL_CONTENT && meta.internal_error.is_none() {
                    if let Some(w) = &wanted {
                        bytes = narrow(w, &mut parts.headers, bytes);
                    }
                }
                let n = bytes.len();
                (whole(bytes), n.to_string())
            }
        };
        if let Some(e) = &meta.internal_error {
            eprintln!("gateway: {canister} {path}: {e}");
        }
        eprintln!(
            "gateway {} {verdict} {method} {canister} {path} range={} bytes={len}",
            parts.status.as_u16(),
            wanted.as_deref().unwrap_or("-")
        );
        Response::from_parts(parts, body)
    }
}

/// The canister a browser request is for: the first label of a `<id>.localhost` host, else
/// a `canisterId` query parameter, else the page's (`Referer`), so that relative URLs in a
/// page opened with `?canisterId=` reach the same canister.
pub fn canister_of(req: &Request<hyper::body::Incoming>) -> Option<Principal> {
    let header = |name| req.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok());
    let from_host = |host: &str| {
        let host = host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
        let (label, rest) = host.split_once('.')?;
        (rest == "localhost" || rest.ends_with(".localhost")).then(|| Principal::from_text(label).ok()).flatten()
    };
    let from_query = |uri: &Uri| {
        uri.query()?.split('&').find_map(|kv| kv.strip_prefix("canisterId=")).and_then(|id| Principal::from_text(id).ok())
    };
    let host = header(HOST).map(str::to_string).or_else(|| req.uri().host().map(str::to_string));
    host.as_deref()
        .and_then(from_host)
        .or_else(|| from_query(req.uri()))
        .or_else(|| header(REFERER).and_then(|r| r.parse::<Uri>().ok()).and_then(|r| from_query(&r)))
}

/// Cuts a verified 206 part to the single range `wanted` asked for (`bytes=a-`,
/// `bytes=a-b` or `bytes=-n`), when the part holds its start; anything else is left as
/// the canister sent it.
fn narrow(wanted: &str, headers: &mut hyper::HeaderMap, body: Bytes) -> Bytes {
    let Some((s, e, total)) = headers.get(CONTENT_RANGE).and_then(|v| v.to_str().ok()).and_then(content_range) else {
        return body;
    };
    let Some((a, b)) = single_range(wanted, total) else { return body };
    if e + 1 - s != body.len() as u64 || a < s || a > e {
        return body;
    }
    let end = b.map_or(e, |b| b.clamp(a, e));
    if a == s && end == e {
        return body;
    }
    let cut = body.slice((a - s) as usize..=(end - s) as usize);
    headers.insert(CONTENT_RANGE, HeaderValue::from_str(&format!("bytes {a}-{end}/{total}")).expect("ascii"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(cut.len()));
    cut
}

/// `bytes=a-`, `bytes=a-b` or `bytes=-n` of a `total`-byte file (one range) as its first
/// byte and, if given, its last.
fn single_range(h: &str, total: u64) -> Option<(u64, Option<u64>)> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    if a.trim().is_empty() {
        let n: u64 = b.trim().parse().ok()?;
        return Some((total.saturating_sub(n), None));
    }
    let a = a.trim().parse().ok()?;
    let b = b.trim();
    let b = if b.is_empty() { None } else { Some(b.parse().ok()?) };
    Some((a, b))
}

/// `bytes s-e/total`.
fn content_range(h: &str) -> Option<(u64, u64, u64)> {
    let (range, total) = h.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (s, e) = range.split_once('-')?;
    let (s, e, total) = (s.parse().ok()?, e.parse().ok()?, total.parse().ok()?);
    (s <= e && e < total).then_some((s, e, total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(wanted: &str, content_range: &str, body: &[u8]) -> (String, Vec<u8>) {
        let mut h = hyper::HeaderMap::new();
        h.insert(CONTENT_RANGE, HeaderValue::from_str(content_range).unwrap());
        let out = narrow(wanted, &mut h, Bytes::copy_from_slice(body));
        (h[CONTENT_RANGE].to_str().unwrap().to_string(), out.to_vec())
    }

    #[test]
    fn a_part_is_cut_to_the_range_asked_for() {
        let part: Vec<u8> = (10..20).collect();
        assert_eq!(cut("bytes=13-", "bytes 10-19/100", &part), ("bytes 13-19/100".into(), (13..20).collect()));
        assert_eq!(cut("bytes=13-15", "bytes 10-19/100", &part), ("bytes 13-15/100".into(), vec![13, 14, 15]));
        assert_eq!(cut("bytes=10-40", "bytes 10-19/100", &part), ("bytes 10-19/100".into(), part.clone()));
        // not in the part, several ranges, suffix ranges, a lying Content-Range: as sent
        assert_eq!(cut("bytes=25-", "bytes 10-19/100", &part).1, part);
        assert_eq!(cut("bytes=12-13,15-16", "bytes 10-19/100", &part).1, part);
        assert_eq!(cut("bytes=-5", "bytes 90-99/100", &(90..100).collect::<Vec<u8>>()), ("bytes 95-99/100".into(), (95..100).collect()));
        assert_eq!(cut("bytes=-50", "bytes 90-99/100", &(90..100).collect::<Vec<u8>>()).1, (90..100).collect::<Vec<u8>>());
        assert_eq!(cut("bytes=13-", "bytes 10-29/100", &part).1, part);
    }
}
