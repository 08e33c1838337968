//! The upload domain over an in-memory stable memory: seed bugs, bad input, cost.

mod common;

use backend::api::{BeginArgs, Error, SessionState};
use backend::storage::OwnerSessionKey;
use common::*;

#[test]
fn file_of_21_mb_in_chunks_reads_back_identical() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(21_827_484, 1);
    let s = w.begin(alice, cap, data.len(), Some("mem_1"));
    assert_eq!(s.chunk_count, 13);
    for i in 0..s.chunk_count {
        w.put(alice, &s, i, &data).unwrap();
    }
    let blob = w.finish(alice, &s, &sha(&data), data.len()).unwrap();
    assert_eq!(blob.sha256.as_slice(), sha(&data).as_slice());
    assert_eq!(w.read_all(alice, &blob), data);
    // a range that straddles a chunk boundary
    let c = w.ctx(alice);
    let r = w.state.blobs_read_range(&c, blob.id, 1_799_990, 20).unwrap();
    assert_eq!(r, &data[1_799_990..1_800_010]);
    let stats = w.state.stats();
    assert_eq!((stats.blobs, stats.blob_bytes, stats.open_sessions, stats.session_bytes), (1, data.len() as u64, 0, 0));
}

/// Seed bug: parallel uploads that share a provisional memory id overwrote each other's
/// chunks, because keys were `(sha256(pmid), idx)`. Keys here include the session id.
#[test]
fn seed_same_pmid_in_parallel_never_collides() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let files: Vec<Vec<u8>> = (0..4).map(|i| file(5 * MB + i * 1000, 10 + i as u64)).collect();
    let sessions: Vec<_> = files.iter().map(|f| w.begin(alice, cap, f.len(), Some("mem_123"))).collect();
    // interleave: chunk i of every session before chunk i+1 of any
    for i in 0..sessions[0].chunk_count {
        for (s, f) in sessions.iter().zip(&files) {
            w.put(alice, s, i, f).unwrap();
        }
    }
    for (s, f) in sessions.iter().zip(&files) {
        let blob = w.finish(alice, s, &sha(f), f.len()).unwrap();
        assert_eq!(&w.read_all(alice, &blob), f, "session {} read back other bytes", s.id);
    }
    assert_eq!(w.state.stats().blobs, 4);
}

/// Seed bug: a rolling hash that fed chunks in arrival order broke on retries and on
/// reordering. Here each byte is hashed once, in file order, whatever the arrival order.
#[test]
fn seed_rolling_hash_survives_reordering_and_retries() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(21 * MB, 2);
    let s = w.begin(alice, cap, data.len(), None);
    let n = s.chunk_count;
    // reverse order, then every chunk again (identical retries), then a shuffled pass
    let mut order: Vec<u32> = (0..n).rev().collect();
    order.extend(0..n);
    order.extend((0..n).map(|i| (i * 7 + 3) % n));
    for i in order {
        w.put(alice, &s, i, &data).unwrap();
    }
    let st = w.state.uploads_status(&w.ctx(alice), s.id).unwrap();
    assert_eq!(st.received_chunks, n, "retries must not double count");
    assert_eq!(st.received_bytes, data.len() as u64);
    let blob = w.finish(alice, &s, &sha(&data), data.len()).unwrap();
    assert_eq!(w.read_all(alice, &blob), data);
}

#[test]
fn different_bytes_for_a_received_chunk_is_a_conflict_and_changes_nothing() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(3 * MB, 3);
    let s = w.begin(alice, cap, data.len(), None);
    w.put(alice, &s, 0, &data).unwrap();
    let before = w.mem.snapshot();
    let mut evil = chunk_of(&s, 0, &data).to_vec();
    evil[1000] ^= 1;
    let c = w.ctx(alice);
    let err = w.state.uploads_put_chunk(&c, s.id, 0, &evil).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
    assert!(w.mem.snapshot() == before, "a refused put changed stable memory");
    w.put(alice, &s, 1, &data).unwrap();
    w.finish(alice, &s, &sha(&data), data.len()).unwrap();
}

