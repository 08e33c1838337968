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
//!
//! `tests/fixtures/layout_v4.state.gz` was written by the layout-4 canister (commit
//! e376b38, the last before layout 5; its release Wasm's sha256 starts 1c6a3f83) with
//! `write_layout_v4_fixture` below. The host no longer has `save_state`: that test
//! writes the same single-file format (what `ic_host::Host::load_state` reads) from the
//! host's public accessors. Layout 4 kept its certification tree on the heap, so the
//! file holds no tree. It holds (sizes and seeds are the `V4_*` constants below):
//! - capsule 1 owned by user(1), user(2) a reader (invited, accepted);
//! - memory 1 (A, video, public): original = blob 1, 300,000 bytes (seed 401) in 5
//!   chunks of 64 KiB; thumbnail = blob 2, 20,000 bytes (seed 402), one chunk; an inline
//!   placeholder of 600 bytes (seed 403);
//! - memory 2 (B, photo, private): original = blob 3, 50,000 bytes (seed 404), one
//!   chunk; an inline placeholder of 500 bytes (seed 405);
//! - memory 3 (C): original = blob 4, 10,000 bytes (seed 406), and an inline
//!   placeholder (300 bytes, seed 407); made public, then deleted: blob 4 with it, its
//!   10,000 bytes queued for housekeeping;
//! - an open session of user(1): 150,000 bytes (seed 408) in 64 KiB chunks, chunks 0 and
//!   2 of 3 received;
//! - the link secret (from `raw_rand`), and every certification pass of layout 4 run.

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

/// A Wasm module with nothing in it but a memory. A fixture is imported onto it (no
/// `post_upgrade` runs: it has none), then upgraded to the current Wasm: that upgrade is
/// a message the host measures (an import's `post_upgrade` is not recorded).
const EMPTY_MODULE: &[u8] = &[0, b'a', b's', b'm', 1, 0, 0, 0, 5, 3, 1, 0, 1];

/// Loads a fixture onto the current Wasm: an upgrade onto its stable memory, so
/// post_upgrade migrates. Prints what the upgrade cost.
fn load(name: &str) -> Embedded {
    load_measured(name).0
}

/// [`load`], and what the upgrade cost.
fn load_measured(name: &str) -> (Embedded, ic_host::UpgradeCost) {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture(name)).expect("fixture"))
        .read_to_end(&mut raw)
        .unwrap();
    let tmp = tempfile_path(name);
    std::fs::write(&tmp, raw).unwrap();
    let host = ic_host::Host::load_state(&tmp, EMPTY_MODULE);
    // An in-memory host now: the unpacked file (hundreds of MB) is not needed any more.
    let _ = std::fs::remove_file(&tmp);
    let mut host = host.expect("import the state file");
    let cost = host.upgrade(canister_wasm(), &candid::encode_args(()).unwrap()).expect("upgrade old state to the current Wasm");
    println!("{name}: post_upgrade (migration) took {} instructions of the 300 B upgrade limit", cost.post_upgrade);
    (Embedded::from_host(host), cost)
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

// ---------- layout 4 ----------

/// The layout-4 fixture (see the module's doc): written by the layout-4 Wasm (commit
/// e376b38) with `write_layout_v4_fixture`.
const LAYOUT_V4: &str = "layout_v4";

/// `(len, seed)` of what the layout-4 fixture holds.
const V4_VIDEO: (usize, u64) = (300_000, 401);
const V4_THUMB: (usize, u64) = (20_000, 402);
const V4_A_PLACEHOLDER: (usize, u64) = (600, 403);
const V4_PHOTO: (usize, u64) = (50_000, 404);
const V4_B_PLACEHOLDER: (usize, u64) = (500, 405);
const V4_C_ORIGINAL: (usize, u64) = (10_000, 406);
const V4_C_PLACEHOLDER: (usize, u64) = (300, 407);
const V4_OPEN: (usize, u64) = (150_000, 408);
/// Memory ids: A (public video), B (private photo), C (deleted).
const V4_A: u64 = 1;
const V4_B: u64 = 2;
const V4_C: u64 = 3;
/// Blob ids: A's original and thumbnail, B's original, C's original.
const V4_BLOBS: [u64; 4] = [1, 2, 3, 4];

