//! BRIEF's scenarios at the Wasm level: the real release Wasm, run in the embedded host
//! (and on PocketIC when `POCKET_IC_BIN` is set). Each scenario prints the instruction
//! figures of its calls (embedded host).

#[macro_use]
mod harness;


use backend::api::*;
use harness::*;
use candid::Principal;
use serde_bytes::ByteBuf;

on_every_backend!(
    s1_file_of_21_mb_reads_back_identical,
    s2_image_derivatives_from_a_real_jpeg,
    s3_parallel_large_uploads_with_the_same_pmid,
    s6_reverse_shuffled_and_duplicated_chunks,
    s7_upgrade_in_the_middle_of_an_upload,
    s8_trap_inside_finish_commits_nothing,
    upgrade_keeps_blobs_and_live_sessions,
    refusals_are_typed_errors_not_traps,
);

const SIZE_21MB: usize = 21_827_484;

fn s1_file_of_21_mb_reads_back_identical(b: &mut dyn Backend) {
    let alice = user(1);
    let cap = b.capsule(alice);
    let data = file(SIZE_21MB, 1);
    let blob = b.upload(alice, cap, &data, Some("mem_1"));
    assert_eq!(blob.size, data.len() as u64);
    assert_eq!(blob.chunk_count, 13);
    assert_eq!(blob.sha256.to_vec(), sha(&data));
    assert!(b.read_blob(alice, &blob) == data, "bytes differ");
    let r: Result<ByteBuf> = b.q(alice, "blobs_read_range", (blob.id, 1_799_000u64, 2_000u64));
    assert_eq!(r.unwrap().as_slice(), &data[1_799_000..1_801_000]);
    let last: Result<ByteBuf> = b.q(alice, "blobs_read_range", (blob.id, data.len() as u64 - 10, 10u64));
    assert_eq!(last.unwrap().as_slice(), &data[data.len() - 10..]);
}

fn s2_image_derivatives_from_a_real_jpeg(b: &mut dyn Backend) {
    // A real photo-like JPEG: gradients plus texture, 3000 x 2000.
    let photo = photo(3000, 2000);
    let original = jpeg_bytes(&photo);
    let display = fit(&photo, 2048);
    let thumb = fit(&photo, 512);
    let placeholder = fit(&photo, 32);
    assert_eq!((display.width(), display.height()), (2048, 1365));
    assert_eq!((thumb.width(), thumb.height()), (512, 341));
    assert_eq!((placeholder.width(), placeholder.height()), (32, 21));
    let alice = user(2);
    let cap = b.capsule(alice);
    for (kind, bytes) in [
        ("original", original),
        ("display", jpeg_bytes(&display)),
        ("thumbnail", jpeg_bytes(&thumb)),
        ("placeholder", jpeg_bytes(&placeholder)),
    ] {
        let blob = b.upload(alice, cap, &bytes, Some("photo_1"));
        let back = b.read_blob(alice, &blob);
        assert!(back == bytes, "{kind} differs after the round trip");
        let decoded = image::load_from_memory(&back).expect("decode what came back");
        println!("{kind}: {} bytes, {}x{}", bytes.len(), decoded.width(), decoded.height());
    }
}

/// Seed bug: parallel uploads sharing a provisional memory id collided.
fn s3_parallel_large_uploads_with_the_same_pmid(b: &mut dyn Backend) {
    let alice = user(3);
    let cap = b.capsule(alice);
    let files: Vec<Vec<u8>> = (0..3).map(|i| file(12_000_000 + i * 77_777, 30 + i as u64)).collect();
    let sessions: Vec<Session> = files.iter().map(|f| b.begin(alice, cap, f.len(), Some("mem_same"))).collect();
    let max = sessions.iter().map(|s| s.chunk_count).max().unwrap();
    for i in 0..max {
        for (s, f) in sessions.iter().zip(&files) {
            if i < s.chunk_count {
                b.put(alice, s, i, f).unwrap();
            }
        }
    }
    for (s, f) in sessions.iter().zip(&files) {
        let blob = b.finish(alice, s, f).0.unwrap();
        assert!(b.read_blob(alice, &blob) == *f, "session {} got another upload's bytes", s.id);
    }
}