/// Seed bug: the live hasher sat only in heap memory and was lost on upgrade. Here its
/// state is saved with the session on every put; an upgrade mid-upload loses nothing,
/// and ids never repeat across upgrades.
#[test]
fn seed_upgrade_mid_upload_loses_nothing() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(10 * MB, 4);
    let s = w.begin(alice, cap, data.len(), Some("m"));
    for i in [0, 1, 4, 5] {
        w.put(alice, &s, i, &data).unwrap();
    }
    w.upgrade();
    for i in [3, 2] {
        w.put(alice, &s, i, &data).unwrap();
    }
    w.upgrade();
    let st = w.state.uploads_status(&w.ctx(alice), s.id).unwrap();
    assert_eq!(st.received_chunks, 6);
    let blob = w.finish(alice, &s, &sha(&data), data.len()).unwrap();
    assert_eq!(w.read_all(alice, &blob), data);
    w.upgrade();
    let s2 = w.begin(alice, cap, 10, None);
    assert!(s2.id > s.id, "session ids must never be reused across upgrades");
    for i in 0..1 {
        w.put(alice, &s2, i, &[7; 10]).unwrap();
    }
    let b2 = w.finish(alice, &s2, &sha(&[7; 10]), 10).unwrap();
    assert!(b2.id > blob.id, "blob ids must never be reused across upgrades");
    assert_eq!(w.read_all(alice, &blob), data, "old blob intact after upgrades");
}

#[test]
fn finish_twice_returns_the_same_blob() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(100_000, 5);
    let s = w.begin(alice, cap, data.len(), None);
    w.put(alice, &s, 0, &data).unwrap();
    let a = w.finish(alice, &s, &sha(&data), data.len()).unwrap();
    let b = w.finish(alice, &s, &sha(&data), data.len()).unwrap();
    assert_eq!(a, b);
    assert_eq!(w.state.stats().blobs, 1);
}

#[test]
fn checksum_mismatch_leaves_the_session_open_and_unchanged() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(2 * MB, 6);
    let s = w.begin(alice, cap, data.len(), None);
    for i in 0..2 {
        w.put(alice, &s, i, &data).unwrap();
    }
    let before = w.mem.snapshot();
    let err = w.finish(alice, &s, &sha(b"something else"), data.len()).unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch(ref m) if m.contains(&hex(&sha(&data)))), "{err}");
    assert!(w.mem.snapshot() == before);
    let st = w.state.uploads_status(&w.ctx(alice), s.id).unwrap();
    assert_eq!(st.state, SessionState::Open);
    w.finish(alice, &s, &sha(&data), data.len()).unwrap();
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn idempotency_key_returns_the_same_live_session() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let args = BeginArgs { idempotency_key: Some("photo-1".into()), ..begin_args(cap, 5 * MB as u64, None) };
    let c = w.ctx(alice);
    let a = w.state.uploads_begin(&c, args.clone()).unwrap();
    w.put(alice, &a, 1, &file(5 * MB, 7)).unwrap();
    let b = w.state.uploads_begin(&c, args.clone()).unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!(b.received, vec![backend::api::ChunkRange { start: 1, end: 2 }], "resume sees what arrived");
    let other = BeginArgs { size: 6 * MB as u64, ..args.clone() };
    assert!(matches!(w.state.uploads_begin(&c, other), Err(Error::Conflict(_))));
    // another caller with the same key gets its own session (needs write access first)
    assert_eq!(w.state.uploads_list(&c).len(), 1);
}

#[test]
fn expired_sessions_refuse_chunks() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(2 * MB, 8);
    let s = w.begin(alice, cap, data.len(), None);
    let ttl = w.state.upload_config().session_ttl_ns;
    w.now += ttl / 2;
    w.put(alice, &s, 0, &data).unwrap(); // refreshes the TTL
    w.now += ttl - 1;
    w.put(alice, &s, 1, &data).unwrap();
    w.now += ttl;
    let before = w.mem.snapshot();
    let c = w.ctx(alice);
    assert!(matches!(w.state.uploads_finish(&c, s.id, &sha(&data), data.len() as u64), Err(Error::Expired(_))));
    assert!(matches!(w.put(alice, &s, 1, &data), Err(Error::Expired(_))));
    assert!(w.mem.snapshot() == before);
    assert!(w.state.uploads_list(&c).is_empty());
}

