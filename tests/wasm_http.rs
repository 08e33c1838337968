//! `http_request` of the release Wasm on the embedded host: real query certificates
//! (the host's BLS root key), verified by `ic-response-verification`, and what serving
//! and certification data cost in instructions (`-- --nocapture` prints the figures;
//! system API metering is on, so they include the IC's charges for stable reads).

mod harness;
#[path = "common/verify.rs"]
mod verify;

use backend::api::*;
use candid::Principal;
use harness::{file, sha};
use ic_host::Host;
use serde_bytes::ByteBuf;
use verify::{content_range, get, header};

const MIB: f64 = 1_048_576.0;
const CHUNK: u32 = 1_800_000;

fn owner() -> Principal {
    Principal::from_slice(&[7, 1, 2, 3])
}

struct Canister {
    host: Host,
}

impl Canister {
    fn new() -> Self {
        let mut host = Host::new(harness::canister_wasm(), &candid::encode_args(()).unwrap()).expect("install");
        host.tick(); // certification pass and raw_rand for the link secret
        Canister { host }
    }

    fn update<A: candid::utils::ArgumentEncoder, R: for<'a> candid::utils::ArgumentDecoder<'a>>(&mut self, m: &str, a: A) -> R {
        self.host.update_candid(owner(), m, a).unwrap_or_else(|e| panic!("{m}: {e}"))
    }

    /// Uploads `data` in `chunk`-byte chunks; returns the blob and each put's instructions.
    fn upload(&mut self, cap: u64, data: &[u8], chunk: u32, mime: &str) -> (BlobMeta, Vec<u64>) {
        let args = BeginArgs {
            capsule_id: cap,
            size: data.len() as u64,
            chunk_size: Some(chunk),
            sha256: None,
            mime: mime.into(),
            name: "f".into(),
            pmid: None,
            idempotency_key: None,
        };
        let (s,): (Result<Session>,) = self.update("uploads_begin", (args,));
        let s = s.unwrap();
        let mut costs = Vec::new();
        for (i, part) in data.chunks(chunk as usize).enumerate() {
            let arg = candid::encode_args((s.id, i as u32, ByteBuf::from(part.to_vec()))).unwrap();
            let r = self.host.update(owner(), "uploads_put_chunk", &arg);
            assert!(r.reply.is_ok(), "{:?}", r.reply);
            costs.push(r.instructions);
        }
        let (b,): (Result<BlobMeta>,) = self.update("uploads_finish", (s.id, ByteBuf::from(sha(data)), data.len() as u64));
        (b.unwrap(), costs)
    }

    /// An anonymous GET; the response is verified against the host's root key.
    fn get(&mut self, url: &str, headers: &[(&str, &str)]) -> (HttpResponse, u64, std::result::Result<(), String>) {
        let req = get(url, headers);
        let r = self.host.query(Principal::anonymous(), "http_request", &candid::encode_one(&req).unwrap());
        let resp: HttpResponse = candid::decode_one(&r.reply.expect("http_request replies")).unwrap();
        let v = verify::verify(&self.host.root_key(), self.host.canister_id().as_slice(), &req, &resp, self.host.time());
        (resp, r.instructions, v)
    }
}

