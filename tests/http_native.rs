//! `http_request` over the real domain logic, every response checked by DFINITY's
//! `ic-response-verification` against a certificate signed by the embedded host's
//! subnet key (the same code that certifies queries in the Wasm host).

mod common;
#[path = "common/verify.rs"]
mod verify;

use backend::api::*;
use common::*;
use ic_host::certify::SubnetKey;
use serde_bytes::ByteBuf;

const CANISTER: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1];
const SMALL_CHUNK: u32 = 65_536;

struct Http {
    w: World,
    key: SubnetKey,
    owner: candid::Principal,
    cap: u64,
    memory: u64,
    video: Vec<u8>,
    thumb: Vec<u8>,
    placeholder: Vec<u8>,
}

struct Got {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    verified: std::result::Result<(), String>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn ok(&self) -> &Self {
        assert!(self.verified.is_ok(), "status {}: {:?}", self.status, self.verified);
        self
    }
}

fn upload_with_chunk(w: &mut World, who: candid::Principal, cap: u64, data: &[u8], chunk: u32, mime: &str) -> BlobMeta {
    let c = w.ctx(who);
    let mut args = begin_args(cap, data.len() as u64, None);
    args.chunk_size = Some(chunk);
    args.mime = mime.into();
    let s = w.state.uploads_begin(&c, args).unwrap();
    for i in 0..s.chunk_count {
        w.put(who, &s, i, data).unwrap();
    }
    w.finish(who, &s, &sha(data), data.len()).unwrap()
}

fn asset(kind: AssetKind, source: AssetSource, mime: &str) -> AssetInput {
    AssetInput { kind, source, mime: mime.into(), width: None, height: None, duration_ms: None }
}

impl Http {
    /// A capsule with one memory: a 5-part video (64 KiB chunks), a one-part
    /// thumbnail and an inline placeholder.
    fn new() -> Self {
        let mut w = World::new();
        // What the canister fetches from raw_rand right after install: memory URLs'
        // ETags are MACs under it.
        w.state.set_link_secret(&[42; 32]);
        let owner = user(1);
        let cap = w.capsule(owner);
        let video = file(300_000, 7);
        let thumb = file(20_000, 8);
        let placeholder = file(300, 9);
        let v = upload_with_chunk(&mut w, owner, cap, &video, SMALL_CHUNK, "video/mp4");
        let t = upload_with_chunk(&mut w, owner, cap, &thumb, SMALL_CHUNK, "image/jpeg");
        let c = w.ctx(owner);
        let m = w
            .state
            .memories_create(
                &c,
                MemoryCreateArgs {
                    capsule_id: cap,
                    meta: MemoryMeta { title: "t".into(), kind: MemoryKind::Video, description: String::new(), taken_at_ns: None, tags: vec![] },
                    assets: vec![
                        asset(AssetKind::Original, AssetSource::Blob(v.id), "video/mp4"),
                        asset(AssetKind::Thumbnail, AssetSource::Blob(t.id), "image/jpeg"),
                        asset(AssetKind::Placeholder, AssetSource::Inline(ByteBuf::from(placeholder.clone())), "image/jpeg"),
                    ],
                    idempotency_key: None,
                },
            )
            .unwrap();
        let mut h = Http { w, key: SubnetKey::generate(), owner, cap, memory: m.id, video, thumb, placeholder };
        h.certify_all();
        h
    }

    fn certify_all(&mut self) {
        while self.w.state.http_rebuild_step().more {}
        self.w.state.http_take_dirty();
    }

    fn get_as(&self, who: candid::Principal, url: &str, headers: &[(&str, &str)]) -> Got {
        let req = verify::get(url, headers);
        let cert = self.key.data_certificate(&candid::Principal::from_slice(&CANISTER), &self.w.state.http_root_hash(), self.w.now);
        let r = self.w.state.http_request(&self.w.ctx(who), &req, Some(&cert));
        let verified = verify(&self.key, &req, &r, self.w.now);
        Got { status: r.status_code, headers: r.headers, body: r.body.into_vec(), verified }
    }

    fn get(&self, url: &str, headers: &[(&str, &str)]) -> Got {
        self.get_as(candid::Principal::anonymous(), url, headers)
    }

    fn set_public(&mut self, public: bool) {
        let c = self.w.ctx(self.owner);
        self.w.state.memories_set_public(&c, self.memory, public).unwrap();
        self.w.state.http_take_dirty();
    }