#[test]
fn abort_frees_chunks_for_reuse() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(9 * MB, 9);
    let s = w.begin(alice, cap, data.len(), None);
    for i in 0..s.chunk_count {
        w.put(alice, &s, i, &data).unwrap();
    }
    let grown = w.state.stats().arena_bytes;
    w.state.uploads_abort(&w.ctx(alice), s.id).unwrap();
    w.state.uploads_abort(&w.ctx(alice), s.id).unwrap(); // idempotent
    let st = w.state.stats();
    assert_eq!((st.session_bytes, st.gc_pending_bytes), (0, data.len() as u64));
    // housekeeping frees the chunks in bounded passes
    while w.state.gc_pass(w.now).more {}
    let st = w.state.stats();
    assert_eq!((st.gc_pending_bytes, st.bytes_freed_total), (0, data.len() as u64));
    let s2 = w.begin(alice, cap, data.len(), None);
    for i in 0..s2.chunk_count {
        w.put(alice, &s2, i, &data).unwrap();
    }
    assert_eq!(w.state.stats().arena_bytes, grown, "the second upload reused the freed space");
    let blob = w.finish(alice, &s2, &sha(&data), data.len()).unwrap();
    assert_eq!(w.read_all(alice, &blob), data);
    assert!(matches!(w.put(alice, &s, 0, &data), Err(Error::Conflict(_))));
}