fn bytes_of((len, seed): (usize, u64)) -> Vec<u8> {
    file(len, seed)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn blob_asset(kind: AssetKind, blob_id: u64, mime: &str) -> AssetInput {
    AssetInput { kind, source: AssetSource::Blob(blob_id), mime: mime.into(), width: None, height: None, duration_ms: None }
}

fn inline_asset(kind: AssetKind, bytes: Vec<u8>) -> AssetInput {
    AssetInput { kind, source: AssetSource::Inline(ByteBuf::from(bytes)), mime: "image/jpeg".into(), width: None, height: None, duration_ms: None }
}

fn create_memory(b: &mut dyn Backend, who: candid::Principal, cap: u64, kind: MemoryKind, assets: Vec<AssetInput>) -> u64 {
    let meta = MemoryMeta { title: "m".into(), kind, description: String::new(), taken_at_ns: None, tags: vec![] };
    let r: api::Result<Memory> = b.call(who, "memories_create", (MemoryCreateArgs { capsule_id: cap, meta, assets, idempotency_key: None },));
    r.expect("memories_create").id
}

fn upload_chunked(b: &mut dyn Backend, who: candid::Principal, cap: u64, data: &[u8], chunk: u32) -> BlobMeta {
    let s = b.begin_chunked(who, cap, data.len(), None, Some(chunk));
    for i in 0..s.chunk_count {
        b.put(who, &s, i, data).expect("put");
    }
    b.finish(who, &s, data).0.expect("finish")
}

/// Writes the default canister of `host` as a state file of the single-file format
/// `ic_host::Host::load_state` reads (`crates/ic-host/src/legacy.rs` documents it; the
/// host's `save_state`, which wrote it, is gone). Stable memory, controllers, cycles,
/// timer and certified data, as `save_state` wrote them; the heap is not part of it.
fn save_state_file(host: &ic_host::Host, path: &std::path::Path) {
    fn small(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let id = host.canister_id();
    let mut out = Vec::new();
    out.extend_from_slice(b"ICHOSTST");
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&host.module_hash());
    out.extend_from_slice(&host.time().to_le_bytes());
    out.extend_from_slice(&host.global_timer().to_le_bytes());
    // canister_version (no accessor): installed once (init counts 1), never upgraded.
    out.extend_from_slice(&1u64.to_le_bytes());
    out.extend_from_slice(&host.cycle_balance(id).expect("the canister exists").to_le_bytes());
    small(&mut out, id.as_slice());
    out.extend_from_slice(&(host.controllers().len() as u32).to_le_bytes());
    for c in host.controllers() {
        small(&mut out, c.as_slice());
    }
    small(&mut out, host.certified_data());
    let size = host.stable_size_bytes();
    let stable = host.read_stable(0, usize::try_from(size).unwrap()).expect("stable memory");
    let stored = &stable[..stable.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)];
    out.extend_from_slice(&(size / ic_host::PAGE_SIZE).to_le_bytes());
    out.extend_from_slice(&ic_host::DEFAULT_MAX_STABLE_PAGES.max(size / ic_host::PAGE_SIZE).to_le_bytes());
    out.extend_from_slice(&(stored.len() as u64).to_le_bytes());
    out.extend_from_slice(stored);
    let digest = sha(&out);
    out.extend_from_slice(&digest);
    std::fs::write(path, out).unwrap();
}

