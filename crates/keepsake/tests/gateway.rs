//! What a browser gets from `keepsake serve`'s HTTP gateway (`http://<canister>.localhost:<port>`):
//! photos and a multi-chunk file uploaded by the CLI, read back byte-identical in full and in
//! every range form, with 304s, private by default, opened by a link until the capsule's key
//! rotates. Each answer the gateway hands out was verified by DFINITY's gateway logic; the
//! same answers, fetched by this test's own ic-agent, verify independently with
//! `ic-response-verification`, and a tampered one does not.
//!
//! A link's expiry is waited out in real time (a link lives at least a minute; `serve`
//! keeps wall-clock time), in a test of its own that runs beside the other.

mod common;

#[path = "../../../tests/common/verify.rs"]
mod verify;

use std::time::{SystemTime, UNIX_EPOCH};

use backend::api::HttpResponse;
use candid::Principal;
use common::random_file;
use common::serve::Serve;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RANGE};
use reqwest::StatusCode;
use sha2::{Digest, Sha256};

const FILE: usize = 5_000_000;
const CHUNK: usize = 1_800_000;

struct Browser {
    http: reqwest::Client,
    origin: String,
}

impl Browser {
    /// A client that reaches `<canister>.localhost` at the network's port, as browsers do.
    fn new(net: &Serve) -> Browser {
        let url = url::Url::parse(&net.url).unwrap();
        let host = format!("{}.localhost", net.canister);
        let addr = format!("127.0.0.1:{}", url.port().unwrap()).parse().unwrap();
        let http = reqwest::Client::builder().resolve(&host, addr).build().unwrap();
        Browser { http, origin: format!("http://{host}:{}", url.port().unwrap()) }
    }

    async fn get(&self, path: &str, headers: &[(reqwest::header::HeaderName, &str)]) -> (StatusCode, reqwest::header::HeaderMap, Vec<u8>) {
        let url = if path.starts_with("http") { path.to_string() } else { format!("{}{path}", self.origin) };
        let mut req = self.http.get(&url);
        for (k, v) in headers {
            req = req.header(k, *v);
        }
        let r = req.send().await.unwrap();
        let (status, h) = (r.status(), r.headers().clone());
        (status, h, r.bytes().await.unwrap().to_vec())
    }
}

fn header(h: &reqwest::header::HeaderMap, name: reqwest::header::HeaderName) -> &str {
    h.get(&name).unwrap_or_else(|| panic!("no {name} in {h:?}")).to_str().unwrap()
}

/// `http_request` asked by this test's own agent (anonymous), as the gateway asks it.
async fn raw(agent: &ic_agent::Agent, canister: Principal, url: &str, headers: &[(&str, &str)]) -> (backend::api::HttpRequest, HttpResponse) {
    let req = verify::get(url, headers);
    let out = agent.query(&canister, "http_request").with_arg(candid::encode_one(&req).unwrap()).call().await.unwrap();
    (req, candid::decode_one(&out).unwrap())
}