/// Every bad argument: the right typed error, and not one byte of stable memory changed.
#[test]
fn bad_input_gets_a_typed_error_and_changes_nothing() {
    let mut w = World::new();
    let alice = user(1);
    let mallory = user(66);
    let anon = candid::Principal::anonymous();
    let cap = w.capsule(alice);
    let data = file(4 * MB + 5, 11);
    let s = w.begin(alice, cap, data.len(), None);
    w.put(alice, &s, 0, &data).unwrap();
    let done = w.begin(alice, cap, 10, None);
    w.put(alice, &done, 0, &[1; 10]).unwrap();
    w.finish(alice, &done, &sha(&[1; 10]), 10).unwrap();
    let aborted = w.begin(alice, cap, 10, None);
    w.state.uploads_abort(&w.ctx(alice), aborted.id).unwrap();
    let max = w.state.upload_config().max_file_size;
    let full = sha(&data);

    type Case<'a> = (&'a str, Box<dyn Fn(&mut World) -> Result<(), Error> + 'a>, &'a str);
    let b = |f: BeginArgs| move |w: &mut World| w.state.uploads_begin(&w.ctx(alice), f.clone()).map(|_| ());
    let cases: Vec<Case> = vec![
        ("anonymous begin", Box::new(|w: &mut World| w.state.uploads_begin(&w.ctx(anon), begin_args(cap, 10, None)).map(|_| ())), "Unauthorized"),
        ("stranger begin", Box::new(|w: &mut World| w.state.uploads_begin(&w.ctx(mallory), begin_args(cap, 10, None)).map(|_| ())), "NotFound"),
        ("unknown capsule", Box::new(b(begin_args(999, 10, None))), "NotFound"),
        ("zero size", Box::new(b(begin_args(cap, 0, None))), "InvalidArgument"),
        ("size over limit", Box::new(b(begin_args(cap, max + 1, None))), "QuotaExceeded"),
        ("chunk size too small", Box::new(b(BeginArgs { chunk_size: Some(65_535), ..begin_args(cap, 10, None) })), "InvalidArgument"),
        ("chunk size too large", Box::new(b(BeginArgs { chunk_size: Some(1_900_001), ..begin_args(cap, 10, None) })), "InvalidArgument"),
        ("short sha256", Box::new(b(BeginArgs { sha256: Some(digest_buf(&[1; 31])), ..begin_args(cap, 10, None) })), "InvalidArgument"),
        ("huge name", Box::new(b(BeginArgs { name: "x".repeat(10_000), ..begin_args(cap, 10, None) })), "InvalidArgument"),
        ("put unknown session", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(alice), 999, 0, &[0; 10]).map(|_| ())), "NotFound"),
        ("put foreign session", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(mallory), s.id, 1, chunk_of(&s, 1, &data)).map(|_| ())), "NotFound"),
        ("put anonymous", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(anon), s.id, 1, chunk_of(&s, 1, &data)).map(|_| ())), "NotFound"),
        ("put idx out of range", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(alice), s.id, 3, &[0; 5]).map(|_| ())), "InvalidArgument"),
        ("chunk too long", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(alice), s.id, 1, &vec![0; CHUNK as usize + 1]).map(|_| ())), "InvalidArgument"),
        ("chunk too short", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(alice), s.id, 1, &[0; 100]).map(|_| ())), "InvalidArgument"),
        ("last chunk wrong length", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(alice), s.id, 2, &[0; 6]).map(|_| ())), "InvalidArgument"),
        ("put finished session", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(alice), done.id, 0, &[1; 10]).map(|_| ())), "Conflict"),
        ("put aborted session", Box::new(|w: &mut World| w.state.uploads_put_chunk(&w.ctx(alice), aborted.id, 0, &[1; 10]).map(|_| ())), "Conflict"),
        ("finish missing chunks", Box::new(|w: &mut World| w.state.uploads_finish(&w.ctx(alice), s.id, &full, data.len() as u64).map(|_| ())), "InvalidArgument"),
        ("finish wrong length", Box::new(|w: &mut World| w.state.uploads_finish(&w.ctx(alice), s.id, &full, 7).map(|_| ())), "InvalidArgument"),
        ("finish short digest", Box::new(|w: &mut World| w.state.uploads_finish(&w.ctx(alice), s.id, &[0; 3], data.len() as u64).map(|_| ())), "InvalidArgument"),
        ("finish foreign", Box::new(|w: &mut World| w.state.uploads_finish(&w.ctx(mallory), s.id, &full, data.len() as u64).map(|_| ())), "NotFound"),
        ("finish aborted", Box::new(|w: &mut World| w.state.uploads_finish(&w.ctx(alice), aborted.id, &full, 10).map(|_| ())), "Conflict"),
        ("finish again, other digest", Box::new(|w: &mut World| w.state.uploads_finish(&w.ctx(alice), done.id, &full, 10).map(|_| ())), "Conflict"),
        ("abort foreign", Box::new(|w: &mut World| w.state.uploads_abort(&w.ctx(mallory), s.id)), "NotFound"),
        ("abort finished", Box::new(|w: &mut World| w.state.uploads_abort(&w.ctx(alice), done.id)), "Conflict"),
        ("status foreign", Box::new(|w: &mut World| w.state.uploads_status(&w.ctx(mallory), s.id).map(|_| ())), "NotFound"),
        ("read blob as stranger", Box::new(|w: &mut World| w.state.blobs_read_chunk(&w.ctx(mallory), 1, 0).map(|_| ())), "NotFound"),
        ("read blob anonymous", Box::new(|w: &mut World| w.state.blobs_meta(&w.ctx(anon), 1).map(|_| ())), "NotFound"),
        ("read unknown blob", Box::new(|w: &mut World| w.state.blobs_meta(&w.ctx(alice), 77).map(|_| ())), "NotFound"),
        ("read chunk out of range", Box::new(|w: &mut World| w.state.blobs_read_chunk(&w.ctx(alice), 1, 1).map(|_| ())), "InvalidArgument"),
        ("read range past end", Box::new(|w: &mut World| w.state.blobs_read_range(&w.ctx(alice), 1, 5, 6).map(|_| ())), "InvalidArgument"),
        ("read range overflow", Box::new(|w: &mut World| w.state.blobs_read_range(&w.ctx(alice), 1, u64::MAX, 2).map(|_| ())), "InvalidArgument"),
        ("read range too long", Box::new(|w: &mut World| w.state.blobs_read_range(&w.ctx(alice), 1, 0, 3 << 20).map(|_| ())), "InvalidArgument"),
        ("anonymous capsule", Box::new(|w: &mut World| w.state.capsules_create(&w.ctx(anon), backend::api::CapsuleCreateArgs { name: "x".into() }).map(|_| ())), "Unauthorized"),
        ("empty capsule name", Box::new(|w: &mut World| w.state.capsules_create(&w.ctx(alice), backend::api::CapsuleCreateArgs { name: " ".into() }).map(|_| ())), "InvalidArgument"),
    ];
    for (name, call, kind) in &cases {
        let before = w.mem.snapshot();
        let stats = w.state.stats();
        let err = call(&mut w).expect_err(name);
        assert_eq!(err.kind(), *kind, "{name}: {err}");
        assert!(!err.message().is_empty(), "{name}: empty message");
        assert!(w.mem.snapshot() == before, "{name}: stable memory changed");
        assert_eq!(w.state.stats(), stats, "{name}: stats changed");
    }
    println!("{} bad-input cases refused with typed errors, no state change", cases.len());
    // and the session that survived all of that still completes
    for i in 1..3 {
        w.put(alice, &s, i, &data).unwrap();
    }
    let blob = w.finish(alice, &s, &full, data.len()).unwrap();
    assert_eq!(w.read_all(alice, &blob), data);
}