/// Writes `tests/fixtures/layout_v4.state.gz` with the layout-4 canister: run with
/// `KEEPSAKE_WASM=<backend.wasm of e376b38> cargo test --test layout_migration
/// write_layout_v4_fixture -- --ignored --nocapture`.
#[test]
#[ignore = "writes tests/fixtures/layout_v4.state.gz; needs KEEPSAKE_WASM=<the layout-4 backend.wasm, commit e376b38>"]
fn write_layout_v4_fixture() {
    use std::io::Write;
    let mut e = embedded();
    e.host.tick(); // init's timers: the first certification pass, raw_rand for the link secret
    let b: &mut dyn Backend = &mut e;
    assert_eq!(b.stats().layout_version, 4, "KEEPSAKE_WASM must be the layout-4 canister (e376b38)");
    let (alice, bob) = (user(1), user(2));
    let cap = b.capsule(alice);
    let r: api::Result<Capsule> = b.call(alice, "capsules_set_member", (cap, bob, Role::Reader));
    r.unwrap();
    let r: api::Result<Capsule> = b.call(bob, "capsules_accept", (cap,));
    assert_eq!(r.unwrap().my_role, Some(Role::Reader));
    // A: a public video in 5 parts, a one-part thumbnail, an inline placeholder.
    let video = upload_chunked(b, alice, cap, &bytes_of(V4_VIDEO), KIB64);
    let thumb = b.upload(alice, cap, &bytes_of(V4_THUMB), None);
    assert_eq!((video.chunk_count, thumb.chunk_count), (5, 1));
    let a = create_memory(b, alice, cap, MemoryKind::Video, vec![
        blob_asset(AssetKind::Original, video.id, "video/mp4"),
        blob_asset(AssetKind::Thumbnail, thumb.id, "image/jpeg"),
        inline_asset(AssetKind::Placeholder, bytes_of(V4_A_PLACEHOLDER)),
    ]);
    let r: api::Result<()> = b.call(alice, "memories_set_public", (a, true));
    r.unwrap();
    // B: a private photo.
    let photo = b.upload(alice, cap, &bytes_of(V4_PHOTO), None);
    assert_eq!(photo.chunk_count, 1);
    let bm = create_memory(b, alice, cap, MemoryKind::Photo, vec![
        blob_asset(AssetKind::Original, photo.id, "image/jpeg"),
        inline_asset(AssetKind::Placeholder, bytes_of(V4_B_PLACEHOLDER)),
    ]);
    // C: public for a while (its /b/ URL certified), then deleted.
    let c_blob = b.upload(alice, cap, &bytes_of(V4_C_ORIGINAL), None);
    let cm = create_memory(b, alice, cap, MemoryKind::Photo, vec![
        blob_asset(AssetKind::Original, c_blob.id, "image/jpeg"),
        inline_asset(AssetKind::Placeholder, bytes_of(V4_C_PLACEHOLDER)),
    ]);
    assert_eq!([video.id, thumb.id, photo.id, c_blob.id], V4_BLOBS);
    assert_eq!((a, bm, cm), (V4_A, V4_B, V4_C));
    let r: api::Result<()> = b.call(alice, "memories_set_public", (cm, true));
    r.unwrap();
    let c_url = format!("/b/{}", hex(&sha(&bytes_of(V4_C_ORIGINAL))));
    assert_eq!(http_get(&mut e, candid::Principal::anonymous(), &c_url, &[]).0.status_code, 200, "C public under layout 4");
    let b: &mut dyn Backend = &mut e;
    let r: api::Result<()> = b.call(alice, "memories_delete", (cm,));
    r.unwrap();
    // An open session: chunks 0 and 2 of 3.
    let open = bytes_of(V4_OPEN);
    let s = b.begin_chunked(alice, cap, open.len(), Some("open-v4"), Some(KIB64));
    b.put(alice, &s, 0, &open).unwrap();
    b.put(alice, &s, 2, &open).unwrap();
    b.advance_time(Duration::from_secs(5));
    // What layout 4 served: everything certified, ETags the plain sha256, a link secret.
    let r: api::Result<Link> = b.q(alice, "links_create", (a, AssetKind::Thumbnail, 600u64));
    r.expect("the layout-4 canister has its link secret");
    let anon = candid::Principal::anonymous();
    let (r, ok) = http_get(&mut e, anon, &format!("/m/{a}/thumbnail"), &[]);
    assert_eq!((r.status_code, ok), (200, Ok(())));
    assert_eq!(verify::header(&r, "etag"), Some(format!("\"{}\"", hex(&sha(&bytes_of(V4_THUMB))))).as_deref());
    let (r, ok) = http_get(&mut e, anon, &format!("/m/{a}/original"), &[("Range", "bytes=200000-")]);
    assert_eq!((r.status_code, ok), (206, Ok(())));
    for (url, status) in [(format!("/m/{bm}/original"), 403), (format!("/m/{cm}/original"), 404), (c_url, 404)] {
        let (r, ok) = http_get(&mut e, anon, &url, &[]);
        assert_eq!((r.status_code, ok), (status, Ok(())), "{url}");
    }
    let stats = (&mut e as &mut dyn Backend).stats();
    println!("layout-4 state: {stats:?}");

    let tmp = tempfile_path("write-v4");
    save_state_file(&e.host, &tmp);
    let raw = std::fs::read(&tmp).unwrap();
    // The file reads back: the same canister state on the same Wasm.
    let again = ic_host::Host::load_state(&tmp, canister_wasm()).expect("the written state file loads");
    let _ = std::fs::remove_file(&tmp);
    let mut again = Embedded::from_host(again);
    let b2: &mut dyn Backend = &mut again;
    assert_eq!(b2.stats(), stats);
    assert_eq!(b2.read_blob(alice, &video), bytes_of(V4_VIDEO));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&raw).unwrap();
    let gz = gz.finish().unwrap();
    std::fs::write(fixture(LAYOUT_V4), &gz).unwrap();
    println!("wrote {} ({} bytes, {} unpacked)", fixture(LAYOUT_V4).display(), gz.len(), raw.len());
}

