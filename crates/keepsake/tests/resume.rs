//! Interrupt an upload part way, run again: only the missing chunks are sent.

mod common;

use common::{keepsake, ok, random_file};

fn interrupted_run(d: &std::path::Path, k: u64) {
    let r = keepsake(
        d,
        &["upload", "big.bin", "--json"],
        &[("KEEPSAKE_STOP_AFTER_CHUNKS", &k.to_string())],
    );
    assert_eq!(
        r.code, 75,
        "interrupted upload exits 75:\n{}\n{}",
        r.stdout, r.stderr
    );
    let v = r.json();
    assert_eq!(v["interrupted"], true);
    assert_eq!(v["interrupted_file"]["chunks_sent"], k);
    assert_eq!(v["interrupted_file"]["chunks_total"], 17);
    assert!(
        r.stderr.contains("run the same command again to resume"),
        "{}",
        r.stderr
    );
}

fn resumed_run(d: &std::path::Path, expect_sent: u64) -> u64 {
    let v = ok(d, &["upload", "big.bin", "--json"]);
    let f = &v["files"][0];
    assert_eq!(f["original"]["resumed"], true);
    assert_eq!(
        f["chunks_sent"], expect_sent,
        "only the missing chunks are sent: {f}"
    );
    assert_eq!(f["original"]["chunks_sent"], expect_sent);
    f["memory_id"].as_u64().unwrap()
}

fn verify(d: &std::path::Path, memory: u64) {
    ok(d, &["get", &memory.to_string(), "-o", "back.bin", "--json"]);
    assert_eq!(
        std::fs::read(d.join("back.bin")).unwrap(),
        std::fs::read(d.join("big.bin")).unwrap()
    );
}

#[test]
fn resume_sends_only_the_missing_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    random_file(&d.join("big.bin"), 30_000_000, 11);
    interrupted_run(d, 5);
    // The journal remembers the session.
    let journal = std::fs::read_to_string(d.join("state/journal.json")).unwrap();
    assert!(journal.contains("big.bin"), "{journal}");
    let m = resumed_run(d, 12);
    verify(d, m);
    // Done: the journal entry now names the memory, and there is no open session left.
    let journal: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("state/journal.json")).unwrap())
            .unwrap();
    let entries = journal["entries"].as_object().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries.values().next().unwrap()["memory_id"], m);
    assert_eq!(ok(d, &["stats", "--json"])["stats"]["open_sessions"], 0);
}

/// Twice interrupted, and the journal lost in between: the idempotency key (derived from
/// the file's fingerprint) still finds the live session and its received chunks.
#[test]
fn resume_without_the_journal_uses_the_idempotency_key() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    random_file(&d.join("big.bin"), 30_000_000, 12);
    interrupted_run(d, 4);
    interrupted_run(d, 6); // 4 + 6 chunks on the canister now
    std::fs::remove_file(d.join("state/journal.json")).unwrap();
    let m = resumed_run(d, 7);
    verify(d, m);
}

/// A folder interrupted in its second file: the rerun skips the finished first file
/// (nothing sent, same memory) and sends only the second file's missing chunks. A third
/// run sends nothing; `--force` uploads again.
#[test]
fn a_folder_resumes_file_by_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("album")).unwrap();
    random_file(&d.join("album/a.mp4"), 5_000_000, 21); // 3 chunks
    random_file(&d.join("album/b.mp4"), 9_000_000, 22); // 5 chunks
    let r = keepsake(
        d,
        &["upload", "album", "--json"],
        &[("KEEPSAKE_STOP_AFTER_CHUNKS", "5")],
    );
    assert_eq!(r.code, 75, "{}\n{}", r.stdout, r.stderr);
    let v = r.json();
    assert_eq!(v["files"].as_array().unwrap().len(), 1, "a.mp4 finished");
    let a_memory = v["files"][0]["memory_id"].as_u64().unwrap();
    assert_eq!(v["interrupted_file"]["chunks_sent"], 2);

    let v = ok(d, &["upload", "album", "--json"]);
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0]["skipped"], true);
    assert_eq!(files[0]["chunks_sent"], 0);
    assert_eq!(files[0]["memory_id"], a_memory);
    assert_eq!(files[1]["skipped"], false);
    assert_eq!(files[1]["chunks_sent"], 3, "only b's missing chunks");
    let b_memory = files[1]["memory_id"].as_u64().unwrap();

    let v = ok(d, &["upload", "album", "--json"]);
    assert_eq!(v["bytes_sent"], 0);
    assert!(v["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["skipped"] == true));

    let v = ok(d, &["upload", "album/b.mp4", "--force", "--json"]);
    assert_eq!(v["files"][0]["chunks_sent"], 5);
    ok(d, &["get", &b_memory.to_string(), "-o", "b.back", "--json"]);
    assert_eq!(
        std::fs::read(d.join("b.back")).unwrap(),
        std::fs::read(d.join("album/b.mp4")).unwrap()
    );
    assert_eq!(
        ok(d, &["ls", "--json"])["memories"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
