//! The operator's commands through the binary, embedded: `rm` frees space that the next
//! upload reuses, member changes take effect on the member's next call, completions.

mod common;

use common::{keepsake, ok, random_file};
use serde_json::Value;

fn stats(d: &std::path::Path) -> Value {
    ok(d, &["stats", "--json"])["stats"].clone()
}

fn memory_of(up: &Value) -> String {
    up["files"][0]["memory_id"].as_u64().unwrap().to_string()
}

#[test]
fn rm_frees_space_that_the_next_upload_reuses() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    random_file(&d.join("big.bin"), 3_000_000, 31);
    random_file(&d.join("small.bin"), 200_000, 32);
    random_file(&d.join("next.bin"), 2_500_000, 33);
    std::fs::write(
        d.join("photo.jpg"),
        keepsake::derive::sample_photo(900, 600, 4),
    )
    .unwrap();
    let big = memory_of(&ok(d, &["upload", "big.bin", "--json"]));
    ok(d, &["upload", "small.bin", "--json"]); // after big in the arena: big is not its end
    let photo = ok(d, &["upload", "photo.jpg", "--derivatives", "--json"]);
    let pid = memory_of(&photo);
    let s1 = stats(d);

    let r = ok(d, &["rm", &big, "--json"])["removed"].clone();
    assert_eq!(r["released_bytes"], 3_000_000);
    assert_eq!(
        r["queued_bytes"], 3_000_000,
        "freeing waits for housekeeping"
    );
    assert_eq!(r["freed_now_bytes"], 0);
    assert_eq!(r["removed"][0]["kind"], "Original");
    let s2 = stats(d);
    assert_eq!(s2["memories"], s1["memories"].as_u64().unwrap() - 1);
    assert_eq!(s2["gc_pending_bytes"], 3_000_000);
    assert_eq!(s2["free_bytes"], s1["free_bytes"]);
    let gone = keepsake(d, &["get", &big, "-o", "x"], &[]);
    assert_ne!(gone.code, 0);
    assert!(gone.stderr.contains("not found"), "{}", gone.stderr);

    let g = ok(d, &["gc", "--json"])["gc"].clone();
    assert_eq!(g["bytes_freed"], 3_000_000);
    assert_eq!(g["more"], false);
    assert_eq!(g["after"]["gc_pending_bytes"], 0);
    let free = g["after"]["free_bytes"].as_u64().unwrap();
    assert!(free >= 3_000_000, "{g}");
    assert_eq!(g["after"]["arena_bytes"], s1["arena_bytes"]);

    // The next upload goes into the freed space: the arena does not grow.
    let next = memory_of(&ok(d, &["upload", "next.bin", "--json"]));
    let s3 = stats(d);
    assert_eq!(s3["arena_bytes"], s1["arena_bytes"], "no growth: {s3}");
    assert_eq!(s3["free_bytes"], free - 2_500_000);
    ok(d, &["get", &next, "-o", "next.back", "--json"]);
    assert_eq!(
        std::fs::read(d.join("next.back")).unwrap(),
        std::fs::read(d.join("next.bin")).unwrap()
    );

    // One asset: the thumbnail blob, freed at once with --gc; then the inline placeholder.
    let thumb = photo["files"][0]["assets"].as_array().unwrap()[2].clone();
    assert_eq!(thumb["kind"], "Thumbnail");
    let v = ok(d, &["rm", &pid, "--asset", "thumbnail", "--gc", "--json"]);
    assert_eq!(v["removed"]["released_bytes"], thumb["size"]);
    assert_eq!(v["gc"]["bytes_freed"], thumb["size"]);
    let v = ok(d, &["rm", &pid, "--asset", "placeholder", "--json"]);
    let placeholder = photo["files"][0]["assets"][3]["size"].clone();
    assert_eq!(v["removed"]["freed_now_bytes"], placeholder);
    assert_eq!(v["removed"]["queued_bytes"], 0);
    let ls = ok(d, &["ls", "--json"]);
    let m = ls["memories"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"].as_u64().unwrap().to_string() == pid)
        .unwrap();
    assert_eq!(common::asset_kinds(m), ["Original", "Display"]);

    // Text output says what happened and what is queued.
    random_file(&d.join("more.bin"), 100_000, 34);
    let more = memory_of(&ok(d, &["upload", "more.bin", "--json"]));
    let r = keepsake(d, &["rm", &more], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("deleted memory"), "{}", r.stdout);
    assert!(
        r.stdout.contains("queued 100.00 kB for housekeeping"),
        "{}",
        r.stdout
    );
}