/// Asserts that `url` answers `status` and verifies (a gateway would accept it).
fn assert_verified(e: &mut Embedded, who: candid::Principal, url: &str, headers: &[(&str, &str)], status: u16) -> HttpResponse {
    let (r, ok) = http_get(e, who, url, headers);
    assert_eq!((r.status_code, ok), (status, Ok(())), "{url} {headers:?} as {who}");
    r
}

/// Runs the interval timer until memory A and its video's content URL (the last thing
/// in the backlog) answer something other than `503`: how many seconds (ticks) that
/// took, and the instructions of each certification pass.
fn run_passes(e: &mut Embedded) -> (u32, Vec<u64>) {
    let mut ticks = 0;
    let mut passes = Vec::new();
    let content_url = format!("/b/{}", hex(&sha(&bytes_of(V4_VIDEO))));
    let waiting = |e: &mut Embedded| {
        [format!("/m/{V4_A}/thumbnail"), content_url.clone()].iter().any(|u| http_get(e, user(1), u, &[]).0.status_code == 503)
    };
    while waiting(e) {
        ticks += 1;
        assert!(ticks < 30, "the certification passes never finished");
        for r in e.host.advance_time(Duration::from_secs(1)) {
            if r.method.contains("timer_executor") {
                assert!(r.reply.is_ok(), "a pass failed: {:?}", r.reply);
                passes.push(r.instructions);
            }
        }
    }
    (ticks, passes)
}

