//! The capsule / memory domain at the Wasm level, in the embedded host (and on PocketIC
//! when `POCKET_IC_BIN` is set): access matrix, BRIEF scenarios 4 and 5, space reuse,
//! expiry by timer, dedup.

#[macro_use]
mod harness;

use std::time::Duration;

use backend::api::{self, *};
use candid::{Principal, Reserved};
use harness::*;
use serde_bytes::ByteBuf;

on_every_backend!(
    s4_s5_memory_with_four_assets_reads_back_identical,
    space_is_reused_after_deletes,
    the_same_file_twice_is_stored_once;
    // Adds members by principal: over HTTP its callers are their keys' principals.
    not_over_http: access_matrix,
);

fn meta(title: &str, kind: MemoryKind) -> MemoryMeta {
    MemoryMeta { title: title.into(), kind, description: String::new(), taken_at_ns: None, tags: vec![] }
}

fn asset(kind: AssetKind, source: AssetSource, img: Option<&image::DynamicImage>) -> AssetInput {
    AssetInput {
        kind,
        source,
        mime: "image/jpeg".into(),
        width: img.map(|i| i.width()),
        height: img.map(|i| i.height()),
        duration_ms: None,
    }
}

/// Reads a blob back through `blobs_read_range`, 2 MiB at a time.
fn read_by_ranges(b: &mut dyn Backend, who: Principal, blob_id: u64) -> Vec<u8> {
    let meta: api::Result<BlobMeta> = b.q(who, "blobs_meta", (blob_id,));
    let meta = meta.unwrap();
    let max: UploadConfig = b.q(who, "upload_config", ());
    let mut out = Vec::new();
    while (out.len() as u64) < meta.size {
        let len = max.max_read_bytes.min(meta.size - out.len() as u64);
        let r: api::Result<ByteBuf> = b.q(who, "blobs_read_range", (blob_id, out.len() as u64, len));
        out.extend_from_slice(&r.unwrap());
    }
    out
}

fn s4_s5_memory_with_four_assets_reads_back_identical(b: &mut dyn Backend) {
    let alice = user(40);
    let cap = b.capsule(alice);
    let img = photo(4000, 3000);
    let (display, thumb, placeholder) = (fit(&img, 2048), fit(&img, 512), fit(&img, 32));
    let bytes = [jpeg_bytes(&img), jpeg_bytes(&display), jpeg_bytes(&thumb), jpeg_bytes(&placeholder)];
    assert!(bytes[3].len() <= 32 * 1024, "placeholder fits inline");
    let pmid = "mem_beach";
    let blobs: Vec<BlobMeta> = bytes[..3].iter().map(|d| b.upload(alice, cap, d, Some(pmid))).collect();
    let args = MemoryCreateArgs {
        capsule_id: cap,
        meta: meta("Beach", MemoryKind::Photo),
        assets: vec![
            asset(AssetKind::Original, AssetSource::Blob(blobs[0].id), Some(&img)),
            asset(AssetKind::Display, AssetSource::Blob(blobs[1].id), Some(&display)),
            asset(AssetKind::Thumbnail, AssetSource::Blob(blobs[2].id), Some(&thumb)),
            asset(AssetKind::Placeholder, AssetSource::Inline(ByteBuf::from(bytes[3].clone())), Some(&placeholder)),
        ],
        idempotency_key: Some(pmid.into()),
    };
    // Atomic: with one bad asset in the list, nothing is written.
    let before = b.stats();
    let mut bad = args.clone();
    bad.assets[2].source = AssetSource::Blob(9_999);
    let r: api::Result<Memory> = b.call(alice, "memories_create", (bad,));
    assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
    assert_eq!(b.stats(), before);

    let m: api::Result<Memory> = b.call(alice, "memories_create", (args.clone(),));
    let m = m.unwrap();
    let again: api::Result<Memory> = b.call(alice, "memories_create", (args,));
    assert_eq!(again.unwrap().id, m.id, "same idempotency key, same memory");

    // Scenario 5: every asset back, byte-identical, through the read API.
    let got: api::Result<Memory> = b.q(alice, "memories_get", (m.id,));
    let got = got.unwrap();
    assert_eq!(got.assets.len(), 4);
    for (a, want) in got.assets.iter().zip(&bytes) {
        let back = match (a.blob_id, &a.inline) {
            (Some(id), None) => read_by_ranges(b, alice, id),
            (None, Some(inline)) => inline.to_vec(),
            other => panic!("asset {:?} has {other:?}", a.kind),
        };
        assert!(back == *want, "{:?} differs", a.kind);
        assert_eq!(a.sha256.to_vec(), sha(want));
        let decoded = image::load_from_memory(&back).unwrap();
        assert_eq!((Some(decoded.width()), Some(decoded.height())), (a.width, a.height));
        println!("{:?}: {} bytes, {}x{}", a.kind, back.len(), decoded.width(), decoded.height());
    }
    let page: api::Result<MemoryPage> = b.q(alice, "memories_list", (cap, None::<u64>, 10u32));
    assert_eq!(page.unwrap().memories, vec![got]);
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Anonymous,
    Stranger,
    Reader,
    Writer,
    Owner,
    Controller,
}