#[test]
fn live_session_quota_is_enforced() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let max = w.state.upload_config().max_live_sessions_per_caller;
    for _ in 0..max {
        w.begin(alice, cap, 10, None);
    }
    let before = w.mem.snapshot();
    let err = w.state.uploads_begin(&w.ctx(alice), begin_args(cap, 10, None)).unwrap_err();
    assert!(matches!(err, Error::QuotaExceeded(_)), "{err}");
    assert!(w.mem.snapshot() == before);
}

/// Stable bytes written per put_chunk, measured by counting every write to the
/// underlying stable memory. Target: within 5% of the chunk size.
#[test]
fn stable_bytes_written_per_chunk_stay_close_to_chunk_size() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    // a few sessions in flight so the session and chunk maps have real neighbours
    let data = file(40 * MB, 12);
    let sessions: Vec<_> = (0..3).map(|_| w.begin(alice, cap, data.len(), Some("m"))).collect();
    let mut worst = 0.0f64;
    let mut total = 0u64;
    let mut count = 0u64;
    for i in 0..sessions[0].chunk_count - 1 {
        for s in &sessions {
            w.mem.reset();
            w.put(alice, s, i, &data).unwrap();
            let ratio = w.mem.written.get() as f64 / CHUNK as f64;
            worst = worst.max(ratio);
            total += w.mem.written.get();
            count += 1;
        }
    }
    let mean = total as f64 / count as f64;
    println!(
        "stable bytes written per {CHUNK}-byte put_chunk: mean {mean:.0} ({:.4}x), worst {:.4}x over {count} puts",
        mean / CHUNK as f64,
        worst
    );
    assert!(worst <= 1.05, "a put wrote {worst:.3}x its chunk size");
}

/// Finish neither copies nor re-reads the file: its stable traffic does not grow with
/// the file size.
#[test]
fn finish_cost_does_not_grow_with_file_size() {
    let mut traffic = vec![];
    for size in [MB, 60 * MB] {
        let mut w = World::new();
        let alice = user(1);
        let cap = w.capsule(alice);
        let data = file(size, 13);
        let s = w.begin(alice, cap, data.len(), None);
        for i in 0..s.chunk_count {
            w.put(alice, &s, i, &data).unwrap();
        }
        w.mem.reset();
        let c = w.ctx(alice);
        w.state.uploads_finish(&c, s.id, &sha(&data), data.len() as u64).unwrap();
        traffic.push((size, w.mem.written.get(), w.mem.read.get()));
    }
    println!("finish stable traffic (size, written, read): {traffic:?}");
    let (small, big) = (traffic[0], traffic[1]);
    assert!(big.1 < 32 * 1024 && big.2 < 64 * 1024, "finish touched too much: {big:?}");
    assert!(big.1 <= small.1 * 2 && big.2 <= small.2 * 2 + 4096, "finish grew with size: {traffic:?}");
}

// ---------- session records (issue 23, item 5) ----------

const DAY_NS: u64 = 24 * 3600 * 1_000_000_000;