    fn url(&self, kind: &str) -> String {
        format!("/m/{}/{kind}", self.memory)
    }
}

fn verify(key: &SubnetKey, req: &HttpRequest, r: &HttpResponse, now: u64) -> std::result::Result<(), String> {
    verify::verify(&key.public_key_der(), &CANISTER, req, r, now)
}

fn content_range(g: &Got) -> (u64, u64, u64) {
    let v = g.header("content-range").expect("content-range");
    let (range, total) = v.strip_prefix("bytes ").unwrap().split_once('/').unwrap();
    let (a, b) = range.split_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap(), total.parse().unwrap())
}

#[test]
fn private_by_default_public_toggle_and_content_urls() {
    let mut h = Http::new();
    let sha_url = format!("/b/{}", hex(&sha(&h.thumb)));
    for kind in ["original", "thumbnail", "placeholder"] {
        let g = h.get(&h.url(kind), &[]);
        assert_eq!(g.ok().status, 403, "{kind} is private");
        assert!(String::from_utf8_lossy(&g.body).contains("private"));
    }
    assert_eq!(h.get(&sha_url, &[]).ok().status, 404, "private bytes never leak through /b");
    // A member reading with their own identity is let in.
    assert_eq!(h.get_as(h.owner, &h.url("thumbnail"), &[]).ok().status, 200);

    h.set_public(true);
    let g = h.get(&h.url("thumbnail"), &[]);
    assert_eq!((g.ok().status, g.body == h.thumb), (200, true));
    assert_eq!(g.header("content-type"), Some("image/jpeg"));
    assert_eq!(g.header("content-length"), Some("20000"));
    assert_eq!(g.header("accept-ranges"), Some("bytes"));
    assert_eq!(g.header("cache-control"), Some("no-cache"));
    // A memory URL's ETag is a MAC (never the digest anyone holding the file computes);
    // the content URL, public by construction, keeps the digest.
    let etag = g.header("etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() == 34 && !etag.contains(&hex(&sha(&h.thumb))), "{etag}");
    let b = h.get(&sha_url, &[]);
    assert_eq!((b.ok().status, b.body == h.thumb), (200, true));
    assert_eq!(b.header("etag").unwrap(), format!("\"{}\"", hex(&sha(&h.thumb))));
    assert_eq!(b.header("cache-control"), Some("public, max-age=31536000, immutable"));
    let p = h.get(&h.url("placeholder"), &[]);
    assert_eq!((p.ok().status, p.body == h.placeholder), (200, true));

    h.set_public(false);
    assert_eq!(h.get(&h.url("thumbnail"), &[]).ok().status, 403);
    assert_eq!(h.get(&sha_url, &[]).ok().status, 404);
}

#[test]
fn every_range_form_is_certified_and_byte_identical() {
    let mut h = Http::new();
    h.set_public(true);
    let url = h.url("original");
    let size = h.video.len() as u64;
    let cs = u64::from(SMALL_CHUNK);
    // (Range header, first byte asked for)
    let cases: Vec<(Option<String>, u64)> = vec![
        (None, 0),
        (Some("bytes=0-99".into()), 0),
        (Some("bytes=150000-150100".into()), 150_000),
        (Some("bytes=200000-".into()), 200_000),
        (Some("bytes=-1000".into()), size - 1000),
        (Some(format!("bytes={}-{}", cs - 10, cs + 10)), cs - 10),
        (Some(format!("bytes={}-", size - 1)), size - 1),
    ];
    for (range, first) in cases {
        let hdrs: Vec<(&str, &str)> = range.as_deref().map(|r| vec![("Range", r)]).unwrap_or_default();
        let g = h.get(&url, &hdrs);
        assert_eq!(g.ok().status, 206, "{range:?}");
        let (a, b, total) = content_range(&g);
        assert_eq!(total, size);
        assert!(a <= first && first <= b, "{range:?}: part {a}-{b} must hold byte {first}");
        assert_eq!(a % cs, 0, "parts are the upload's chunks");
        assert_eq!(g.body, h.video[a as usize..=b as usize], "{range:?}");
        assert_eq!(g.header("content-length").unwrap(), (b - a + 1).to_string());
    }
    // Past the end: 416, certified, with the size.
    for r in [format!("bytes={size}-"), "bytes=-0".to_string()] {
        let g = h.get(&url, &[("Range", &r)]);
        assert_eq!(g.ok().status, 416, "{r}");
        assert_eq!(g.header("content-range").unwrap(), format!("bytes */{size}"));
    }
    // The whole file in parts, as a gateway streams it: ask from the end of each part.
    let mut got = Vec::new();
    while (got.len() as u64) < size {
        let r = format!("bytes={}-", got.len());
        let g = h.get(&url, &[("Range", &r)]);
        let (a, b, _) = content_range(g.ok());
        got.extend_from_slice(&g.body[(got.len() as u64 - a) as usize..]);
        assert_eq!(got.len() as u64, b + 1);
    }
    assert_eq!(got, h.video);
    // A one-part asset answers a range with 206 over its whole body.
    let g = h.get(&h.url("thumbnail"), &[("Range", "bytes=10-20")]);
    assert_eq!((g.ok().status, content_range(&g), g.body == h.thumb), (206, (0, 19_999, 20_000), true));
    // Malformed and multi-range headers are ignored.
    assert_eq!(h.get(&h.url("thumbnail"), &[("Range", "bytes=0-1,5-6")]).ok().status, 200);
}

#[test]
fn etag_gives_304_but_never_to_a_stranger() {
    let mut h = Http::new();
    // A member learns the ETag from a 200; a stranger only gets the 403.
    let etag = h.get_as(h.owner, &h.url("thumbnail"), &[]).header("etag").unwrap().to_string();
    assert_eq!(h.get(&h.url("thumbnail"), &[("If-None-Match", &etag)]).ok().status, 403);
    h.set_public(true);
    let g = h.get(&h.url("thumbnail"), &[("If-None-Match", &etag)]);
    assert_eq!((g.ok().status, g.body.len()), (304, 0));
    assert_eq!(h.get(&h.url("thumbnail"), &[("If-None-Match", "\"other\"")]).ok().status, 200);
}

#[test]
fn unknown_urls_get_a_certified_404() {
    let h = Http::new();
    let m = h.memory;
    for url in [
        "/m/999/original".to_string(),
        format!("/m/{m}/poster"),
        format!("/m/{m}/nonsense"),
        format!("/b/{}", "ab".repeat(32)),
        "/b/xyz".into(),
        "/".into(),
        "/index.html".into(),
        format!("/m/{m}/original/extra"),
    ] {
        let g = h.get(&url, &[]);
        assert_eq!(g.ok().status, 404, "{url}");
    }
    // Not a URL a gateway could send: a plain 400 that says so (it used to be the 503
    // of "certifying after an upgrade", which asks clients to retry forever).
    for url in ["", "aaaa", "m/1/original", "\u{1F600}", "/m/1/original?token=\0"] {
        let g = h.get(url, &[]);
        assert_eq!(g.status, 400, "{url:?}");
        assert!(String::from_utf8_lossy(&g.body).contains("not a valid URL"), "{url:?}");
    }
}

#[test]
fn expiring_links_forgery_and_revocation() {
    // No secret yet (raw_rand has not answered): a clear refusal, no trap.
    let mut fresh = World::new();
    let someone = user(3);
    let cap = fresh.capsule(someone);
    let c = fresh.ctx(someone);
    let inline = asset(AssetKind::Thumbnail, AssetSource::Inline(ByteBuf::from(vec![1, 2, 3])), "image/jpeg");
    let meta = MemoryMeta { title: "t".into(), kind: MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec![] };
    let m = fresh.state.memories_create(&c, MemoryCreateArgs { capsule_id: cap, meta, assets: vec![inline], idempotency_key: None }).unwrap();
    assert!(matches!(fresh.state.links_create(&c, m.id, AssetKind::Thumbnail, 600), Err(Error::InProgress(_))));
    let mut h = Http::new();
    let c = h.w.ctx(h.owner);
    // Callers outside the capsule get the refusal of a memory that does not exist.
    let missing = h.w.state.links_create(&c, 999, AssetKind::Thumbnail, 600).unwrap_err();
    assert_eq!(missing, Error::NotFound("memory 999 does not exist".into()));
    let hidden = Error::NotFound(format!("memory {} does not exist", h.memory));
    for outsider in [candid::Principal::anonymous(), user(9)] {
        let o = h.w.ctx(outsider);
        assert_eq!(h.w.state.links_create(&o, h.memory, AssetKind::Thumbnail, 600), Err(hidden.clone()));
    }
    assert_eq!(h.w.state.memories_set_public(&h.w.ctx(user(9)), h.memory, true), Err(hidden.clone()));
    // Anonymous callers never write: that refusal does not depend on the memory.
    let anon = h.w.ctx(candid::Principal::anonymous());
    assert_eq!(h.w.state.memories_set_public(&anon, h.memory, true), h.w.state.memories_set_public(&anon, 999, true));
    assert!(matches!(h.w.state.links_create(&c, h.memory, AssetKind::Thumbnail, 5), Err(Error::InvalidArgument(_))));
    assert!(matches!(h.w.state.links_create(&c, h.memory, AssetKind::Poster, 600), Err(Error::NotFound(_))));
    // A reader may mint too, once they accepted the invitation.
    let reader = user(3);
    h.w.state.capsules_set_member(&c, h.cap, reader, Role::Reader).unwrap();
    assert_eq!(h.w.state.links_create(&h.w.ctx(reader), h.memory, AssetKind::Thumbnail, 600), Err(hidden.clone()));
    h.w.state.capsules_accept(&h.w.ctx(reader), h.cap).unwrap();
    let link = h.w.state.links_create(&h.w.ctx(reader), h.memory, AssetKind::Thumbnail, 600).unwrap();
    let g = h.get(&link.path, &[]);
    assert_eq!((g.ok().status, g.body == h.thumb), (200, true));

    // Forged: another MAC, another asset, another expiry.
    let (exp, mac) = link.token.split_once('.').unwrap();
    let mut bad = mac.as_bytes().to_vec();
    bad[0] = if bad[0] == b'A' { b'B' } else { b'A' };
    let forged = format!("{}?token={exp}.{}", h.url("thumbnail"), String::from_utf8(bad).unwrap());
    assert_eq!(h.get(&forged, &[]).ok().status, 403);
    assert_eq!(h.get(&format!("{}?token={}", h.url("original"), link.token), &[]).ok().status, 403);
    let later = format!("{}?token={}.{mac}", h.url("thumbnail"), exp.parse::<u64>().unwrap() + 3600);
    assert_eq!(h.get(&later, &[]).ok().status, 403);

    // Expired.
    h.w.now += 601 * 1_000_000_000;
    assert_eq!(h.get(&link.path, &[]).ok().status, 403);

    // Revoked by rotating the capsule's key; a fresh link works again.
    let link = h.w.state.links_create(&h.w.ctx(reader), h.memory, AssetKind::Thumbnail, 600).unwrap();
    assert_eq!(h.get(&link.path, &[]).ok().status, 200);
    assert!(matches!(h.w.state.capsules_rotate_link_key(&h.w.ctx(reader), h.cap), Err(Error::Unauthorized(_))));
    let c = h.w.ctx(h.owner);
    assert_eq!(h.w.state.capsules_rotate_link_key(&c, h.cap).unwrap(), 1);
    assert_eq!(h.get(&link.path, &[]).ok().status, 403);
    let link = h.w.state.links_create(&c, h.memory, AssetKind::Thumbnail, 600).unwrap();
    assert_eq!(h.get(&link.path, &[]).ok().status, 200);

    // A member reads over HTTP as a member; removed, on the next request they do not,
    // and they mint no more links.
    let req = HttpRequest { method: "GET".into(), url: h.url("thumbnail"), headers: vec![], body: ByteBuf::new(), certificate_version: Some(2) };
    assert_eq!(h.w.state.http_request(&h.w.ctx(reader), &req, None).status_code, 200);
    h.w.state.capsules_remove_member(&c, h.cap, reader).unwrap();
    assert_eq!(h.w.state.http_request(&h.w.ctx(reader), &req, None).status_code, 403);
    assert_eq!(h.w.state.links_create(&h.w.ctx(reader), h.memory, AssetKind::Thumbnail, 600), Err(hidden));
}

#[test]
fn tampered_responses_fail_verification() {
    let mut h = Http::new();
    h.set_public(true);
    let url = h.url("original");
    let req = HttpRequest { method: "GET".into(), url: url.clone(), headers: vec![("Range".into(), "bytes=70000-".into())], body: ByteBuf::new(), certificate_version: Some(2) };
    let cert = h.key.data_certificate(&candid::Principal::from_slice(&CANISTER), &h.w.state.http_root_hash(), h.w.now);
    let good = h.w.state.http_request(&h.w.ctx(candid::Principal::anonymous()), &req, Some(&cert));
    verify(&h.key, &req, &good, h.w.now).expect("the untouched response verifies");

    let mut body = good.clone();
    body.body[100] ^= 1;
    assert!(verify(&h.key, &req, &body, h.w.now).is_err(), "a flipped body byte");
    let mut hdr = good.clone();
    for (k, v) in hdr.headers.iter_mut() {
        if k == "content-range" {
            *v = v.replacen("bytes 65536", "bytes 65537", 1);
        }
    }
    assert!(verify(&h.key, &req, &hdr, h.w.now).is_err(), "a changed certified header");
    let mut status = good.clone();
    status.status_code = 200;
    assert!(verify(&h.key, &req, &status, h.w.now).is_err(), "a changed status");
    // Another part's bytes under this part's headers.
    let mut swapped = good.clone();
    swapped.body = ByteBuf::from(h.video[..good.body.len()].to_vec());
    assert!(verify(&h.key, &req, &swapped, h.w.now).is_err(), "another part's bytes");
    // A certificate from another root key.
    let other = SubnetKey::generate();
    let forged = other.data_certificate(&candid::Principal::from_slice(&CANISTER), &h.w.state.http_root_hash(), h.w.now);
    let r = h.w.state.http_request(&h.w.ctx(candid::Principal::anonymous()), &req, Some(&forged));
    assert!(verify(&h.key, &req, &r, h.w.now).is_err(), "a certificate not signed by the root key");
}

#[test]
fn after_an_upgrade_http_serves_at_once_and_the_same() {
    let mut h = Http::new();
    h.set_public(true);
    let before = h.get(&h.url("original"), &[("Range", "bytes=100-")]);
    let root = h.w.state.http_root_hash();
    h.w.upgrade();
    // The tree is in stable memory: served, verified, before any pass ran.
    let first = h.get(&h.url("original"), &[("Range", "bytes=100-")]);
    assert_eq!((first.ok().status, first.body == before.body), (206, true));
    assert_eq!(h.w.state.http_root_hash(), root, "the same tree");
    h.certify_all();
    assert_eq!(h.w.state.http_root_hash(), root, "the rebuilt tree is the same tree");
    let after = h.get(&h.url("original"), &[("Range", "bytes=100-")]);
    assert_eq!((after.ok().status, after.body == before.body), (206, true));
    let b = h.get(&format!("/b/{}", hex(&sha(&h.video))), &[("Range", "bytes=100-")]);
    assert_eq!(b.ok().status, 206);
}

#[test]
fn chunk_digests_are_kept_for_multi_chunk_uploads_and_freed_with_them() {
    let mut h = Http::new();
    // Deleting the memory drops every certified URL and, after housekeeping, the digests.
    let c = h.w.ctx(h.owner);
    h.w.state.memories_delete(&c, h.memory).unwrap();
    while h.w.state.gc_pass(h.w.now).more {}
    h.w.state.http_take_dirty();
    assert_eq!(h.get(&h.url("original"), &[]).ok().status, 404);
    assert_eq!(h.w.state.http_digest_count(), 0);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Re-certifying a memory replaces exactly its URLs: a removed asset's URL is gone (a
/// certified 404), an added one is served, and the tree equals the one a rebuild makes.
#[test]
fn changed_assets_leave_no_stale_urls() {
    let mut h = Http::new();
    h.set_public(true);
    assert_eq!(h.get(&h.url("thumbnail"), &[]).ok().status, 200);
    let c = h.w.ctx(h.owner);
    h.w.state.memories_remove_asset(&c, h.memory, AssetKind::Thumbnail).unwrap();
    h.w.state.http_take_dirty();
    assert_eq!(h.get(&h.url("thumbnail"), &[]).ok().status, 404);
    assert_eq!(h.get(&h.url("placeholder"), &[]).ok().status, 200);
    let inline = AssetSource::Inline(ByteBuf::from(h.thumb[..1000].to_vec()));
    h.w.state.memories_add_asset(&c, h.memory, asset(AssetKind::Display, inline, "image/jpeg")).unwrap();
    h.w.state.http_take_dirty();
    let got = h.get(&h.url("display"), &[]);
    assert_eq!((got.ok().status, got.body == h.thumb[..1000]), (200, true));
    let root = h.w.state.http_root_hash();
    h.w.upgrade();
    h.certify_all();
    assert_eq!(h.w.state.http_root_hash(), root, "the incrementally kept tree is the rebuilt one");
}