/// Seed bug: a rolling hash that broke on retries and reordering.
fn s6_reverse_shuffled_and_duplicated_chunks(b: &mut dyn Backend) {
    let alice = user(6);
    let cap = b.capsule(alice);
    let data = file(SIZE_21MB, 6);
    let s = b.begin(alice, cap, data.len(), None);
    let n = s.chunk_count;
    let mut order: Vec<u32> = (0..n).rev().collect();
    order.extend((0..n).map(|i| (i * 5 + 2) % n)); // a shuffled pass of duplicates
    order.extend([0, n - 1, 3]);
    for i in order {
        b.put(alice, &s, i, &data).unwrap();
    }
    let st = b.status(alice, s.id).unwrap();
    assert_eq!((st.received_chunks, st.received_bytes), (n, data.len() as u64));
    let (blob, calls) = b.finish(alice, &s, &data);
    let blob = blob.unwrap();
    println!("reverse order: finish took {calls} calls (bounded hashing per message)");
    assert!(b.read_blob(alice, &blob) == data);
}

/// Seed bug: heap state lost on upgrade.
fn s7_upgrade_in_the_middle_of_an_upload(b: &mut dyn Backend) {
    let alice = user(7);
    let cap = b.capsule(alice);
    let data = file(9_000_001, 7);
    let s = b.begin(alice, cap, data.len(), Some("m7"));
    for i in [0, 1, 3] {
        b.put(alice, &s, i, &data).unwrap();
    }
    b.upgrade(canister_wasm()).expect("upgrade");
    for i in [2, 5, 4] {
        b.put(alice, &s, i, &data).unwrap();
    }
    let blob = b.finish(alice, &s, &data).0.unwrap();
    assert!(b.read_blob(alice, &blob) == data);
    let s2 = b.begin(alice, cap, 10, None);
    assert!(s2.id > s.id, "session ids are never reused across upgrades");
}

fn s8_trap_inside_finish_commits_nothing(b: &mut dyn Backend) {
    let alice = user(8);
    let cap = b.capsule(alice);
    // Twin uploads of the same size (other bytes: identical ones would be deduplicated)
    // measure what finish costs, the first warming the maps up, so the traps below land
    // at chosen points inside finish, up to its last instructions.
    let files: Vec<Vec<u8>> = (0..3).map(|i| file(5_000_000, 80 + i)).collect();
    let sessions: Vec<Session> = files.iter().map(|f| b.begin(alice, cap, f.len(), None)).collect();
    for i in 0..sessions[0].chunk_count {
        for (s, f) in sessions.iter().zip(&files) {
            b.put(alice, s, i, f).unwrap();
        }
    }
    for (s, f) in sessions.iter().zip(&files).take(2) {
        b.finish(alice, s, f).0.unwrap();
    }
    let (s, data) = (&sessions[2], &files[2]);
    let Some(cost) = b.last_instructions() else {
        eprintln!("skipped on {}: it cannot count or lower instructions", b.name());
        return;
    };
    let before = b.stats();
    for permille in [300u64, 600, 800, 900, 950, 980, 990] {
        assert!(b.set_update_limit(Some(cost * permille / 1000)));
        let args = candid::encode_args((s.id, ByteBuf::from(sha(data)), data.len() as u64)).unwrap();
        let reject = b.update(alice, "uploads_finish", args).map(|_| permille).expect_err("finish must trap under the lowered limit");
        assert_eq!(reject.code, 5, "{}", reject.message);
        assert!(reject.message.contains("instruction limit"), "{}", reject.message);
        b.set_update_limit(None);
        assert_eq!(b.stats(), before, "a finish trapped at {permille} permille of its cost left state behind");
        assert_eq!(b.status(alice, s.id).unwrap().state, SessionState::Open);
    }
    let blob = b.finish(alice, s, data).0.expect("finish under the normal limit");
    println!("finish of 5 MB: {cost} instructions; trapped at 30%..99% of that with nothing committed");
    assert!(b.read_blob(alice, &blob) == *data);
    assert_eq!(b.stats().blobs, before.blobs + 1);
}