const EVERYONE: [Who; 6] = [Who::Anonymous, Who::Stranger, Who::Reader, Who::Writer, Who::Owner, Who::Controller];

/// Every endpoint x {anonymous, stranger, reader, writer, owner, controller}: allowed, or
/// `Unauthorized` with no stable-memory write and unchanged stats.
fn access_matrix(b: &mut dyn Backend) {
    let (owner, writer, reader, stranger, extra) = (user(50), user(51), user(52), user(53), user(54));
    let principal = |w: Who| match w {
        Who::Anonymous => Principal::anonymous(),
        Who::Stranger => stranger,
        Who::Reader => reader,
        Who::Writer => writer,
        Who::Owner => owner,
        Who::Controller => controller(),
    };
    let cap = b.capsule(owner);
    for (p, role) in [(writer, Role::Writer), (reader, Role::Reader)] {
        let r: api::Result<Capsule> = b.call(owner, "capsules_set_member", (cap, p, role));
        r.unwrap();
    }
    let data = file(300_000, 50);
    let blob = b.upload(owner, cap, &data, None);
    let mem: api::Result<Memory> = b.call(
        owner,
        "memories_create",
        (MemoryCreateArgs { capsule_id: cap, meta: meta("m", MemoryKind::Note), assets: vec![], idempotency_key: None },),
    );
    let mem = mem.unwrap().id;
    let session = b.begin(writer, cap, 200_000, None);

    type Args = Box<dyn Fn(&mut dyn Backend) -> Vec<u8>>;
    let e = |v: Vec<u8>| -> Args { Box::new(move |_| v.clone()) };
    let anyone = &EVERYONE[..];
    let signed_in = &EVERYONE[1..];
    let readers = &[Who::Reader, Who::Writer, Who::Owner, Who::Controller][..];
    let writers = &[Who::Writer, Who::Owner, Who::Controller][..];
    let owners = &[Who::Owner, Who::Controller][..];
    let creator = &[Who::Writer][..];
    let controllers = &[Who::Controller][..];
    let note = |cap| MemoryCreateArgs { capsule_id: cap, meta: meta("n", MemoryKind::Note), assets: vec![], idempotency_key: None };
    let inline_other = asset(AssetKind::Other, AssetSource::Inline(ByteBuf::from(vec![1u8; 100])), None);
    let begin = BeginArgs {
        capsule_id: cap,
        size: 10,
        chunk_size: None,
        sha256: None,
        mime: String::new(),
        name: String::new(),
        pmid: None,
        idempotency_key: None,
    };
    let enc = |v: std::result::Result<Vec<u8>, candid::Error>| v.unwrap();
    #[allow(clippy::type_complexity)]
    let table: Vec<(&str, bool, Args, &[Who])> = vec![
        ("upload_config", true, e(enc(candid::encode_args(()))), anyone),
        ("stats", true, e(enc(candid::encode_args(()))), anyone),
        ("capsules_list", true, e(enc(candid::encode_args(()))), anyone),
        ("uploads_list", true, e(enc(candid::encode_args(()))), anyone),
        ("capsules_create", false, e(enc(candid::encode_one(CapsuleCreateArgs { name: "c".into() }))), signed_in),
        ("capsules_get", true, e(enc(candid::encode_one(cap))), readers),
        ("capsules_set_member", false, e(enc(candid::encode_args((cap, extra, Role::Reader)))), owners),
        ("capsules_remove_member", false, e(enc(candid::encode_args((cap, extra)))), owners),
        ("uploads_begin", false, e(enc(candid::encode_one(begin))), writers),
        ("uploads_put_chunk", false, e(enc(candid::encode_args((session.id, 0u32, ByteBuf::from(vec![0u8; 200_000]))))), creator),
        ("uploads_status", true, e(enc(candid::encode_one(session.id))), creator),
        ("uploads_finish", false, e(enc(candid::encode_args((session.id, ByteBuf::from(vec![0u8; 32]), 200_000u64)))), creator),
        ("uploads_abort", false, e(enc(candid::encode_one(session.id))), creator),
        ("blobs_meta", true, e(enc(candid::encode_one(blob.id))), readers),
        ("blobs_read_chunk", true, e(enc(candid::encode_args((blob.id, 0u32)))), readers),
        ("blobs_read_range", true, e(enc(candid::encode_args((blob.id, 0u64, 1000u64)))), readers),
        ("memories_create", false, e(enc(candid::encode_one(note(cap)))), writers),
        ("memories_get", true, e(enc(candid::encode_one(mem))), readers),
        ("memories_list", true, e(enc(candid::encode_args((cap, None::<u64>, 10u32)))), readers),
        ("memories_update", false, e(enc(candid::encode_args((mem, meta("renamed", MemoryKind::Note))))), writers),
        ("memories_add_asset", false, e(enc(candid::encode_args((mem, inline_other)))), writers),
        ("memories_remove_asset", false, e(enc(candid::encode_args((mem, AssetKind::Other)))), writers),
        (
            "memories_delete",
            false,
            // a fresh memory for every caller, made by the owner
            Box::new(move |b: &mut dyn Backend| {
                let m: api::Result<Memory> = b.call(owner, "memories_create", (note(cap),));
                candid::encode_one(m.unwrap().id).unwrap()
            }),
            writers,
        ),
        ("admin_set_config", false, e(enc(candid::encode_one(ConfigUpdate::default()))), controllers),
        ("admin_gc", false, e(enc(candid::encode_args(()))), controllers),
    ];
    let mut cases = 0;
    for (method, is_query, args, allowed) in &table {
        for who in EVERYONE {
            let arg = args(b);
            let before = b.stats();
            let reply = if *is_query { b.query(principal(who), method, arg) } else { b.update(principal(who), method, arg) };
            let writes = b.last_stable_writes();
            let reply = reply.unwrap_or_else(|r| panic!("{method} as {who:?} trapped: {}", r.message));
            // Endpoints without a Result (lists, config, stats) are open to everyone.
            let outcome = candid::decode_one::<api::Result<Reserved>>(&reply).ok();
            let refused = matches!(outcome, Some(Err(Error::Unauthorized(_))));
            assert_eq!(!refused, allowed.contains(&who), "{method} as {who:?}: {outcome:?}");
            if refused {
                assert_eq!(b.stats(), before, "{method} as {who:?} was refused but changed stats");
                if let Some(w) = writes {
                    assert_eq!(w, 0, "{method} as {who:?} was refused but wrote {w} stable bytes");
                }
            }
            cases += 1;
        }
    }
    println!("access matrix: {} endpoints x {} callers = {cases} cases", table.len(), EVERYONE.len());
    assert_eq!(cases, table.len() * 6);
}