/// Real layout-4 state upgraded to layout 5: the upgrade costs the same whatever is
/// stored (it only records the backlog), memories answer an uncertified `503` until the
/// interval timer's passes reach them, then every URL verifies; memory URLs' ETags are
/// MACs now, `/b/` keeps the sha256; nothing stored changed; and the tree, in stable
/// memory now, is certified right after the next upgrade, before any timer.
#[test]
fn layout_v4_state_upgrades_to_stable_certification() {
    let (mut e, cost) = load_measured(LAYOUT_V4);
    let post_upgrade = cost.post_upgrade;
    println!("layout 4 -> 5: post_upgrade {post_upgrade} instructions");
    assert!(post_upgrade < 1_000_000_000, "the migration only records the backlog: {post_upgrade}");
    let (alice, bob, anon) = (user(1), user(2), candid::Principal::anonymous());
    let video = bytes_of(V4_VIDEO);
    let content_url = format!("/b/{}", hex(&sha(&video)));
    let a_urls = [format!("/m/{V4_A}/original"), format!("/m/{V4_A}/thumbnail"), format!("/m/{V4_A}/placeholder")];

    // Right after the upgrade, no timer run: memories are in the backlog, their URLs
    // (and the content URL) answer an uncertified 503, whoever asks.
    for who in [anon, alice] {
        for url in a_urls.iter().chain([&format!("/m/{V4_B}/original"), &content_url]) {
            let (r, ok) = http_get(&mut e, who, url, &[]);
            assert_eq!(r.status_code, 503, "{url} before the passes");
            assert!(ok.is_err(), "{url}: a 503 in the backlog is not certified");
            assert!(verify::header(&r, "ic-certificate").is_none(), "{url}");
        }
    }
    // What is not there is proven absent already: the tree's 404 is certified on open.
    for url in [format!("/m/{V4_C}/original"), format!("/m/{V4_C}/placeholder"), "/m/999/original".into()] {
        assert_verified(&mut e, anon, &url, &[], 404);
    }

    let (ticks, passes) = run_passes(&mut e);
    println!("backlog worked off: {ticks} tick(s) of 1 s, {} pass(es), instructions {passes:?}", passes.len());
    assert!(!passes.is_empty() && passes.iter().all(|&p| p < 20_000_000_000));

    // Memory A, public: whole one-part assets, parts of the video, the content URL.
    let anon_thumb = assert_verified(&mut e, anon, &a_urls[1], &[], 200);
    assert_eq!(anon_thumb.body.as_slice(), bytes_of(V4_THUMB).as_slice());
    let placeholder = assert_verified(&mut e, anon, &a_urls[2], &[], 200);
    assert_eq!(placeholder.body.as_slice(), bytes_of(V4_A_PLACEHOLDER).as_slice());
    for (range, first, last) in [("bytes=0-", 0usize, 65_535usize), ("bytes=200000-", 3 * 65_536, 4 * 65_536 - 1)] {
        let r = assert_verified(&mut e, anon, &a_urls[0], &[("Range", range)], 206);
        assert_eq!(verify::content_range(&r), (first as u64, last as u64, video.len() as u64), "{range}");
        assert_eq!(r.body.as_slice(), &video[first..=last], "{range}");
    }
    let last = assert_verified(&mut e, anon, &a_urls[0], &[("Range", "bytes=299990-")], 206);
    assert_eq!(last.body.as_slice(), &video[4 * 65_536..]);
    let content = assert_verified(&mut e, anon, &content_url, &[], 206);
    assert_eq!(content.body.as_slice(), &video[..65_536]);
    // ETags: a MAC for memory URLs (layout 4 sent the sha256), the sha256 for /b/.
    let plain = |d: &[u8]| format!("\"{}\"", hex(&sha(d)));
    let thumb_etag = verify::header(&anon_thumb, "etag").expect("etag").to_string();
    assert_ne!(thumb_etag, plain(&bytes_of(V4_THUMB)), "memory URLs no longer give their sha256 away");
    assert_eq!(thumb_etag.len(), 2 + 32, "a 128-bit MAC, quoted");
    assert_ne!(verify::header(&last, "etag"), Some(plain(&video).as_str()));
    assert_eq!(verify::header(&content, "etag"), Some(plain(&video).as_str()));
    assert_verified(&mut e, anon, &a_urls[1], &[("If-None-Match", &thumb_etag)], 304);

    // Memory B, private: 403 to others, its bytes to members.
    let b_url = format!("/m/{V4_B}/original");
    assert_verified(&mut e, anon, &b_url, &[], 403);
    for who in [alice, bob] {
        let r = assert_verified(&mut e, who, &b_url, &[], 200);
        assert_eq!(r.body.as_slice(), bytes_of(V4_PHOTO).as_slice());
    }
    let r = assert_verified(&mut e, bob, &format!("/m/{V4_B}/placeholder"), &[], 200);
    assert_eq!(r.body.as_slice(), bytes_of(V4_B_PLACEHOLDER).as_slice());
    // Memory C (deleted, once public) and unknown URLs: certified 404s.
    for url in [
        format!("/m/{V4_C}/original"),
        format!("/m/{V4_C}/placeholder"),
        format!("/b/{}", hex(&sha(&bytes_of(V4_C_ORIGINAL)))),
        format!("/b/{}", hex(&sha(&bytes_of(V4_PHOTO)))), // private: no content URL
        format!("/m/{V4_A}/poster"),
        "/m/999/original".into(),
        "/nothing/here".into(),
    ] {
        assert_verified(&mut e, anon, &url, &[], 404);
    }

    // Every stored byte is the same, read as ranges across chunk boundaries.
    let b: &mut dyn Backend = &mut e;
    for (id, data) in V4_BLOBS[..3].iter().zip([video.clone(), bytes_of(V4_THUMB), bytes_of(V4_PHOTO)]) {
        let r: api::Result<ByteBuf> = b.q(alice, "blobs_read_range", (*id, 0u64, data.len() as u64));
        assert_eq!(r.unwrap().as_slice(), data.as_slice(), "blob {id}");
    }
    let r: api::Result<ByteBuf> = b.q(bob, "blobs_read_range", (V4_BLOBS[0], 65_000u64, 70_000u64));
    assert_eq!(r.unwrap().as_slice(), &video[65_000..135_000]);
    let m: api::Result<Memory> = b.q(bob, "memories_get", (V4_A,));
    let m = m.unwrap();
    assert_eq!(m.assets.iter().find(|a| a.kind == AssetKind::Placeholder).and_then(|a| a.inline.as_ref()).map(|i| i.to_vec()), Some(bytes_of(V4_A_PLACEHOLDER)));
    let r: api::Result<Memory> = b.q(alice, "memories_get", (V4_C,));
    assert!(r.is_err(), "C stays deleted");
    let st = b.stats();
    assert_eq!(st.layout_version, 5);
    assert_eq!((st.blobs, st.blob_bytes, st.memories, st.open_sessions), (3, 370_000, 2, 1));

    // The open session finishes where layout 4 left it.
    let open = bytes_of(V4_OPEN);
    let page: api::Result<SessionPage> = b.q(alice, "uploads_page", (UploadsPageArgs { capsule_id: Some(1), cursor: None, limit: None },));
    let sid = page.unwrap().sessions.iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(sid.len(), 1);
    let s = b.status(alice, sid[0]).unwrap();
    assert_eq!((s.state.clone(), s.received_chunks, s.chunk_size), (SessionState::Open, 2, KIB64));
    b.put(alice, &s, 1, &open).unwrap();
    let blob = b.finish(alice, &s, &open).0.unwrap();
    assert!(blob.id > V4_BLOBS[3], "ids continue after layout 4's");
    let r: api::Result<ByteBuf> = b.q(alice, "blobs_read_range", (blob.id, 0u64, open.len() as u64));
    assert_eq!(r.unwrap().as_slice(), open.as_slice());
    // Layout 4 queued deleted C's blob: housekeeping frees it.
    b.advance_time(Duration::from_secs(601));
    assert_eq!(b.stats().gc_pending_bytes, 0);

    // The passes are over: the interval timer was cleared.
    let later = e.host.advance_time(Duration::from_secs(5));
    assert!(later.iter().all(|r| !r.method.contains("timer_executor")), "no pass after the backlog: {:?}", later.iter().map(|r| &r.method).collect::<Vec<_>>());

    // Upgraded again: the tree is in stable memory, certified as the state opens; the
    // first request after the upgrade, before any timer, verifies.
    let cost = e.host.upgrade(canister_wasm(), &candid::encode_args(()).unwrap()).unwrap();
    println!("layout 5 -> 5 upgrade: post_upgrade {} instructions", cost.post_upgrade);
    let r = assert_verified(&mut e, anon, &a_urls[1], &[], 200);
    assert_eq!((r.body.as_slice(), verify::header(&r, "etag")), (bytes_of(V4_THUMB).as_slice(), Some(thumb_etag.as_str())));
    assert_verified(&mut e, anon, &content_url, &[("Range", "bytes=200000-")], 206);
    assert_verified(&mut e, anon, &b_url, &[], 403);
    assert_verified(&mut e, alice, &b_url, &[], 200);
    assert_verified(&mut e, anon, &format!("/m/{V4_C}/original"), &[], 404);
}

