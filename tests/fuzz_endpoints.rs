//! Fuzzing every endpoint's Candid arguments against the real Wasm (and the same calls
//! natively): the CI slice, a fixed-seed run of the driver in `tests/fuzzing/driver.rs`,
//! plus a replay of the corpus the coverage-guided fuzzer kept (`fuzz/corpus/`). The
//! long coverage-guided run is `scripts/fuzz.sh`.
//!
//! `FUZZ_INPUTS` sets the number of random inputs (default 400), `FUZZ_SEED` the seed;
//! `FUZZ_DEBUG=<method>` prints that method's refusals.

// The driver needs the native helpers (`common`) and the Wasm harness, which both carry
// the shared test-data module.
#![allow(clippy::duplicate_mod)]

mod common;
#[path = "fuzzing/driver.rs"]
mod driver;
mod harness;

use driver::{Driver, Figures};

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// The driver's hand-kept method list is the service's: a method added to `backend.did`
/// and not to the driver would never be fuzzed.
#[test]
fn the_driver_calls_every_method_of_the_service() {
    let driver: Vec<(String, bool)> = driver::METHODS.iter().map(|(m, q)| (m.to_string(), *q)).collect();
    assert_eq!(driver, common::did_methods());
}

#[test]
fn every_endpoint_survives_generated_mutated_and_malformed_arguments() {
    let wasm = harness::canister_wasm();
    let mut figures = Figures::default();
    let seed = env("FUZZ_SEED", 11);
    let started = std::time::Instant::now();
    let mut driver = Driver::new(wasm);
    for i in 0..env("FUZZ_INPUTS", 400) {
        // a fresh canister every 10 inputs; in between, inputs build on each other's state
        if i % 10 == 0 && i > 0 {
            driver = Driver::new(wasm);
        }
        let s = seed.wrapping_mul(1_000_003).wrapping_add(i);
        let len = 64 + (s % 4096) as usize;
        driver.input(&harness::file(len, s), &mut figures);
    }
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/endpoints");
    let mut replayed = 0;
    let mut files: Vec<_> = std::fs::read_dir(&corpus).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    files.sort();
    for (i, path) in files.iter().enumerate() {
        if i % 10 == 0 {
            driver = Driver::new(wasm);
        }
        driver.input(&std::fs::read(path).unwrap(), &mut figures);
        replayed += 1;
    }
    println!("fuzz slice (seed {seed}, {replayed} corpus inputs replayed) in {:.1?}\n{}", started.elapsed(), figures.report());
    assert!(figures.failures.is_empty(), "failures:\n{}", figures.failures.join("\n"));
    assert_eq!((figures.traps, figures.unchanged_state_violations, figures.divergences), (0, 0, 0));
}

