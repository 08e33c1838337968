//! Stable memory is forever: state written by an older layout must be upgraded by the
//! current Wasm, and everything in it must still be there afterwards.
//!
//! `tests/fixtures/layout_v1.state.gz` is an embedded-host state file (stable memory)
//! written by the layout-v1 canister (commit "Wasm-level scenario suite…", before
//! memories existed) with `write_layout_v1_fixture` of commit 995d3ad (the host wrote
//! that single-file format then; it only reads it now):
//! - capsule 1 owned by user(1), user(2) unknown to it;
//! - blob 1: 300,000 bytes (seed 101), blob 2: 100 bytes (seed 102), both finished;
//! - session 3: 150,000 bytes (seed 103) in 64 KiB chunks, chunks 0 and 2 of 3
//!   received, open;
//! - session 4: aborted.
//!
//! `tests/fixtures/layout_v2.state.gz` was written the same way by the layout-2 canister
//! (commit 611fba5) with `write_layout_v2_fixture` of commit ffafb6a; what it holds is
//! listed at `LAYOUT_V2` below.

mod harness;
#[path = "common/verify.rs"]
mod verify;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use backend::api::{self, *};
use harness::*;
use serde_bytes::ByteBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.state.gz"))
}

fn load_fixture() -> Embedded {
    load("layout_v1")
}

/// Loads a fixture onto the current Wasm: an upgrade onto its stable memory, so
/// post_upgrade migrates. Prints what the upgrade cost.
fn load(name: &str) -> Embedded {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture(name)).expect("fixture"))
        .read_to_end(&mut raw)
        .unwrap();
    let tmp = tempfile_path(name);
    std::fs::write(&tmp, raw).unwrap();
    let host = ic_host::Host::load_state(&tmp, canister_wasm());
    // An in-memory host now: the unpacked file (hundreds of MB) is not needed any more.
    let _ = std::fs::remove_file(&tmp);
    let host = host.expect("upgrade old state to the current Wasm");
    let upgrade = host.last_messages().iter().find(|m| m.method.contains("post_upgrade")).map_or(0, |m| m.instructions);
    println!("{name}: post_upgrade (migration) took {upgrade} instructions of the 300 B upgrade limit");
    Embedded::from_host(host)
}

fn tempfile_path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("keepsake-{tag}-{}.state", std::process::id()))
}

#[test]
fn layout_v1_state_upgrades_to_the_current_layout() {
    let mut e = load_fixture();
    let b: &mut dyn Backend = &mut e;
    let alice = user(1);
    let stats: Stats = b.stats();
    assert_eq!(stats.layout_version, backend::storage::LAYOUT_VERSION);
    // Its flat layout is kept (nothing moves), with the capacity that layout has.
    assert_eq!(stats.capacity_bytes, Some(backend::storage::layout::FLAT_CAPACITY_BYTES));
    assert_eq!((stats.blobs, stats.blob_bytes), (2, 300_100));
    assert_eq!(stats.open_sessions, 1);
    for (id, seed, len) in [(1u64, 101u64, 300_000usize), (2, 102, 100)] {
        let meta: api::Result<BlobMeta> = b.q(alice, "blobs_meta", (id,));
        let meta = meta.unwrap();
        assert_eq!(b.read_blob(alice, &meta), file(len, seed), "blob {id} after migration");
    }
    // the open session resumes where v1 left it, and finishes
    let open = file(150_000, 103);
    let s = b.status(alice, 3).unwrap();
    assert_eq!((s.state.clone(), s.received_chunks), (SessionState::Open, 2));
    b.put(alice, &s, 1, &open).unwrap();
    let blob = b.finish(alice, &s, &open).0.unwrap();
    assert!(blob.id > 2, "ids continue after the v1 counters");
    assert_eq!(b.read_blob(alice, &blob), open);
    let again = b.finish(alice, &s, &open).0.unwrap();
    assert_eq!(again, blob);
    let r: api::Result<BlobMeta> =
        b.call(alice, "uploads_finish", (4u64, ByteBuf::from(sha(b"x")), 10u64));
    assert!(matches!(r, Err(api::Error::Conflict(_))), "aborted session stays aborted: {r:?}");
    // Layout-1 blobs belong to no memory: they are listed and can be deleted.
    let page: api::Result<BlobPage> = b.q(alice, "blobs_list", (1u64, None::<u64>, 10u32));
    let listed: Vec<(u64, Option<u32>)> = page.unwrap().blobs.iter().map(|b| (b.id, b.refs)).collect();
    assert_eq!(listed, vec![(1, Some(0)), (2, Some(0)), (blob.id, Some(0))]);
    let r: api::Result<()> = b.call(alice, "blobs_delete", (2u64,));
    r.unwrap();
    assert_eq!(b.stats().blobs, 2);
}

