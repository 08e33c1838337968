//! Upload session records are bounded per caller in every state (issue 23, item 5), on
//! the real Wasm in the embedded host.
//!
//! The live-session limit counts open sessions only. Before this bound, 2,000 begin +
//! abort cycles and 2,000 begins that finished at once by dedup were all accepted (the
//! live limit is 64) and each kept a record for a TTL; a begin that found its bytes
//! skipped the space check. Run these against the Wasm before the fix to see them fail:
//! `KEEPSAKE_WASM=<old backend.wasm> cargo test --test wasm_sessions_bound`.

mod harness;

use std::time::Duration;

use backend::api::{self, *};
use backend::domain::records::{DEFAULT_MAX_SESSION_RECORDS_PER_CALLER, MAX_KEY_LEN, MAX_TEXT_LEN};
use candid::Principal;
use harness::*;
use serde_bytes::ByteBuf;

const ATTEMPTS: usize = 2_000;
/// The bound these tests set (`max_session_records_per_caller`; the default is 10,000),
/// so a flood past it stays quick.
const BOUND: u32 = 1_000;
const DAY: Duration = Duration::from_secs(24 * 3600);
/// Past one TTL (24 h) and the 10-minute housekeeping timer.
const TTL_AND_HOUSEKEEPING: Duration = Duration::from_secs(24 * 3600 + 11 * 60);

/// The largest record a caller can make: every text at its limit.
fn big_args(cap: u64, size: u64, sha256: Option<Vec<u8>>, n: usize) -> BeginArgs {
    BeginArgs {
        capsule_id: cap,
        size,
        chunk_size: None,
        sha256: sha256.map(ByteBuf::from),
        mime: "m".repeat(MAX_TEXT_LEN),
        name: "n".repeat(MAX_TEXT_LEN),
        pmid: Some("p".repeat(MAX_KEY_LEN)),
        idempotency_key: Some(format!("{n:0width$}", width = MAX_KEY_LEN)),
    }
}

fn begin(b: &mut dyn Backend, who: Principal, args: BeginArgs) -> api::Result<Session> {
    b.call(who, "uploads_begin", (args,))
}

fn set_bound(b: &mut dyn Backend) {
    let cfg: UploadConfig = b.q(user(1), "upload_config", ());
    assert_eq!(cfg.max_session_records_per_caller, Some(DEFAULT_MAX_SESSION_RECORDS_PER_CALLER), "the default bound");
    config(b, ConfigUpdate { max_session_records_per_caller: Some(BOUND), ..Default::default() });
}

fn config(b: &mut dyn Backend, u: ConfigUpdate) {
    let r: api::Result<UploadConfig> = b.call(controller(), "admin_set_config", (u,));
    r.expect("admin_set_config");
}

fn is_records_refusal<T: std::fmt::Debug>(r: &api::Result<T>) -> bool {
    matches!(r, Err(Error::QuotaExceeded(m)) if m.contains("max_session_records_per_caller"))
}

/// Begins `n` sessions with `make`, each followed by `then`; returns how many were
/// accepted before the first refusal, and checks that every later one is refused the
/// same way.
fn flood(
    b: &mut dyn Backend,
    who: Principal,
    n: usize,
    mut make: impl FnMut(usize) -> BeginArgs,
    mut then: impl FnMut(&mut dyn Backend, &Session),
) -> usize {
    let mut accepted = 0;
    for i in 0..n {
        match begin(b, who, make(i)) {
            Ok(s) => {
                assert_eq!(accepted, i, "begin {i} accepted after a refusal");
                accepted += 1;
                then(b, &s);
            }
            Err(e) => {
                let r: api::Result<()> = Err(e);
                assert!(is_records_refusal(&r), "begin {i}: {r:?}");
            }
        }
    }
    accepted
}

fn stable_bytes(b: &mut dyn Backend) -> u64 {
    b.stats().stable_pages * 65_536
}