/// A certification pass that traps is rolled back and run again by the interval timer
/// (a one-shot timer that trapped would be gone, and memories would answer 503 until
/// the next upgrade). The trap: the host's update instruction limit (timers run under
/// it) lowered below what the first pass over the layout-4 backlog costs.
#[test]
fn certification_pass_that_traps_is_run_again() {
    let is_pass = |r: &ic_host::CallResult| r.method.contains("timer_executor");
    // What the first pass costs on this state, and the timer's other messages (the
    // global timer, the self-call's callback), measured on a copy.
    let (mut probe, _) = load_measured(LAYOUT_V4);
    let first = probe.host.advance_time(Duration::from_secs(1));
    let pass = first.iter().find(|r| is_pass(r)).expect("a pass ran").instructions;
    let others = first.iter().filter(|r| !is_pass(r)).map(|r| r.instructions).max().unwrap_or(0);
    let limit = pass / 2;
    println!("first pass {pass} instructions, the timer's other messages at most {others}; update limit lowered to {limit}");
    assert!(others < limit, "the limit must let the global timer run and stop the pass");
    drop(probe);

    let mut e = load(LAYOUT_V4);
    let thumb = format!("/m/{V4_A}/thumbnail");
    let content_url = format!("/b/{}", hex(&sha(&bytes_of(V4_VIDEO))));
    assert!(e.set_update_limit(Some(limit)));
    for tick in 0..3 {
        let msgs = e.host.advance_time(Duration::from_secs(1));
        let passes: Vec<_> = msgs.iter().filter(|r| is_pass(r)).collect();
        assert_eq!(passes.len(), 1, "tick {tick}: the interval runs the pass again");
        let err = passes[0].reply.as_ref().expect_err("the pass traps");
        println!("tick {tick}: pass trapped after {} instructions: {}", passes[0].instructions, err.message);
        assert!(err.message.to_lowercase().contains("instruction"), "{}", err.message);
        assert!(msgs.iter().filter(|r| !is_pass(r)).all(|r| r.reply.is_ok()), "only the pass traps");
        // Rolled back: still in the backlog, still an uncertified 503.
        let (r, ok) = http_get(&mut e, candid::Principal::anonymous(), &thumb, &[]);
        assert_eq!((r.status_code, ok.is_err()), (503, true), "tick {tick}");
    }
    assert!(e.set_update_limit(None));
    let (ticks, passes) = run_passes(&mut e);
    println!("limit restored: backlog worked off in {ticks} tick(s), passes {passes:?}");
    assert_eq!((ticks, passes.len()), (1, 1), "the next interval tick runs the pass again, and it finishes");
    let anon = candid::Principal::anonymous();
    let r = assert_verified(&mut e, anon, &thumb, &[], 200);
    assert_eq!(r.body.as_slice(), bytes_of(V4_THUMB).as_slice());
    let r = assert_verified(&mut e, anon, &content_url, &[("Range", "bytes=200000-")], 206);
    assert_eq!(verify::content_range(&r).0, 3 * 65_536);
    assert_verified(&mut e, anon, &format!("/m/{V4_B}/original"), &[], 403);
    assert_verified(&mut e, user(1), &format!("/m/{V4_B}/original"), &[], 200);
}