// ---------- layout 2 ----------

const KIB64: u32 = 65_536;

/// The layout-2 fixture, written by the layout-2 Wasm (commit 611fba5) with
/// `write_layout_v2_fixture` of commit ffafb6a (the host wrote the single-file state
/// format then; it only reads it now).
/// It holds:
/// - capsule 1 owned by user(1), user(2) writer, user(3) reader; capsule 2 owned by
///   user(2); config: 50 GB per capsule, a 2-day session TTL;
/// - blob 1 (300,000 bytes, seed 201) in memory 1 with an inline placeholder (900
///   bytes, seed 202); blob 2 (100 bytes, seed 203) in no memory; blob 3 (2 MB, seed
///   204) in capsule 2, in memory 2; blob 4 (70,000 bytes, seed 207) in memory 3,
///   deleted, its chunks queued for housekeeping;
/// - session 5: the bytes of blob 1 again, finished as blob 1 (dedup), its own chunks
///   queued for housekeeping;
/// - session 6: user(1), 150,000 bytes (seed 205) in 64 KiB chunks, chunks 0 and 2
///   received, open; session 7: user(2), 3 x 64 KiB (seed 206), chunk 1 received,
///   open; session 8: aborted.
const LAYOUT_V2: &str = "layout_v2";

/// Real layout-2 state upgraded to layout 3: every byte is still there, the new indexes
/// and reservations are built from it, and everything keeps working.
#[test]
fn layout_v2_state_upgrades_to_the_current_layout() {
    let mut e = load(LAYOUT_V2);
    let b: &mut dyn Backend = &mut e;
    let (alice, bob, carol) = (user(1), user(2), user(3));
    let st = b.stats();
    assert_eq!(st.layout_version, backend::storage::LAYOUT_VERSION);
    assert_eq!(st.capacity_bytes, Some(backend::storage::layout::FLAT_CAPACITY_BYTES), "layout-2 state stays flat");
    let cfg: UploadConfig = b.q(user(1), "upload_config", ());
    assert_eq!(cfg.max_stored_bytes, Some(backend::storage::layout::FLAT_CAPACITY_BYTES), "effective limit");
    assert_eq!((st.blobs, st.blob_bytes, st.memories, st.open_sessions), (3, 2_300_100, 2, 2));
    assert_eq!(st.gc_pending_bytes, 370_000);
    // reservations recomputed from the open sessions
    assert_eq!(st.reserved_bytes, Some(150_000 + 3 * u64::from(KIB64)));
    let c: api::Result<Capsule> = b.q(carol, "capsules_get", (1u64,));
    let c = c.unwrap();
    assert_eq!((c.bytes_used, c.reserved_bytes, c.my_role), (300_100 + 900, Some(150_000 + 3 * u64::from(KIB64)), Some(Role::Reader)));
    assert_eq!((c.writers.clone(), c.invited.clone()), (vec![bob], Some(vec![])), "members stay members");
    let cfg: UploadConfig = b.q(alice, "upload_config", ());
    assert_eq!((cfg.max_capsule_bytes, cfg.session_ttl_ns), (50_000_000_000, 2 * 86_400_000_000_000));
    // every byte
    for (who, id, seed, len) in [(alice, 1u64, 201u64, 300_000usize), (carol, 2, 203, 100), (bob, 3, 204, 2_000_000)] {
        let meta: api::Result<BlobMeta> = b.q(who, "blobs_meta", (id,));
        assert_eq!(b.read_blob(who, &meta.unwrap()), file(len, seed), "blob {id}");
    }
    let m: api::Result<Memory> = b.q(carol, "memories_get", (1u64,));
    let m = m.unwrap();
    assert_eq!(m.assets[1].inline.as_ref().map(|i| i.to_vec()), Some(file(900, 202)));
    assert_eq!((m.meta.taken_at_ns, m.meta.tags.clone()), (Some(7), vec!["t".to_string()]));
    upgraded_layout_v2_serves_http(&mut e);
    let b: &mut dyn Backend = &mut e;
    // blobs by capsule, with references; the orphan can go
    let page: api::Result<BlobPage> = b.q(alice, "blobs_list", (1u64, None::<u64>, 10u32));
    let listed: Vec<(u64, Option<u32>)> = page.unwrap().blobs.iter().map(|b| (b.id, b.refs)).collect();
    assert_eq!(listed, vec![(1, Some(1)), (2, Some(0))]);
    // finished sessions answer a retried finish, also the deduplicated one
    for sid in [1u64, 5] {
        let r: api::Result<BlobMeta> = b.call(alice, "uploads_finish", (sid, ByteBuf::from(sha(&file(300_000, 201))), 300_000u64));
        assert_eq!(r.unwrap().id, 1, "session {sid}");
    }
    // dedup still finds blob 1
    let again = b.upload(alice, 1, &file(300_000, 201), None);
    assert_eq!(again.id, 1);
    // the open sessions resume and finish, within their reservations
    let open = file(150_000, 205);
    let s6 = b.status(alice, 6).unwrap();
    assert_eq!((s6.state.clone(), s6.received_chunks), (SessionState::Open, 2));
    b.put(alice, &s6, 1, &open).unwrap();
    let blob6 = b.finish(alice, &s6, &open).0.unwrap();
    assert_eq!(b.read_blob(alice, &blob6), open);
    assert!(blob6.id > 4, "ids continue after the layout-2 counters");
    // an owner sees and aborts bob's session
    let sessions: api::Result<SessionPage> = b.q(alice, "uploads_page", (UploadsPageArgs { capsule_id: Some(1), cursor: None, limit: None },));
    assert_eq!(sessions.unwrap().sessions.iter().map(|s| s.id).collect::<Vec<_>>(), vec![7]);
    let r: api::Result<()> = b.call(alice, "uploads_abort", (7u64,));
    r.unwrap();
    let c: api::Result<Capsule> = b.q(alice, "capsules_get", (1u64,));
    let c = c.unwrap();
    assert_eq!((c.bytes_used, c.reserved_bytes), (300_100 + 900 + 150_000, Some(0)));
    let r: api::Result<()> = b.call(alice, "blobs_delete", (2u64,));
    r.unwrap();
    // housekeeping frees what layout 2 queued and what was freed since
    b.advance_time(Duration::from_secs(601));
    let st = b.stats();
    assert_eq!((st.gc_pending_bytes, st.open_sessions, st.blobs), (0, 0, 3));
    // capsules created before layout 3 count for their owner
    let page: CapsulePage = b.q(bob, "capsules_page", (None::<u64>, 10u32));
    assert_eq!(page.capsules.iter().map(|c| c.id).collect::<Vec<_>>(), vec![1, 2]);
    let s = b.begin(bob, 2, 10, None);
    assert_eq!(s.capsule_id, 2);
}

