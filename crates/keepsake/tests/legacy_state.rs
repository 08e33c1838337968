//! A state folder written by the embedded mode before the page store (one
//! `canister.state` file, see tests/fixtures/legacy-embedded/README.md) is migrated on
//! first open, and everything in it reads back.

mod common;

use std::io::Read;
use std::path::Path;

use common::{ok, random_bytes};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-embedded").join(name)
}

#[test]
fn an_old_state_folder_is_migrated_and_reads_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let state = d.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(fixture("canister.state.gz")).unwrap())
        .read_to_end(&mut raw)
        .unwrap();
    std::fs::write(state.join("canister.state"), raw).unwrap();
    std::fs::copy(fixture("identity.pem"), state.join("identity.pem")).unwrap();

    let ls = ok(d, &["ls", "--json"]);
    assert!(!state.join("canister.state").exists(), "the old file is gone");
    assert!(state.join("host").join("meta").exists(), "the page store took its place");
    let memories = ls["memories"].as_array().unwrap();
    assert_eq!(memories.len(), 1, "{ls}");
    assert_eq!(memories[0]["title"], "legacy.bin");
    assert_eq!(memories[0]["capsule_id"], 1);

    let g = ok(d, &["get", "1", "-o", "back.bin", "--json"]);
    assert_eq!(g["download"]["verified"], true);
    assert_eq!(std::fs::read(d.join("back.bin")).unwrap(), random_bytes(100_000, 2024));

    let caps = ok(d, &["capsule", "list", "--json"]);
    let names: Vec<&str> = caps["capsules"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"Family"), "{caps}");

    // The migrated canister takes new uploads.
    common::random_file(&d.join("new.bin"), 50_000, 5);
    let up = ok(d, &["upload", "new.bin", "--json"]);
    assert_eq!(up["ok"], true);
    assert_eq!(ok(d, &["ls", "--json"])["memories"].as_array().unwrap().len(), 2);
}
