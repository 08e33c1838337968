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

mod harness;

use std::io::Read;
use std::path::PathBuf;

use backend::api::{self, BlobMeta, SessionState, Stats};
use harness::*;
use serde_bytes::ByteBuf;

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/layout_v1.state.gz")
}

fn load_fixture() -> Embedded {
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture_path()).expect("fixture"))
        .read_to_end(&mut raw)
        .unwrap();
    let tmp = tempfile_path("layout-v1");
    std::fs::write(&tmp, raw).unwrap();
    // Loading a state file is an upgrade onto its stable memory: post_upgrade migrates.
    let host = ic_host::Host::load_state(&tmp, canister_wasm()).expect("upgrade v1 state to the current Wasm");
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
}