/// `http_request` of a memory as `who`, and whether the response verifies as a
/// gateway checks it (the host's root key).
fn http_get(e: &mut Embedded, who: candid::Principal, url: &str, headers: &[(&str, &str)]) -> (HttpResponse, std::result::Result<(), String>) {
    let req = verify::get(url, headers);
    let r = e.host.query(who, "http_request", &candid::encode_one(&req).unwrap());
    let resp: HttpResponse = candid::decode_one(&r.reply.expect("http_request replies")).unwrap();
    let v = verify::verify(&e.host.root_key(), e.host.canister_id().as_slice(), &req, &resp, e.host.time());
    (resp, v)
}

/// Layout-2 memories over HTTP after the upgrade: the certification passes the upgrade
/// starts (timers) backfill the chunk digests of layout-2 uploads, which took none, and
/// certify every asset; then members, and anyone once a memory is public, get certified
/// bytes that are the stored ones.
fn upgraded_layout_v2_serves_http(e: &mut Embedded) {
    let (alice, bob, carol) = (user(1), user(2), user(3));
    let big = file(2_000_000, 204); // blob 3 in memory 2: two 1.8 MB chunks
    let mut passes = 0;
    while http_get(e, bob, "/m/2/original", &[]).0.status_code == 503 {
        passes += 1;
        assert!(passes < 50, "the certification passes never finished");
        (&mut *e as &mut dyn Backend).advance_time(Duration::from_secs(1));
    }
    // The first part, then the part holding byte 1,900,000: both need backfilled digests.
    for (range, first) in [(None, 0u64), (Some("bytes=1900000-"), 1_800_000)] {
        let headers: Vec<(&str, &str)> = range.map(|r| ("Range", r)).into_iter().collect();
        let (r, ok) = http_get(e, bob, "/m/2/original", &headers);
        assert_eq!((r.status_code, ok), (206, Ok(())), "{range:?}");
        let (a, z, total) = verify::content_range(&r);
        assert_eq!((a, total), (first, 2_000_000));
        assert_eq!(r.body.as_slice(), &big[a as usize..=z as usize]);
    }
    // A reader of capsule 1: a one-chunk blob and an inline asset, whole.
    for (kind, data) in [("original", file(300_000, 201)), ("placeholder", file(900, 202))] {
        let (r, ok) = http_get(e, carol, &format!("/m/1/{kind}"), &[]);
        assert_eq!((r.status_code, ok, r.body.as_slice() == data.as_slice()), (200, Ok(()), true), "{kind}");
    }
    // Private to others; public once its owner says so, also by content address.
    let (r, ok) = http_get(e, candid::Principal::anonymous(), "/m/2/original", &[]);
    assert_eq!((r.status_code, ok), (403, Ok(())));
    assert_eq!(http_get(e, alice, "/m/2/original", &[]).0.status_code, 403, "not a member of capsule 2");
    let r: api::Result<()> = (&mut *e as &mut dyn Backend).call(bob, "memories_set_public", (2u64, true));
    r.unwrap();
    let hex: String = sha(&big).iter().map(|b| format!("{b:02x}")).collect();
    for url in ["/m/2/original".to_string(), format!("/b/{hex}")] {
        let (r, ok) = http_get(e, candid::Principal::anonymous(), &url, &[]);
        assert_eq!((r.status_code, ok), (206, Ok(())), "{url}");
        assert_eq!(r.body.as_slice(), &big[..1_800_000], "{url}");
    }
}