#[tokio::test]
async fn the_gateway_serves_verified_files_ranges_and_private_links() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    keepsake::identity::write_new_ed25519_pem(&dir.join("me.pem")).unwrap();
    std::fs::write(dir.join("photo.jpg"), keepsake::derive::sample_photo(900, 600, 3)).unwrap();
    random_file(&dir.join("clip.bin"), FILE, 17);
    let clip = std::fs::read(dir.join("clip.bin")).unwrap();
    let photo = std::fs::read(dir.join("photo.jpg")).unwrap();

    let net = Serve::start(&dir.join("state"));
    let up = net.ok(dir, &["upload", "--derivatives", "photo.jpg"]);
    let p = up["files"][0]["memory_id"].as_u64().unwrap();
    let cap = up["files"][0]["capsule_id"].as_u64().unwrap().to_string();
    let up = net.ok(dir, &["upload", "clip.bin", "--capsule", &cap]);
    let m = up["files"][0]["memory_id"].as_u64().unwrap();
    let b = Browser::new(&net);
    let original = format!("/m/{m}/original");

    // Private by default: a verified 403, not the bytes. A link opens one asset.
    let (s, _, body) = b.get(&original, &[]).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{}", String::from_utf8_lossy(&body));
    let link = net.ok(dir, &["link", &m.to_string(), "--ttl", "10m"])["link"]["url"].as_str().unwrap().to_string();
    assert!(link.starts_with(&format!("{}{original}?token=", b.origin)), "{link}");
    let (s, h, body) = b.get(&link, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(header(&h, CONTENT_LENGTH), FILE.to_string(), "three certified parts, streamed as one 200");
    assert!(body == clip, "the linked file's bytes");
    // After the capsule's link key rotates, the same link is refused.
    net.ok(dir, &["capsule", "rotate-link-key", &cap]);
    assert_eq!(b.get(&link, &[]).await.0, StatusCode::FORBIDDEN);

    // Public: the photo and its derivatives, in both URL forms.
    net.ok(dir, &["public", &p.to_string(), "on"]);
    net.ok(dir, &["public", &m.to_string(), "on"]);
    let (s, h, body) = b.get(&format!("/m/{p}/original"), &[]).await;
    assert_eq!((s, header(&h, CONTENT_TYPE)), (StatusCode::OK, "image/jpeg"));
    assert!(body == photo);
    let etag = header(&h, ETAG).to_string();
    let (s, h, thumb) = b.get(&format!("/m/{p}/thumbnail"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    let t = image::load_from_memory(&thumb).unwrap();
    assert_eq!((t.width().max(t.height()), header(&h, CONTENT_TYPE)), (512, "image/jpeg"));
    let (s, _, _) = b.get(&format!("/m/{p}/original"), &[(IF_NONE_MATCH, &etag)]).await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    // A memory URL's ETag is a MAC (not the digest): the content URL is by SHA-256.
    let sha: String = Sha256::digest(&photo).iter().map(|b| format!("{b:02x}")).collect();
    assert!(!etag.contains(&sha), "{etag}");
    let (s, _, body) = b.get(&format!("/b/{sha}"), &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body == photo, "the content-addressed URL");
    let by_param = format!("{}/m/{p}/original?canisterId={}", net.url, net.canister);
    let r = reqwest::get(&by_param).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.bytes().await.unwrap() == photo, "the ?canisterId= form");

    // Ranges: each answer starts where it was asked to, within one certified part.
    let part_end = |a: usize| ((a / CHUNK + 1) * CHUNK).min(FILE) - 1;
    for (range, first, last) in [
        ("bytes=0-99", 0, 99),
        ("bytes=2500000-", 2_500_000, part_end(2_500_000)),
        ("bytes=1799990-1800009", 1_799_990, 1_799_999),
        ("bytes=3600000-4999999", 3_600_000, 4_999_999),
        ("bytes=4999999-", 4_999_999, 4_999_999),
        ("bytes=-1000", 4_999_000, 4_999_999),
    ] {
        let (s, h, body) = b.get(&original, &[(RANGE, range)]).await;
        assert_eq!(s, StatusCode::PARTIAL_CONTENT, "{range}");
        assert_eq!(header(&h, CONTENT_RANGE), format!("bytes {first}-{last}/{FILE}"), "{range}");
        assert_eq!(header(&h, CONTENT_LENGTH), (last + 1 - first).to_string(), "{range}");
        assert!(body == clip[first..=last], "{range}: the bytes");
    }
    assert_eq!(b.get(&original, &[(RANGE, "bytes=6000000-")]).await.0, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(b.get("/m/999/original", &[]).await.0, StatusCode::NOT_FOUND);

    // Independently: the canister's own answers (full and 206) verify under the network's
    // root key with ic-response-verification; one changed byte does not.
    let agent = ic_agent::Agent::builder().with_url(&net.url).build().unwrap();
    agent.fetch_root_key().await.unwrap();
    let root_key = agent.read_root_key();
    let cid = Principal::from_text(&net.canister).unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    for (url, headers) in [(format!("/m/{p}/original"), vec![]), (original.clone(), vec![("range", "bytes=2500000-")])] {
        let (req, mut r) = raw(&agent, cid, &url, &headers).await;
        verify::verify(&root_key, cid.as_slice(), &req, &r, now).unwrap_or_else(|e| panic!("{url}: {e}"));
        r.body[10] ^= 1;
        assert!(verify::verify(&root_key, cid.as_slice(), &req, &r, now).is_err(), "{url}: a tampered body must not verify");
    }

    // Closed again: the content-addressed URL does not leak it either.
    net.ok(dir, &["public", &p.to_string(), "off"]);
    assert_eq!(b.get(&format!("/m/{p}/original"), &[]).await.0, StatusCode::FORBIDDEN);
    assert_ne!(b.get(&format!("/b/{sha}"), &[]).await.0, StatusCode::OK);
    net.interrupt();
}

#[tokio::test]
async fn a_link_stops_working_through_the_gateway_when_it_expires() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    keepsake::identity::write_new_ed25519_pem(&dir.join("me.pem")).unwrap();
    random_file(&dir.join("note.bin"), 1000, 5);
    let net = Serve::start(&dir.join("state"));
    let m = net.ok(dir, &["upload", "note.bin"])["files"][0]["memory_id"].as_u64().unwrap();
    let minted = std::time::Instant::now();
    let link = net.ok(dir, &["link", &m.to_string(), "--ttl", "60s"])["link"]["url"].as_str().unwrap().to_string();
    let b = Browser::new(&net);
    let (s, _, body) = b.get(&link, &[]).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body == std::fs::read(dir.join("note.bin")).unwrap());
    tokio::time::sleep(std::time::Duration::from_secs(62).saturating_sub(minted.elapsed())).await;
    assert_eq!(b.get(&link, &[]).await.0, StatusCode::FORBIDDEN, "expired");
    net.interrupt();
}