/// Upload 10 x 20 MB, delete all, upload 10 x 20 MB again: stable memory grows by at
/// most 5 % in the second round.
fn space_is_reused_after_deletes(b: &mut dyn Backend) {
    let alice = user(60);
    let cap = b.capsule(alice);
    let round = |b: &mut dyn Backend, seed: u64| -> Vec<u64> {
        (0..10)
            .map(|i| {
                let blob = b.upload(alice, cap, &file(20_000_000, seed + i), None);
                let args = MemoryCreateArgs {
                    capsule_id: cap,
                    meta: meta("video", MemoryKind::Video),
                    assets: vec![asset(AssetKind::Original, AssetSource::Blob(blob.id), None)],
                    idempotency_key: None,
                };
                let m: api::Result<Memory> = b.call(alice, "memories_create", (args,));
                m.unwrap().id
            })
            .collect()
    };
    let first = round(b, 600);
    let after_first = b.stats();
    for id in first {
        let r: api::Result<()> = b.call(alice, "memories_delete", (id,));
        r.unwrap();
    }
    let pending = b.stats();
    assert_eq!((pending.blobs, pending.gc_pending_bytes), (0, 200_000_000));
    // housekeeping runs on its timer
    b.advance_time(Duration::from_secs(601));
    let freed = b.stats();
    assert_eq!(freed.gc_pending_bytes, 0, "housekeeping freed every queued chunk");
    round(b, 700);
    let after_second = b.stats();
    let growth = after_second.stable_pages as f64 / after_first.stable_pages as f64 - 1.0;
    println!(
        "stable pages: {} after round 1, {} after round 2 ({:+.2} %); arena {} -> {} bytes",
        after_first.stable_pages,
        after_second.stable_pages,
        growth * 100.0,
        after_first.arena_bytes,
        after_second.arena_bytes
    );
    assert!(growth <= 0.05, "stable memory grew {:.1} % in the second round", growth * 100.0);
}