/// What the 2 → 3 migration costs per record: layout-2 state with many blobs and open
/// sessions, written by the layout-2 Wasm, upgraded to the current one. Run with
/// `KEEPSAKE_V2_WASM=<layout-2 backend.wasm> cargo test --test layout_migration
/// migration_cost -- --ignored --nocapture`.
#[test]
#[ignore = "needs the layout-2 Wasm; prints the migration's cost per record"]
fn migration_cost_per_record() {
    let v2 = std::fs::read(std::env::var("KEEPSAKE_V2_WASM").expect("KEEPSAKE_V2_WASM")).unwrap();
    let mut figures = Vec::new();
    for n in [200u64, 1000] {
        let host = ic_host::Host::new(&v2, &candid::encode_args(()).unwrap()).unwrap();
        let mut e = Embedded::from_host(host);
        let b: &mut dyn Backend = &mut e;
        let alice = user(1);
        let cap = b.capsule(alice);
        for i in 0..n {
            let data = file(100, 10_000 + i);
            b.upload(alice, cap, &data, None);
            let s = b.begin(alice, cap, 100, None);
            if i % 2 == 0 {
                b.put(alice, &s, 0, &data).unwrap();
            }
            if i % 64 == 63 {
                // stay under the live-session limit: those sessions end
                b.advance_time(Duration::from_secs(25 * 3600));
            }
        }
        let cost = e.host.upgrade(canister_wasm(), &candid::encode_args(()).unwrap()).unwrap();
        let st: Stats = (&mut e as &mut dyn Backend).stats();
        assert_eq!(st.layout_version, backend::storage::LAYOUT_VERSION);
        println!("{n} blobs: migration + post_upgrade {} instructions", cost.instructions);
        figures.push((n, cost.instructions));
    }
    let per = (figures[1].1 - figures[0].1) as f64 / (figures[1].0 - figures[0].0) as f64;
    println!("~{per:.0} instructions per blob (with its session record); 300 B allow ~{:.1} M", 3e11 / per / 1e6);
}