#[test]
fn member_changes_take_effect_on_the_members_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("a.txt"), b"owner's note").unwrap();
    std::fs::write(d.join("b.txt"), b"writer's note").unwrap();
    std::fs::write(d.join("c.txt"), b"reader's attempt").unwrap();
    keepsake::identity::write_new_ed25519_pem(&d.join("other.pem")).unwrap();
    let other = |args: &[&str]| {
        let mut a = vec!["--identity", "other.pem"];
        a.extend_from_slice(args);
        keepsake(d, &a, &[])
    };
    let who = other(&["whoami"]).stdout.trim().to_string();
    let me = ok(d, &["whoami", "--json"])["principal"]
        .as_str()
        .unwrap()
        .to_string();
    let up = ok(d, &["upload", "a.txt", "--json"]);
    let cap = up["capsule_id"].to_string();
    let m = memory_of(&up);

    let list = ok(d, &["capsule", "members", &cap, "--json"])["members"].clone();
    assert_eq!(
        list["members"],
        serde_json::json!([{ "principal": me, "role": "Owner" }])
    );
    let refused = |r: common::Run| {
        assert_ne!(r.code, 0, "{}", r.stdout);
        assert!(
            r.stderr.contains("not allowed") || r.stderr.contains("not found"),
            "{}",
            r.stderr
        );
    };
    refused(other(&["get", &m, "-o", "x"]));

    // Adding someone invites them: no rights until they accept.
    let v = ok(
        d,
        &[
            "capsule", "members", &cap, "add", &who, "--role", "writer", "--json",
        ],
    );
    let writer = serde_json::json!({ "principal": who, "role": "Writer" });
    assert!(v["members"]["invited"].as_array().unwrap().contains(&writer));
    assert!(!v["members"]["members"].as_array().unwrap().contains(&writer));
    refused(other(&["upload", "b.txt", "--capsule", &cap]));
    let r = other(&["capsule", "invitations"]);
    assert!(r.stdout.contains(&format!("keepsake capsule accept {cap}")), "{}", r.stdout);
    let r = other(&["capsule", "accept", &cap]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains(&format!("joined capsule {cap} as writer")), "{}", r.stdout);
    let list = ok(d, &["capsule", "members", &cap, "--json"])["members"].clone();
    assert!(list["members"].as_array().unwrap().contains(&writer));
    assert_eq!(list["invited"], serde_json::json!([]));

    // Writer: can upload and read.
    let r = other(&["upload", "b.txt", "--capsule", &cap, "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let b = memory_of(&r.json());
    assert_eq!(other(&["get", &m, "-o", "m.txt"]).code, 0);

    // Demoted to reader: the next write is refused, reading still works.
    ok(
        d,
        &[
            "capsule", "members", &cap, "add", &who, "--role", "reader", "--json",
        ],
    );
    refused(other(&["upload", "c.txt", "--capsule", &cap]));
    refused(other(&["rm", &b]));
    assert_eq!(other(&["get", &b, "-o", "b.back"]).code, 0);
    // Not an owner: may not change members.
    refused(other(&[
        "capsule", "members", &cap, "add", &who, "--role", "owner",
    ]));

    // Removed: the next call is refused.
    let r = keepsake(d, &["capsule", "members", &cap, "remove", &who], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("is no longer a member"), "{}", r.stdout);
    refused(other(&["get", &m, "-o", "y"]));
    refused(other(&["ls", "--capsule", &cap]));
    refused(other(&["capsule", "members", &cap]));
    assert!(!d.join("y").exists());

    // The canister's own rules reach the user: the last owner cannot leave.
    let r = keepsake(d, &["capsule", "members", &cap, "remove", &me], &[]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("last owner"), "{}", r.stderr);
    let r = keepsake(
        d,
        &["capsule", "members", &cap, "add", "not-a-principal"],
        &[],
    );
    assert!(r.stderr.contains("invalid principal"), "{}", r.stderr);
}

#[test]
fn completions_for_every_shell() {
    let dir = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let r = keepsake(dir.path(), &["completions", shell], &[]);
        assert_eq!(r.code, 0, "{shell}: {}", r.stderr);
        for word in ["export", "import", "members", "rm"] {
            assert!(r.stdout.contains(word), "{shell} completes {word}");
        }
    }
}