/// 2,000 begin + abort cycles by one caller: the live limit never sees more than one
/// open session, but every aborted session keeps its record for a TTL. Accepted up to
/// the bound, then `QuotaExceeded` naming the limit, also after
/// an upgrade; other callers are not affected; a TTL later the records are collected
/// and the caller begins again.
#[test]
fn begin_abort_cycles_are_bounded_per_caller() {
    let mut e = embedded();
    let b: &mut dyn Backend = &mut e;
    set_bound(b);
    let (alice, bob) = (user(1), user(2));
    let cap = b.capsule(alice);
    let before = stable_bytes(b);
    let accepted = flood(b, alice, ATTEMPTS, |i| big_args(cap, 10_000_000, None, i), |b, s| {
        let r: api::Result<()> = b.call(alice, "uploads_abort", (s.id,));
        r.expect("uploads_abort");
    });
    let grown = stable_bytes(b) - before;
    // (Stable memory grows by 16 MiB buckets: bytes per record are measured natively,
    // in uploads_native's session_record_figures.)
    println!("{ATTEMPTS} begin+abort cycles (largest records): {accepted} accepted, stable memory +{} KiB", grown / 1024);
    assert_eq!(accepted, BOUND as usize, "begin+abort cycles accepted of {ATTEMPTS}");
    let cfg: UploadConfig = b.q(alice, "upload_config", ());
    assert_eq!(cfg.max_session_records_per_caller, Some(BOUND), "upload_config shows the bound");
    assert_eq!(b.stats().open_sessions, 0);
    let at_bound = b.last_instructions().unwrap_or(0);
    // Another caller is not affected.
    let bob_cap = b.capsule(bob);
    begin(b, bob, big_args(bob_cap, 10, None, 0)).expect("another caller begins");
    let fresh = b.last_instructions().unwrap_or(0);
    println!("uploads_begin: {fresh} instructions for a caller with no records, {at_bound} refused at {BOUND} records (counting them)");
    // The count is in stable memory: an upgrade keeps it.
    b.upgrade(canister_wasm()).expect("upgrade");
    assert!(is_records_refusal(&begin(b, alice, big_args(cap, 10, None, 9_999))));
    // Still held a moment before the TTL ends (aborted records are kept one TTL)...
    b.advance_time(DAY - Duration::from_secs(60));
    assert!(is_records_refusal(&begin(b, alice, big_args(cap, 10, None, 9_998))));
    // ... and collected after it: the caller begins again.
    b.advance_time(Duration::from_secs(11 * 60));
    let st = b.stats();
    let s = begin(b, alice, big_args(cap, 10, None, 9_997)).expect("begin after housekeeping collected the records");
    assert_eq!((s.state, st.gc_pending_bytes), (SessionState::Open, 0));
}

/// 2,000 begins that declare the digest of a blob the capsule holds: each comes back
/// `Finished` at once and is never open, so the live limit never counted it. Accepted
/// up to the bound (the upload that made the blob is a record too), then refused.
#[test]
fn dedup_begins_are_bounded_per_caller() {
    let mut e = embedded();
    let b: &mut dyn Backend = &mut e;
    set_bound(b);
    let alice = user(1);
    let cap = b.capsule(alice);
    let data = file(100_000, 7);
    let blob = b.upload(alice, cap, &data, None);
    let before = stable_bytes(b);
    let accepted = flood(b, alice, ATTEMPTS, |i| big_args(cap, data.len() as u64, Some(sha(&data)), i), |_, s| {
        assert_eq!(s.state, SessionState::Finished { blob_id: blob.id });
    });
    let grown = stable_bytes(b) - before;
    println!("{ATTEMPTS} dedup begins (largest records): {accepted} accepted, stable memory +{} KiB", grown / 1024);
    assert_eq!(accepted + 1, BOUND as usize, "dedup begins accepted of {ATTEMPTS}");
    let st = b.stats();
    assert_eq!((st.open_sessions, st.reserved_bytes), (0, Some(0)), "dedup begins reserve nothing");
    // A TTL later they are collected, and a retried finish of the upload that made the
    // blob still answers it.
    b.advance_time(TTL_AND_HOUSEKEEPING);
    let s = begin(b, alice, big_args(cap, data.len() as u64, Some(sha(&data)), 0)).expect("begin after housekeeping");
    assert_eq!(s.state, SessionState::Finished { blob_id: blob.id });
    let r: api::Result<BlobMeta> = b.call(alice, "uploads_finish", (blob.session_id, ByteBuf::from(sha(&data)), data.len() as u64));
    assert_eq!(r, Ok(blob));
}

/// A begin that finds its bytes already stored is checked for space like any begin:
/// refused when the same upload begun without a digest would be, and it reserves
/// nothing when accepted. (Before, it skipped the check: a full capsule took any
/// number of them.)
#[test]
fn a_begin_that_finds_its_bytes_is_checked_for_space_like_any_begin() {
    let mut e = embedded();
    let b: &mut dyn Backend = &mut e;
    let alice = user(1);
    let cap = b.capsule(alice);
    let data = file(100_000, 8);
    let blob = b.upload(alice, cap, &data, None);
    // The capsule holds the blob and has room for half of it more.
    config(b, ConfigUpdate { max_capsule_bytes: Some(150_000), ..Default::default() });
    let plain = begin(b, alice, big_args(cap, data.len() as u64, None, 1));
    assert!(matches!(plain, Err(Error::QuotaExceeded(_))), "{plain:?}");
    let dedup = begin(b, alice, big_args(cap, data.len() as u64, Some(sha(&data)), 2));
    assert!(matches!(dedup, Err(Error::QuotaExceeded(_))), "a begin of stored bytes in a capsule without room for them: {dedup:?}");
    // With room, it finishes at once and reserves nothing.
    config(b, ConfigUpdate { max_capsule_bytes: Some(200_000), ..Default::default() });
    let s = begin(b, alice, big_args(cap, data.len() as u64, Some(sha(&data)), 3)).expect("dedup begin with room");
    assert_eq!(s.state, SessionState::Finished { blob_id: blob.id });
    let c: api::Result<Capsule> = b.q(alice, "capsules_get", (cap,));
    let c = c.unwrap();
    assert_eq!((c.bytes_used, c.reserved_bytes), (100_000, Some(0)));
}