fn upgrade_keeps_blobs_and_live_sessions(b: &mut dyn Backend) {
    let alice = user(9);
    let cap = b.capsule(alice);
    let done = file(4_000_000, 90);
    let blob = b.upload(alice, cap, &done, None);
    let open = file(4_000_000, 91);
    let s = b.begin(alice, cap, open.len(), None);
    b.put(alice, &s, 1, &open).unwrap();
    let stats = b.stats();
    for _ in 0..2 {
        b.upgrade(canister_wasm()).expect("upgrade");
    }
    assert_eq!(b.stats(), stats);
    assert!(b.read_blob(alice, &blob) == done);
    let listed: Vec<Session> = b.q(alice, "uploads_list", ());
    assert_eq!(listed.iter().map(|s| s.id).collect::<Vec<_>>(), vec![s.id]);
    for i in [0, 2] {
        b.put(alice, &s, i, &open).unwrap();
    }
    let blob2 = b.finish(alice, &s, &open).0.unwrap();
    assert!(blob2.id > blob.id);
    assert!(b.read_blob(alice, &blob2) == open);
}

/// Hostile input through Candid: typed errors, never a trap, nothing changed.
fn refusals_are_typed_errors_not_traps(b: &mut dyn Backend) {
    let alice = user(10);
    let mallory = user(11);
    let anon = candid::Principal::anonymous();
    let cap = b.capsule(alice);
    let data = file(2_000_000, 10);
    let s = b.begin(alice, cap, data.len(), None);
    b.put(alice, &s, 0, &data).unwrap();
    let before = b.stats();
    let max_chunk = vec![0u8; 1_900_000];
    let cases: Vec<(&str, Principal, &str, Vec<u8>, &str)> = vec![
        ("anonymous begin", anon, "uploads_begin", candid::encode_one(BeginArgs { capsule_id: cap, size: 1, chunk_size: None, sha256: None, mime: String::new(), name: String::new(), pmid: None, idempotency_key: None }).unwrap(), "Unauthorized"),
        // a chunk nobody but the session's creator may put: inspect_message turns it away
        ("stranger put", mallory, "uploads_put_chunk", candid::encode_args((s.id, 1u32, ByteBuf::from(vec![0u8; 200_000]))).unwrap(), "inspect"),
        ("oversize chunk", alice, "uploads_put_chunk", candid::encode_args((s.id, 1u32, ByteBuf::from(max_chunk))).unwrap(), "InvalidArgument"),
        ("index out of range", alice, "uploads_put_chunk", candid::encode_args((s.id, 9u32, ByteBuf::from(vec![1u8]))).unwrap(), "InvalidArgument"),
        ("unknown session", alice, "uploads_finish", candid::encode_args((999u64, ByteBuf::from(sha(&data)), 5u64)).unwrap(), "NotFound"),
        ("missing chunks", alice, "uploads_finish", candid::encode_args((s.id, ByteBuf::from(sha(&data)), data.len() as u64)).unwrap(), "InvalidArgument"),
        ("anonymous capsule", anon, "capsules_create", candid::encode_one(CapsuleCreateArgs { name: "x".into() }).unwrap(), "Unauthorized"),
    ];
    for (what, caller, method, arg, kind) in cases {
        let reply = b.update(caller, method, arg);
        if kind == "inspect" {
            let r = reply.expect_err(what);
            assert_eq!(r.code, ic_host::reject_code::CANISTER_REJECT, "{what}: {}", r.message);
            continue;
        }
        let reply = reply.unwrap_or_else(|r| panic!("{what}: trapped: {}", r.message));
        let err = match candid::decode_one::<Result<candid::Reserved>>(&reply) {
            Ok(Err(e)) => e,
            other => panic!("{what}: expected an error, got {other:?}"),
        };
        assert_eq!(err.kind(), kind, "{what}: {err}");
    }
    // garbage that is not Candid at all is turned away by inspect_message (a call from
    // another canister skips that and traps in the CDK's decoder): nothing changes
    let r = b.update(alice, "uploads_put_chunk", vec![1, 2, 3]).expect_err("garbage");
    assert_eq!(r.code, ic_host::reject_code::CANISTER_REJECT, "{}", r.message);
    assert_eq!(b.stats(), before, "refusals changed state");
    // an argument over the 2 MiB ingress limit never reaches the canister
    let huge = candid::encode_args((s.id, 1u32, ByteBuf::from(vec![0u8; 2 << 20]))).unwrap();
    assert!(b.update(alice, "uploads_put_chunk", huge).is_err());
    b.put(alice, &s, 1, &data).unwrap();
    let blob = b.finish(alice, &s, &data).0.unwrap();
    assert!(b.read_blob(alice, &blob) == data);
}
