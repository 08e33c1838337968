//! End to end in embedded mode, through the real binary and the real canister Wasm.

mod common;

use common::{keepsake, ok, random_file};
use serde_json::Value;

fn asset<'a>(memory: &'a Value, kind: &str) -> &'a Value {
    memory["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {memory}"))
}

/// A generated 30 MB file and a real JPEG with derivatives are uploaded in one command,
/// listed, and fetched back byte-identical (every download verifies its SHA-256).
#[test]
fn upload_list_and_fetch_back_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    random_file(&d.join("video.mp4"), 30_000_000, 7);
    std::fs::write(
        d.join("photo.jpg"),
        keepsake::derive::sample_photo(3000, 2000, 3),
    )
    .unwrap();

    let up = ok(
        d,
        &[
            "upload",
            "video.mp4",
            "photo.jpg",
            "--derivatives",
            "--json",
        ],
    );
    assert_eq!(up["ok"], true);
    let files = up["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    let video = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("video.mp4"))
        .unwrap();
    let photo = files
        .iter()
        .find(|f| f["path"].as_str().unwrap().ends_with("photo.jpg"))
        .unwrap();
    assert_eq!(video["original"]["chunks_total"], 17); // 30 MB in 1.8 MB chunks
    assert_eq!(video["original"]["chunks_sent"], 17);
    assert_eq!(
        video["assets"].as_array().unwrap().len(),
        1,
        "no derivatives for a video"
    );
    assert_eq!(
        common::asset_kinds(photo),
        ["Original", "Display", "Thumbnail", "Placeholder"]
    );
    let (vid, pid) = (
        video["memory_id"].as_u64().unwrap(),
        photo["memory_id"].as_u64().unwrap(),
    );
    eprintln!(
        "embedded upload: {:.1} MB/s over {} MB",
        up["mb_per_s"].as_f64().unwrap(),
        up["bytes_sent"].as_u64().unwrap() / 1_000_000
    );

    // ls sees both memories, with what was committed.
    let ls = ok(d, &["ls", "--json"]);
    let mems = ls["memories"].as_array().unwrap();
    assert_eq!(mems.len(), 2);
    let pm = mems.iter().find(|m| m["id"] == pid).unwrap();
    assert_eq!(pm["kind"], "Photo");
    assert_eq!(pm["title"], "photo.jpg");
    assert_eq!(
        (
            asset(pm, "Original")["width"].as_u64(),
            asset(pm, "Original")["height"].as_u64()
        ),
        (Some(3000), Some(2000))
    );
    assert_eq!(asset(pm, "Display")["width"], 2048);
    assert_eq!(asset(pm, "Thumbnail")["width"], 512);
    assert_eq!(asset(pm, "Placeholder")["inline"], true);
    assert!(asset(pm, "Placeholder")["size"].as_u64().unwrap() <= 32 * 1024);
    let vm = mems.iter().find(|m| m["id"] == vid).unwrap();
    assert_eq!(vm["kind"], "Video");

    // Fetch back: originals byte-identical, renditions decode at their sizes.
    for (id, name) in [(vid, "video.mp4"), (pid, "photo.jpg")] {
        let out = format!("back-{name}");
        let g = ok(d, &["get", &id.to_string(), "-o", &out, "--json"]);
        assert_eq!(g["download"]["verified"], true);
        assert_eq!(
            std::fs::read(d.join(&out)).unwrap(),
            std::fs::read(d.join(name)).unwrap(),
            "{name}"
        );
    }
    for (kind, w) in [("display", 2048), ("thumbnail", 512), ("placeholder", 32)] {
        let out = format!("{kind}.jpg");
        ok(
            d,
            &[
                "get",
                &pid.to_string(),
                "--asset",
                kind,
                "-o",
                &out,
                "--json",
            ],
        );
        let img = image::open(d.join(&out)).unwrap();
        assert_eq!(img.width(), w, "{kind}");
    }

    // Stats see the blobs (1 + 3) and no open session.
    let st = ok(d, &["stats", "--json"]);
    assert_eq!(st["stats"]["blobs"], 4);
    assert_eq!(st["stats"]["open_sessions"], 0);
}

/// Every refusal reaches the user as a clear message and a non-zero exit.
#[test]
fn refusals_are_clear_messages() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.txt"), b"hello keepsake").unwrap();
    let up = ok(d, &["upload", "a.txt", "--title", "greeting", "--json"]);
    let mid = up["files"][0]["memory_id"].as_u64().unwrap();
    assert_eq!(up["files"][0]["title"], "greeting");

    let r = keepsake(d, &["get", "999", "-o", "x"], &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not found:"), "{}", r.stderr);

    let r = keepsake(d, &["upload", "a.txt", "--capsule", "77"], &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("not found: capsule 77"), "{}", r.stderr);

    // Another identity on the same canister may not read the first one's memory.
    keepsake::identity::write_new_ed25519_pem(&d.join("other.pem")).unwrap();
    let r = keepsake(
        d,
        &[
            "--identity",
            "other.pem",
            "get",
            &mid.to_string(),
            "-o",
            "y",
            "--json",
        ],
        &[],
    );
    assert_ne!(r.code, 0);
    let v = r.json();
    assert!(
        matches!(
            v["refusal"].as_str(),
            Some("Unauthorized") | Some("NotFound")
        ),
        "{v}"
    );
    assert!(
        r.stderr.contains("not allowed:") || r.stderr.contains("not found:"),
        "{}",
        r.stderr
    );
    assert!(!d.join("y").exists());
}