/// Retried finishes: within the TTL every finished session answers its blob from its
/// record; after housekeeping drops the records, the session that made the blob still
/// answers (its `finished` entry lives as long as the blob), while sessions that found
/// the bytes already stored (dedup at finish, dedup at begin) are `NotFound`: nothing
/// of them outlives their record.
#[test]
fn retried_finishes_answer_the_same_blob_within_the_ttl() {
    let mut e = embedded();
    let b: &mut dyn Backend = &mut e;
    let alice = user(1);
    let cap = b.capsule(alice);
    let data = file(300_000, 9);
    let digest = ByteBuf::from(sha(&data));
    let made = b.upload(alice, cap, &data, None);
    // The same bytes again without a digest: stored, then found at finish.
    let again = b.begin(alice, cap, data.len(), None);
    for i in 0..again.chunk_count {
        b.put(alice, &again, i, &data).unwrap();
    }
    assert_eq!(b.finish(alice, &again, &data).0, Ok(made.clone()), "dedup at finish");
    // With the digest: found at begin.
    let at_begin = begin(b, alice, big_args(cap, data.len() as u64, Some(sha(&data)), 0)).unwrap();
    assert_eq!(at_begin.state, SessionState::Finished { blob_id: made.id });
    let finish = |b: &mut dyn Backend, sid: u64| -> api::Result<BlobMeta> { b.call(alice, "uploads_finish", (sid, digest.clone(), data.len() as u64)) };
    // Within the TTL (housekeeping runs meanwhile), all three answer the same blob.
    b.advance_time(DAY - Duration::from_secs(3600));
    for sid in [made.session_id, again.id, at_begin.id] {
        assert_eq!(finish(b, sid), Ok(made.clone()), "session {sid} within the TTL");
    }
    b.advance_time(2 * Duration::from_secs(3600));
    assert_eq!(finish(b, made.session_id), Ok(made.clone()), "the session that made the blob, after its record is gone");
    for sid in [again.id, at_begin.id] {
        assert!(matches!(finish(b, sid), Err(Error::NotFound(_))), "session {sid} after its record is gone");
        assert!(matches!(b.status(alice, sid), Err(Error::NotFound(_))));
    }
}

/// A Wasm module with nothing in it but a memory: a fixture is imported onto it, then
/// upgraded to the current Wasm (as `layout_migration` does).
const EMPTY_MODULE: &[u8] = &[0, b'a', b's', b'm', 1, 0, 0, 0, 5, 3, 1, 0, 1];

/// Real layout-4 state (`tests/fixtures/layout_v4.state.gz`, written by the layout-4
/// Wasm, see `layout_migration`) upgraded to this Wasm. The bound needs no migration:
/// records from before it have no record entry, so they are not counted (for at most
/// one TTL: housekeeping drops them like any record), and the caller gets its full
/// bound at once; the uploads that made the fixture's blobs still answer a retried
/// finish after housekeeping dropped their records.
#[test]
fn records_written_before_the_bound_upgrade_cleanly() {
    use std::io::Read;
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layout_v4.state.gz");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).expect("fixture")).read_to_end(&mut raw).unwrap();
    let tmp = std::env::temp_dir().join(format!("keepsake-sessions-bound-v4-{}.state", std::process::id()));
    std::fs::write(&tmp, raw).unwrap();
    let host = ic_host::Host::load_state(&tmp, EMPTY_MODULE);
    let _ = std::fs::remove_file(&tmp);
    let mut host = host.expect("import the state file");
    host.upgrade(canister_wasm(), &candid::encode_args(()).unwrap()).expect("upgrade layout-4 state");
    let mut e = Embedded::from_host(host);
    let b: &mut dyn Backend = &mut e;
    set_bound(b);
    let alice = user(1);
    assert_eq!(b.stats().open_sessions, 1, "the fixture's open session");
    let blobs: Vec<BlobMeta> = [1u64, 2, 3]
        .into_iter()
        .map(|id| {
            let r: api::Result<BlobMeta> = b.q(alice, "blobs_meta", (id,));
            r.expect("a layout-4 blob")
        })
        .collect();
    let accepted = flood(b, alice, BOUND as usize + 10, |i| big_args(1, 10, None, i), |b, s| {
        let r: api::Result<()> = b.call(alice, "uploads_abort", (s.id,));
        r.expect("uploads_abort");
    });
    assert_eq!(accepted, BOUND as usize, "the fixture's records are not counted");
    b.advance_time(TTL_AND_HOUSEKEEPING);
    let st = b.stats();
    assert_eq!((st.open_sessions, st.reserved_bytes, st.gc_pending_bytes), (0, Some(0), 0), "everything collected");
    for m in blobs {
        let r: api::Result<BlobMeta> = b.call(alice, "uploads_finish", (m.session_id, m.sha256.clone(), m.size));
        assert_eq!(r, Ok(m), "a retried finish of a layout-4 upload after its record was dropped");
    }
    begin(b, alice, big_args(1, 10, None, 0)).expect("room again");
}