#[test]
fn wasm_http_certified_ranges_privacy_links_and_costs() {
    let mut c = Canister::new();
    let (cap,): (Result<Capsule>,) = c.update("capsules_create", (CapsuleCreateArgs { name: "c".into() },));
    let cap = cap.unwrap().id;
    let video = file(3 * CHUNK as usize + 123_457, 21);
    let thumb = file(90_000, 22);
    let (v, video_puts) = c.upload(cap, &video, CHUNK, "video/mp4");
    // The same chunk size as a one-chunk upload: no chunk digest is taken for it.
    let (_, single_puts) = c.upload(cap, &file(CHUNK as usize, 23), CHUNK, "application/octet-stream");
    let (t, _) = c.upload(cap, &thumb, CHUNK, "image/jpeg");
    let placeholder = file(700, 24);
    let assets = vec![
        AssetInput { kind: AssetKind::Original, source: AssetSource::Blob(v.id), mime: "video/mp4".into(), width: None, height: None, duration_ms: None },
        AssetInput { kind: AssetKind::Thumbnail, source: AssetSource::Blob(t.id), mime: "image/jpeg".into(), width: None, height: None, duration_ms: None },
        AssetInput { kind: AssetKind::Placeholder, source: AssetSource::Inline(ByteBuf::from(placeholder.clone())), mime: "image/jpeg".into(), width: None, height: None, duration_ms: None },
    ];
    let meta = MemoryMeta { title: "v".into(), kind: MemoryKind::Video, description: String::new(), taken_at_ns: None, tags: vec![] };
    let args = MemoryCreateArgs { capsule_id: cap, meta, assets, idempotency_key: None };
    let r = c.host.update(owner(), "memories_create", &candid::encode_one(&args).unwrap());
    let create_instructions = r.instructions;
    let m: Result<Memory> = candid::decode_one(&r.reply.unwrap()).unwrap();
    let m = m.unwrap().id;
    let url = format!("/m/{m}/original");

    // Private by default; certified 403.
    let (r, _, ok) = c.get(&url, &[]);
    assert_eq!((r.status_code, ok), (403, Ok(())));

    // A link works, a rotated key revokes it.
    let (link,): (Result<Link>,) = c.host.query_candid(owner(), "links_create", (m, AssetKind::Thumbnail, 600u64)).unwrap();
    let link = link.expect("the link secret came from raw_rand");
    let (r, _, ok) = c.get(&link.path, &[]);
    assert_eq!((r.status_code, ok, r.body == thumb), (200, Ok(()), true));
    let (v1,): (Result<u32>,) = c.update("capsules_rotate_link_key", (cap,));
    assert_eq!(v1, Ok(1));
    assert_eq!(c.get(&link.path, &[]).0.status_code, 403);

    // Public: every part certified and byte-identical; figures per MiB served.
    let (pubr,): (Result<()>,) = c.update("memories_set_public", (m, true));
    pubr.unwrap();
    let mut served = Vec::new();
    let mut part_costs = Vec::new();
    while served.len() < video.len() {
        let range = format!("bytes={}-", served.len());
        let (r, instr, ok) = c.get(&url, &[("Range", &range)]);
        assert_eq!((r.status_code, ok.clone()), (206, Ok(())), "{range}: {ok:?}");
        let (a, b, total) = content_range(&r);
        assert_eq!((a as usize, total as usize), (served.len(), video.len()));
        served.extend_from_slice(&r.body);
        assert_eq!(served.len() as u64, b + 1);
        part_costs.push((r.body.len(), instr));
    }
    assert_eq!(served, video);
    // A seek into the middle of a part answers that part.
    let (r, seek_instr, ok) = c.get(&url, &[("Range", "bytes=2000000-2000010")]);
    assert_eq!((r.status_code, ok), (206, Ok(())));
    assert_eq!(content_range(&r).0, u64::from(CHUNK));
    let (r, full_instr, ok) = c.get(&format!("/m/{m}/thumbnail"), &[]);
    assert_eq!((r.status_code, ok, r.body == thumb), (200, Ok(()), true));
    let etag = header(&r, "etag").unwrap().to_string();
    let (r, _, ok) = c.get(&format!("/m/{m}/thumbnail"), &[("If-None-Match", &etag)]);
    assert_eq!((r.status_code, ok), (304, Ok(())));
    let (r, _, ok) = c.get(&format!("/b/{}", hex(&sha(&video))), &[]);
    assert_eq!((r.status_code, ok), (206, Ok(())));
    let (r, _, ok) = c.get("/m/999/original", &[]);
    assert_eq!((r.status_code, ok), (404, Ok(())));

    // Baseline: the same bytes through blobs_read_chunk (decode, read, encode).
    let read = c.host.query(owner(), "blobs_read_chunk", &candid::encode_args((v.id, 0u32)).unwrap());
    assert!(read.reply.is_ok());

    // Upgrade: the certification tree is in stable memory, so the same is served at
    // once, before any timer ran.
    let wasm = harness::canister_wasm();
    let up = c.host.upgrade(&wasm, &candid::encode_args(()).unwrap()).expect("upgrade");
    let (r, _, ok) = c.get(&url, &[("Range", "bytes=5000000-")]);
    assert_eq!((r.status_code, ok), (206, Ok(())));
    let passes: Vec<u64> = c.host.tick().iter().map(|r| r.instructions).collect();

    let full_part = part_costs[0];
    let per_mib = |(len, instr): (usize, u64)| instr as f64 / (len as f64 / MIB);
    let multi = video_puts[0] as f64 / (f64::from(CHUNK) / MIB);
    let single = single_puts[0] as f64 / (f64::from(CHUNK) / MIB);
    println!("== http figures (instructions, counted as the IC counts) ==");
    println!("serve a certified 206 part of {} bytes: {} ({:.0}/MiB)", full_part.0, full_part.1, per_mib(full_part));
    println!("seek into the middle of a part: {seek_instr}");
    println!("serve a certified 200 of {} bytes (thumbnail): {full_instr} ({:.0}/MiB)", thumb.len(), full_instr as f64 / (thumb.len() as f64 / MIB));
    println!("copy baseline: blobs_read_chunk of the same {} bytes: {} ({:.0}/MiB)", CHUNK, read.instructions, read.instructions as f64 / (f64::from(CHUNK) / MIB));
    println!("upload: put_chunk with chunk digest {:.0}/MiB, without (one-chunk upload) {:.0}/MiB, +{:.0}/MiB (+{:.1} %)", multi, single, multi - single, (multi / single - 1.0) * 100.0);
    println!("memories_create (certifies {} parts + 2 small assets): {create_instructions}", v.chunk_count);
    println!("upgrade: post_upgrade {} instructions; timer messages after it {passes:?}", up.post_upgrade);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Before layout 5 the certification tree was rebuilt by timer passes after every
/// upgrade: 503s meanwhile, and a pass bounded by its entry count could trap past the 40 B
/// limit of a message, after which every URL answered 503 for good. Now the tree is in
/// stable memory: 640 memories of every kind answer at once after an upgrade, and the
/// timer messages that follow are small.
#[test]
fn wasm_after_an_upgrade_every_url_is_served_at_once() {
    let mut c = Canister::new();
    let (cap,): (Result<Capsule>,) = c.update("capsules_create", (CapsuleCreateArgs { name: "many".into() },));
    let cap = cap.unwrap().id;
    let kinds = backend::domain::http_cert::KINDS;
    let mut last = 0;
    for m in 0..640u64 {
        let assets = kinds
            .iter()
            .enumerate()
            .map(|(i, &kind)| AssetInput {
                kind,
                source: AssetSource::Inline(ByteBuf::from(file(32 * 1024, m * 8 + i as u64))),
                mime: "image/jpeg".into(),
                width: None,
                height: None,
                duration_ms: None,
            })
            .collect();
        let meta = MemoryMeta { title: format!("m{m}"), kind: MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec![] };
        let (r,): (Result<Memory>,) = c.update("memories_create", (MemoryCreateArgs { capsule_id: cap, meta, assets, idempotency_key: None },));
        last = r.unwrap().id;
    }
    let (p,): (Result<()>,) = c.update("memories_set_public", (last, true));
    p.unwrap();
    let url = format!("/m/{last}/other");
    assert_eq!(c.get(&url, &[]).0.status_code, 200);

    c.host.upgrade(harness::canister_wasm(), &candid::encode_args(()).unwrap()).expect("upgrade");
    for u in [url.clone(), "/m/1/original".to_string(), format!("/m/{}/thumbnail", last / 2)] {
        let (r, _, ok) = c.get(&u, &[]);
        let want = if u == url { 200 } else { 403 };
        assert_eq!((r.status_code, ok), (want, Ok(())), "{u} right after the upgrade");
    }
    let mut passes = Vec::new();
    for _ in 0..20 {
        let ran = c.host.tick();
        if ran.is_empty() {
            break;
        }
        for r in ran {
            assert!(r.reply.is_ok(), "a timer message failed: {:?}", r.reply);
            passes.push(r.instructions);
        }
    }
    println!("timer messages after the upgrade (instructions): {passes:?}");
    assert!(passes.iter().all(|&i| i < 1_000_000_000), "nothing to rebuild: {passes:?}");
}

/// A whole 1 GB file read back through `http_request` in 206 parts, each verified under
/// the root key and byte-identical to what was uploaded (`HTTP_GB_BYTES` sets the size).
#[test]
fn wasm_a_1gb_file_reads_back_in_verified_parts() {
    let size: usize = std::env::var("HTTP_GB_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000_000);
    let t = std::time::Instant::now();
    let mut c = Canister::new();
    let (cap,): (Result<Capsule>,) = c.update("capsules_create", (CapsuleCreateArgs { name: "big".into() },));
    let cap = cap.unwrap().id;
    let data = file(size, 1234);
    let (blob, _) = c.upload(cap, &data, CHUNK, "video/mp4");
    let asset = AssetInput {
        kind: AssetKind::Original,
        source: AssetSource::Blob(blob.id),
        mime: "video/mp4".into(),
        width: None,
        height: None,
        duration_ms: None,
    };
    let meta = MemoryMeta { title: "big".into(), kind: MemoryKind::Video, description: String::new(), taken_at_ns: None, tags: vec![] };
    let (m,): (Result<Memory>,) = c.update("memories_create", (MemoryCreateArgs { capsule_id: cap, meta, assets: vec![asset], idempotency_key: None },));
    let m = m.unwrap().id;
    let (p,): (Result<()>,) = c.update("memories_set_public", (m, true));
    p.unwrap();
    let uploaded = t.elapsed();
    let url = format!("/m/{m}/original");
    let (mut at, mut parts, mut instructions) = (0usize, 0u32, 0u64);
    while at < size {
        let range = format!("bytes={at}-");
        let (r, instr, ok) = c.get(&url, &[("Range", &range)]);
        assert_eq!((r.status_code, ok.clone()), (206, Ok(())), "{range}: {ok:?}");
        let (a, b, total) = content_range(&r);
        assert_eq!((a as usize, total as usize), (at, size), "{range}");
        assert!(r.body.as_slice() == &data[at..=b as usize], "{range}: the bytes");
        at = b as usize + 1;
        parts += 1;
        instructions += instr;
    }
    println!(
        "{size} bytes: uploaded in {:.1} s, read back in {parts} verified parts in {:.1} s, {:.1} M instructions per MiB served",
        uploaded.as_secs_f64(),
        (t.elapsed() - uploaded).as_secs_f64(),
        instructions as f64 / (size as f64 / MIB) / 1e6
    );
}