fn the_same_file_twice_is_stored_once(b: &mut dyn Backend) {
    let alice = user(70);
    let cap = b.capsule(alice);
    let data = file(7_000_000, 70);
    let first = b.upload(alice, cap, &data, None);
    let arena = b.stats().arena_bytes;
    let second = b.upload(alice, cap, &data, None);
    assert_eq!(first.id, second.id);
    b.advance_time(Duration::from_secs(601));
    let st = b.stats();
    assert_eq!((st.blobs, st.blob_bytes, st.gc_pending_bytes), (1, data.len() as u64, 0));
    assert!(st.arena_bytes <= arena, "the duplicate's chunks were freed");
}

/// Many expired sessions at once: the timer frees them in passes that each stay far
/// below the instruction limit (embedded host: per-tick counts printed).
#[test]
fn expiry_is_collected_by_the_timer_in_bounded_ticks() {
    let mut e = embedded();
    let b: &mut dyn Backend = &mut e;
    let mut callers = 0;
    let mut chunks = 0;
    for c in 0..2u8 {
        let who = user(80 + c);
        let cap = b.capsule(who);
        for s in 0..40 {
            let data = file(65_536 * 16, u64::from(c) * 100 + s);
            let sess = b.begin_chunked(who, cap, data.len(), None, Some(65_536));
            for i in 0..sess.chunk_count - 1 {
                b.put(who, &sess, i, &data).unwrap();
                chunks += 1;
            }
        }
        callers += 1;
    }
    let before = b.stats();
    assert_eq!(before.open_sessions, 80);
    b.advance_time(Duration::from_secs(24 * 3600 + 1));
    let st = b.stats();
    assert_eq!((st.open_sessions, st.session_bytes, st.gc_pending_bytes), (0, 0, 0));
    assert_eq!(st.bytes_freed_total, before.session_bytes);
    let ticks = &e.timer_ticks;
    let max = ticks.iter().copied().max().unwrap_or(0);
    println!(
        "expiry of {} sessions from {callers} callers ({chunks} chunks): {} timer ticks, max {max} instructions ({:.4} % of the 40 B limit): {ticks:?}",
        before.open_sessions,
        ticks.len(),
        max as f64 / 4e8
    );
    assert!(ticks.len() > 1, "the work was split across ticks");
    assert!(max < 2_000_000_000, "a housekeeping tick came near the limit: {max}");
}