/// Every endpoint at its maximal inputs, on a state built to make replies as large as
/// the limits allow: the largest reply of each, against the IC's 2 MiB (update, and
/// query run as update) and 3 MiB (query) limits. `MAX_RANGES` sets how many separate
/// chunk ranges the large sessions hold (default 500; at most 32,768 for 4 GiB in
/// 64 KiB chunks).
#[test]
fn largest_replies_at_maximal_inputs() {
    use backend::api::*;
    use harness::{controller, user, Backend};
    use serde_bytes::ByteBuf;

    let mut e = harness::embedded();
    let b: &mut dyn Backend = &mut e;
    let long = |n: usize| "é".repeat(n / 2);
    let (alice, bob) = (user(1), user(2));
    let mut replies: Vec<(&str, bool, usize)> = Vec::new();
    let mut raw = |b: &mut dyn Backend, who, method: &'static str, query: bool, arg: Vec<u8>| -> Vec<u8> {
        let r = if query { b.query(who, method, arg) } else { b.update(who, method, arg) };
        let bytes = r.unwrap_or_else(|r| panic!("{method}: {r}"));
        match replies.iter_mut().find(|(m, _, _)| *m == method) {
            Some(x) => x.2 = x.2.max(bytes.len()),
            None => replies.push((method, query, bytes.len())),
        }
        bytes
    };
    let ok = |bytes: Vec<u8>| -> Vec<u8> { bytes };
    // capsules of 100 members and invitations with the longest names, alice in 50
    let name = CapsuleCreateArgs { name: long(512) };
    let mut caps = Vec::new();
    for owner in 0..5u8 {
        let p = user(10 + owner);
        for _ in 0..10 {
            let c: Result<Capsule> = candid::decode_one(&raw(b, p, "capsules_create", false, candid::encode_one(&name).unwrap())).unwrap();
            let cap = c.unwrap().id;
            raw(b, p, "capsules_set_member", false, candid::encode_args((cap, alice, Role::Writer)).unwrap());
            raw(b, alice, "capsules_accept", false, candid::encode_one(cap).unwrap());
            caps.push(cap);
        }
    }
    for i in 0..97u32 {
        let who = candid::Principal::from_slice(&[0x30, (i >> 8) as u8, i as u8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9]);
        raw(b, user(10), "capsules_set_member", false, candid::encode_args((caps[0], who, Role::Reader)).unwrap());
    }
    raw(b, user(10), "capsules_set_member", false, candid::encode_args((caps[0], bob, Role::Reader)).unwrap());
    raw(b, bob, "capsules_accept", false, candid::encode_one(caps[0]).unwrap());
    raw(b, user(10), "capsules_remove_member", false, candid::encode_args((caps[0], bob)).unwrap());
    raw(b, user(10), "capsules_set_member", false, candid::encode_args((caps[0], bob, Role::Reader)).unwrap());
    for c in &caps[1..] {
        raw(b, user(10 + (*c as u8 - 1) / 10), "capsules_set_member", false, candid::encode_args((*c, bob, Role::Reader)).unwrap());
    }
    let cap = caps[0];
    raw(b, alice, "capsules_get", true, candid::encode_one(cap).unwrap());
    raw(b, alice, "capsules_list", true, candid::encode_args(()).unwrap());
    raw(b, alice, "capsules_page", true, candid::encode_args((None::<u64>, u32::MAX)).unwrap());
    raw(b, bob, "capsules_invitations", true, candid::encode_args((None::<u64>, u32::MAX)).unwrap());
    // memories with seven 32 KiB inline assets and the longest texts
    let meta = MemoryMeta { title: long(512), kind: MemoryKind::Video, description: long(8192), taken_at_ns: Some(u64::MAX), tags: vec![long(64); 32] };
    let inline = |kind| AssetInput { kind, source: AssetSource::Inline(ByteBuf::from(vec![0xee; 32 * 1024])), mime: long(512), width: Some(u32::MAX), height: Some(u32::MAX), duration_ms: Some(u64::MAX) };
    use AssetKind::*;
    let mut mems = Vec::new();
    config(b);
    for i in 0..12 {
        let mut key = long(126);
        key.push_str(&format!("{i:02}"));
        let args = MemoryCreateArgs {
            capsule_id: cap,
            meta: meta.clone(),
            assets: [Original, Display, Thumbnail, Placeholder, Poster, Preview].into_iter().map(inline).collect(),
            idempotency_key: Some(key),
        };
        let m: Result<Memory> = candid::decode_one(&ok(raw(b, alice, "memories_create", false, candid::encode_one(args).unwrap()))).unwrap();
        let id = m.unwrap().id;
        raw(b, alice, "memories_add_asset", false, candid::encode_args((id, inline(Other))).unwrap());
        mems.push(id);
    }
    raw(b, alice, "memories_get", true, candid::encode_one(mems[0]).unwrap());
    raw(b, alice, "memories_update", false, candid::encode_args((mems[0], meta.clone())).unwrap());
    let mut cursor: Option<u64> = None;
    loop {
        let page: Result<MemoryPage> = candid::decode_one(&raw(b, alice, "memories_list", true, candid::encode_args((cap, cursor, u32::MAX)).unwrap())).unwrap();
        match page.unwrap().next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    raw(b, alice, "memories_remove_asset", false, candid::encode_args((mems[0], Other)).unwrap());
    raw(b, alice, "memories_delete", false, candid::encode_one(mems[1]).unwrap());
    // a blob of 1.9 MB chunks, and blobs with the longest names
    let data = harness::file(3_800_000, 5);
    let begin = |size: u64, chunk: u32| BeginArgs { capsule_id: cap, size, chunk_size: Some(chunk), sha256: None, mime: long(512), name: long(512), pmid: Some(long(128)), idempotency_key: None };
    let s: Result<Session> = candid::decode_one(&raw(b, alice, "uploads_begin", false, candid::encode_one(begin(data.len() as u64, 1_900_000)).unwrap())).unwrap();
    let s = s.unwrap();
    for i in 0..2 {
        raw(b, alice, "uploads_put_chunk", false, candid::encode_args((s.id, i as u32, ByteBuf::from(data[i * 1_900_000..(i + 1) * 1_900_000].to_vec()))).unwrap());
    }
    let blob: Result<BlobMeta> = candid::decode_one(&raw(b, alice, "uploads_finish", false, candid::encode_args((s.id, ByteBuf::from(harness::sha(&data)), data.len() as u64)).unwrap())).unwrap();
    let blob = blob.unwrap().id;
    raw(b, alice, "blobs_meta", true, candid::encode_one(blob).unwrap());
    raw(b, alice, "blobs_read_chunk", true, candid::encode_args((blob, 0u32)).unwrap());
    raw(b, alice, "blobs_read_range", true, candid::encode_args((blob, 0u64, (2u64 << 20) - 4096)).unwrap());
    // HTTP: the largest certified part (a 1.9 MB chunk) with the most headers asked for
    b.advance_time(std::time::Duration::from_secs(1)); // certification passes, link secret
    let asset = AssetInput { kind: Original, source: AssetSource::Blob(blob), mime: long(512), width: None, height: None, duration_ms: None };
    let args = MemoryCreateArgs { capsule_id: cap, meta: meta.clone(), assets: vec![asset], idempotency_key: None };
    let m: Result<Memory> = candid::decode_one(&raw(b, alice, "memories_create", false, candid::encode_one(args).unwrap())).unwrap();
    let big = m.unwrap().id;
    raw(b, alice, "memories_set_public", false, candid::encode_args((big, true)).unwrap());
    let link: Result<Link> = candid::decode_one(&raw(b, alice, "links_create", true, candid::encode_args((big, Original, 30 * 24 * 3600u64)).unwrap())).unwrap();
    let req = HttpRequest {
        method: "GET".into(),
        url: format!("{}&{}", link.unwrap().path, "x".repeat(4096)),
        headers: vec![("Range".into(), "bytes=1-".into()), ("If-None-Match".into(), long(1024))],
        body: ByteBuf::new(),
        certificate_version: Some(2),
    };
    let r: HttpResponse = candid::decode_one(&raw(b, alice, "http_request", true, candid::encode_one(req).unwrap())).unwrap();
    assert_eq!((r.status_code, r.body.len()), (206, 1_900_000));
    raw(b, alice, "capsules_rotate_link_key", false, candid::encode_one(cap).unwrap());
    raw(b, alice, "memories_delete", false, candid::encode_one(big).unwrap());
    for i in 0..60u64 {
        let d = harness::file(100, 1000 + i);
        let s = b.begin(alice, cap, d.len(), None);
        b.put(alice, &s, 0, &d).unwrap();
        b.finish(alice, &s, &d).0.unwrap();
    }
    raw(b, alice, "blobs_list", true, candid::encode_args((cap, None::<u64>, u32::MAX)).unwrap());
    // sessions of 4 GiB in 64 KiB chunks, every other chunk received: the most ranges
    let ranges: u32 = std::env::var("MAX_RANGES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let chunk = ByteBuf::from(vec![0x55u8; 65_536]);
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let s: Result<Session> = candid::decode_one(&raw(b, alice, "uploads_begin", false, candid::encode_one(begin(4 << 30, 65_536)).unwrap())).unwrap();
        let s = s.unwrap();
        for i in 0..ranges {
            raw(b, alice, "uploads_put_chunk", false, candid::encode_args((s.id, 2 * i + 1, chunk.clone())).unwrap());
        }
        sessions.push(s.id);
    }
    raw(b, alice, "uploads_status", true, candid::encode_one(sessions[0]).unwrap());
    raw(b, alice, "uploads_list", true, candid::encode_args(()).unwrap());
    raw(b, user(10), "uploads_page", true, candid::encode_one(UploadsPageArgs { capsule_id: Some(cap), cursor: None, limit: Some(u32::MAX) }).unwrap());
    raw(b, alice, "uploads_finish", false, candid::encode_args((sessions[0], ByteBuf::from(vec![0u8; 32]), 4u64 << 30)).unwrap());
    raw(b, alice, "uploads_abort", false, candid::encode_one(sessions[2]).unwrap());
    raw(b, alice, "blobs_delete", false, candid::encode_one(blob).unwrap());
    raw(b, controller(), "stats", true, candid::encode_args(()).unwrap());
    raw(b, alice, "upload_config", true, candid::encode_args(()).unwrap());
    raw(b, controller(), "admin_gc", false, candid::encode_args(()).unwrap());
    raw(b, controller(), "admin_set_config", false, candid::encode_one(ConfigUpdate::default()).unwrap());
    // Directory mode last (it stops users creating capsules): the directory's create.
    let dir = user(77);
    raw(b, controller(), "admin_set_config", false, candid::encode_one(ConfigUpdate { directory: Some(dir), ..Default::default() }).unwrap());
    let args = DirectoryCapsuleArgs { id: 10_000, owner: alice, name: long(512) };
    let c: Result<Capsule> = candid::decode_one(&raw(b, dir, "directory_capsules_create", false, candid::encode_one(args).unwrap())).unwrap();
    assert_eq!(c.unwrap().id, 10_000);

    replies.sort();
    println!("largest reply of every endpoint at maximal inputs ({ranges} chunk ranges per large session):");
    for (m, q, len) in &replies {
        println!("  {m:<24} {:<6} {len:>9} bytes  {:>5.1} % of 2 MiB", if *q { "query" } else { "update" }, *len as f64 / (2 << 20) as f64 * 100.0);
        assert!(*len < 2 << 20, "{m}: {len} bytes");
    }
    assert_eq!(replies.len(), driver::METHODS.len(), "every endpoint measured");

    fn config(b: &mut dyn Backend) {
        let r: Result<UploadConfig> = b.call(controller(), "admin_set_config", (ConfigUpdate { max_capsule_bytes: Some(1 << 40), ..Default::default() },));
        r.unwrap();
    }
}