/// What the stable maps hold now, read through a second handle on the same memory
/// (opening it writes nothing): `finished` entries, session records, and the record
/// entries `owner` holds in `owner_sessions`.
fn indexes(w: &World, owner: candid::Principal) -> (u64, u64, usize) {
    let before = w.mem.snapshot();
    let st = backend::storage::Stable::open(w.mem.clone()).expect("open a second handle");
    let records = st
        .owner_sessions
        .range(OwnerSessionKey::record(owner, 0)..=OwnerSessionKey::record(owner, u64::MAX))
        .count();
    let out = (st.finished.len(), st.sessions.len(), records);
    drop(st);
    assert!(w.mem.snapshot() == before, "reading the maps wrote to stable memory");
    out
}

/// Bytes of stable memory the maps a session record lives in have grown to (records,
/// expiry index, owner index), in 64 KiB pages of their virtual memories.
fn session_map_bytes(w: &World) -> u64 {
    use ic_stable_structures::Memory;
    let st = backend::storage::Stable::open(w.mem.clone()).expect("open a second handle");
    let pages = st.sessions.into_memory().size() + st.session_expiry.into_memory().size() + st.owner_sessions.into_memory().size();
    pages * 65_536
}

fn housekeeping(w: &mut World) {
    while w.state.gc_pass(w.now).more {}
}

fn dedup_begin(w: &mut World, who: candid::Principal, cap: u64, data: &[u8]) -> backend::api::Session {
    let c = w.ctx(who);
    let args = BeginArgs { sha256: Some(digest_buf(&sha(data))), ..begin_args(cap, data.len() as u64, None) };
    w.state.uploads_begin(&c, args).expect("dedup begin")
}

/// Every dedup begin and every finish left a `finished` entry that housekeeping never
/// removed. Now only a session that made its blob has one (it answers a retried
/// finish after the record is gone, and goes with the blob); sessions that found their
/// bytes stored leave nothing behind once housekeeping drops their records, and every
/// record entry of the caller goes with its record. Entries written before this rule
/// (a dedup session's, restored here through a second handle as the old code wrote it)
/// go when their record is dropped.
#[test]
fn finished_entries_go_with_their_session_records() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(100_000, 23);
    let s = w.begin(alice, cap, data.len(), None);
    w.put(alice, &s, 0, &data).unwrap();
    let blob = w.finish(alice, &s, &sha(&data), data.len()).unwrap();
    let begun: Vec<u64> = (0..300).map(|_| dedup_begin(&mut w, alice, cap, &data).id).collect();
    // the same bytes uploaded again without a digest: found at finish
    let again = w.begin(alice, cap, data.len(), None);
    w.put(alice, &again, 0, &data).unwrap();
    assert_eq!(w.finish(alice, &again, &sha(&data), data.len()).unwrap(), blob);
    assert_eq!(indexes(&w, alice), (1, 302, 302), "one finished entry: the blob's own session");
    // A dedup session's entry as the old code wrote it.
    let legacy = begun[0];
    {
        let mut st = backend::storage::Stable::open(w.mem.clone()).unwrap();
        st.finished.insert(legacy, blob.id);
    }
    w.upgrade();
    assert_eq!(indexes(&w, alice).0, 2);
    // Within the TTL every session answers from its record.
    w.now += DAY_NS - 1;
    housekeeping(&mut w);
    let c = w.ctx(alice);
    for sid in [s.id, again.id, legacy, begun[299]] {
        assert_eq!(w.state.uploads_finish(&c, sid, &sha(&data), data.len() as u64), Ok(blob.clone()), "session {sid}");
    }
    // One TTL after they finished, housekeeping drops every record, and with them every
    // entry but the blob's own.
    w.now += 2;
    housekeeping(&mut w);
    assert_eq!(indexes(&w, alice), (1, 0, 0), "finished entries, session records, record entries after housekeeping");
    let c = w.ctx(alice);
    assert_eq!(w.state.uploads_finish(&c, s.id, &sha(&data), data.len() as u64), Ok(blob.clone()), "the session that made the blob");
    for sid in [again.id, legacy, begun[299]] {
        let r = w.state.uploads_finish(&c, sid, &sha(&data), data.len() as u64);
        assert!(matches!(r, Err(Error::NotFound(_))), "session {sid}: {r:?}");
    }
    // Deleting the blob takes its entry too: nothing is left.
    w.state.blobs_delete(&c, blob.id).unwrap();
    assert_eq!(indexes(&w, alice).0, 0);
}

/// Records count in every state against `max_session_records_per_caller` (set to 1,000): open, expired
/// and not yet collected, aborted, finished (also by dedup at begin); a refusal writes
/// nothing; housekeeping gives the caller its room back. Prints what a record costs in
/// stable memory, largest and typical, and what counting costs.
#[test]
fn session_records_are_bounded_in_every_state() {
    use backend::domain::records::{MAX_KEY_LEN, MAX_TEXT_LEN};
    let max = 1_000usize;
    let mut w = World::new();
    let mut admin = w.ctx(user(99));
    admin.is_controller = true;
    let u = backend::api::ConfigUpdate { max_session_records_per_caller: Some(max as u32), ..Default::default() };
    w.state.admin_set_config(&admin, u).unwrap();
    let (alice, bob) = (user(1), user(2));
    let cap = w.capsule(alice);
    let data = file(1_000, 5);
    let s = w.begin(alice, cap, data.len(), None);
    w.put(alice, &s, 0, &data).unwrap();
    w.finish(alice, &s, &sha(&data), data.len()).unwrap();
    // 10 left open past their expiry (not yet collected), 100 dedup begins, the rest
    // begun with the largest texts and aborted.
    let c = w.ctx(alice);
    for _ in 0..10 {
        w.state.uploads_begin(&c, begin_args(cap, 10, None)).unwrap();
    }
    w.now += DAY_NS;
    for _ in 0..100 {
        dedup_begin(&mut w, alice, cap, &data);
    }
    let big = |n: usize| BeginArgs {
        mime: "m".repeat(MAX_TEXT_LEN),
        name: "n".repeat(MAX_TEXT_LEN),
        pmid: Some("p".repeat(MAX_KEY_LEN)),
        idempotency_key: Some(format!("{n:0width$}", width = MAX_KEY_LEN)),
        ..begin_args(cap, 10_000_000, None)
    };
    let (before, n_big) = (session_map_bytes(&w), max - 111);
    let c = w.ctx(alice);
    for n in 0..n_big {
        let id = w.state.uploads_begin(&c, big(n)).unwrap().id;
        w.state.uploads_abort(&c, id).unwrap();
    }
    let per_big = (session_map_bytes(&w) - before) / n_big as u64;
    assert_eq!(indexes(&w, alice).2, max);
    let snapshot = w.mem.snapshot();
    w.mem.reset();
    for args in [big(max), begin_args(cap, 10, None)] {
        let r = w.state.uploads_begin(&c, args);
        assert!(matches!(&r, Err(Error::QuotaExceeded(m)) if m.contains("max_session_records_per_caller = 1000")), "{r:?}");
    }
    let counting = w.mem.read.get() / 2;
    let r = w.state.uploads_begin(&c, BeginArgs { sha256: Some(digest_buf(&sha(&data))), ..begin_args(cap, data.len() as u64, None) });
    assert!(matches!(r, Err(Error::QuotaExceeded(_))), "a dedup begin counts too: {r:?}");
    assert!(w.mem.snapshot() == snapshot, "a refused begin changed stable memory");
    // Others are not affected; typical records (short texts) for the figure.
    let bob_cap = w.capsule(bob);
    let before = session_map_bytes(&w);
    let c = w.ctx(bob);
    for _ in 0..max {
        let id = w.state.uploads_begin(&c, begin_args(bob_cap, 10_000_000, None)).unwrap().id;
        w.state.uploads_abort(&c, id).unwrap();
    }
    let per_small = (session_map_bytes(&w) - before) / max as u64;
    println!(
        "stable memory per session record (record, expiry and owner index entries, B-tree nodes): ~{per_big} B with every text at its limit, ~{per_small} B with short texts; a begin refused at the bound reads {counting} B of stable memory, the caller's {max} record entries included"
    );
    // One TTL after the last of them ended, housekeeping has dropped them all.
    w.now += DAY_NS;
    housekeeping(&mut w);
    assert_eq!(indexes(&w, alice).1, 0);
    assert_eq!((indexes(&w, alice).2, indexes(&w, bob).2), (0, 0));
    w.state.uploads_begin(&w.ctx(alice), big(0)).expect("room again");
}
