//! `keepsake export` and `keepsake import` in embedded mode: a round trip through a
//! fresh canister gives the same tree byte for byte, a second import creates nothing,
//! and interrupted exports and imports resume without fetching or sending again what
//! was finished.

mod common;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use candid::Principal;
use common::{client_for_state, fill, keepsake, ok, rt, tree};
use futures::future::LocalBoxFuture;
use keepsake::embedded::EmbeddedTransport;
use keepsake::export::{self, ExportOptions};
use keepsake::upload::{NoProgress, StopAfter};
use keepsake::{Client, Request, Transport, TransportError};
use serde_json::Value;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A manifest split at its `assigned` key: (what must survive an import, the assigned
/// section).
fn split_manifest(bytes: &[u8]) -> (&[u8], Value) {
    let text = std::str::from_utf8(bytes).unwrap();
    let at = text
        .find("\n  \"assigned\": ")
        .expect("every manifest has an assigned section");
    let v: Value = serde_json::from_slice(bytes).unwrap();
    assert!(v["assigned"].is_object(), "{text}");
    (&bytes[..at], v["assigned"].clone())
}

#[test]
fn two_hundred_memories_survive_export_import_export_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b) = (d.join("a"), d.join("b"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let filled = rt().block_on(async { fill(&client_for_state(&a.join("state")), 200).await });
    assert_eq!(filled.memories, 200);

    let (x1, x2) = (d.join("export-1"), d.join("export-2"));
    let e1 = ok(&a, &["export", s(&x1), "--json"])["export"].clone();
    assert_eq!(e1["memories"], 200);
    assert_eq!(e1["memories_done"], 200);
    assert_eq!(e1["capsules"], 2);
    assert_eq!(e1["interrupted"], false);
    assert_eq!(e1["chunks_read"], filled.chunks);

    // Into a fresh canister (another state folder, another identity).
    let i1 = ok(&b, &["import", s(&x1), "--json"]);
    let r = &i1["import"];
    assert_eq!(r["memories"], 200);
    assert_eq!(r["memories_imported"], 200);
    assert_eq!(r["blobs_uploaded"], filled.blobs);
    assert_eq!(r["blobs_already_stored"], 0);
    assert_eq!(i1["memories_added"], 200);
    let caps: Vec<(&str, bool)> = r["capsules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["created"].as_bool().unwrap()))
        .collect();
    assert_eq!(caps, [("Family", true), ("Trip", true)]);

    // A second import creates nothing and sends nothing.
    let i2 = ok(&b, &["import", s(&x1), "--json"]);
    let r = &i2["import"];
    assert_eq!(r["bytes_sent"], 0);
    assert_eq!(r["blobs_uploaded"], 0);
    assert_eq!(r["blobs_already_stored"], filled.blobs);
    assert_eq!(i2["memories_added"], 0);
    for k in ["memories", "blobs", "blob_bytes", "arena_bytes"] {
        assert_eq!(r["before"][k], r["after"][k], "{k}");
    }
    assert!(r["capsules"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["created"] == false));
    let st = ok(&b, &["stats", "--json"])["stats"].clone();
    assert_eq!(st["memories"], 200);
    assert_eq!(st["capsules"], 2);
    assert_eq!(st["blobs"], filled.blobs);

    ok(&b, &["export", s(&x2), "--json"]);
    let (t1, t2) = (tree(&x1), tree(&x2));
    assert_eq!(
        t1.keys().collect::<Vec<_>>(),
        t2.keys().collect::<Vec<_>>(),
        "same files under the same names"
    );
    let (mut manifests, mut files) = (0, 0);
    for (path, bytes) in &t1 {
        let other = &t2[path];
        if path.ends_with("memory.json") || path.ends_with("capsule.json") {
            let ((c1, a1), (c2, a2)) = (split_manifest(bytes), split_manifest(other));
            assert_eq!(c1, c2, "{path}: everything but the assigned ids and times");
            assert_ne!(a1["source"], a2["source"], "{path}");
            manifests += 1;
        } else {
            assert!(bytes == other, "{path} differs");
            files += 1;
        }
    }
    assert_eq!(manifests, 200 + 2);
    assert_eq!(
        files,
        filled.blobs + 192,
        "every blob and every inline placeholder"
    );

    // The folder reads like an album.
    for p in [
        "Family/capsule.json",
        "Family/0001 Sunset _ Dune_ #0_/original.jpg",
        "Family/0001 Sunset _ Dune_ #0_/placeholder.jpg",
        "Family/0004 Video 3/original.mp4",
        "Family/0006 untitled/memory.json",
        "Trip/0001 Beach 6/thumbnail.jpg",
    ] {
        assert!(
            t1.contains_key(p),
            "{p} in {:?}",
            t1.keys().take(12).collect::<Vec<_>>()
        );
    }
    let m: Value = serde_json::from_slice(&t1["Family/0004 Video 3/memory.json"]).unwrap();
    assert_eq!(m["kind"], "Video");
    assert_eq!(m["assets"][0]["mime"], "video/mp4");
    assert_eq!(m["assets"][0]["duration_ms"], 1003);
    assert_eq!(m["tags"], serde_json::json!(["y2003"]));
    let m: Value =
        serde_json::from_slice(&t1["Family/0001 Sunset _ Dune_ #0_/memory.json"]).unwrap();
    assert_eq!(m["title"], "Sunset / Dune: #0?");
    assert_eq!(m["taken_at_ns"], 1_600_000_000_000_000_000u64);
    assert_eq!(m["description"], "low tide");
    assert_eq!(
        common::asset_kinds(&m),
        ["Original", "Display", "Thumbnail", "Placeholder"]
    );
    assert_eq!(m["assets"][3]["storage"], "inline");
    assert_eq!(
        m["assigned"]["note"],
        "assigned by the canister: changes on import"
    );
}

/// Counts the chunk reads of each blob, over the real embedded canister.
struct Counting {
    inner: EmbeddedTransport,
    reads: RefCell<BTreeMap<(u64, u32), u32>>,
}

impl Transport for Counting {
    fn call(&self, req: Request) -> LocalBoxFuture<'_, Result<Vec<u8>, TransportError>> {
        if req.method == "blobs_read_chunk" {
            let (blob, idx): (u64, u32) = candid::decode_args(&req.arg).unwrap();
            *self.reads.borrow_mut().entry((blob, idx)).or_default() += 1;
        }
        self.inner.call(req)
    }
    fn caller(&self) -> Principal {
        self.inner.caller()
    }
    fn target(&self) -> String {
        self.inner.target()
    }
}

#[test]
fn an_interrupted_export_resumes_without_downloading_finished_files() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = dir.path().join("out");
    let user = Principal::from_slice(&[0x10, 0x0e, 0x77, 0x01]);
    let t = std::rc::Rc::new(Counting {
        inner: EmbeddedTransport::open(&state, common::wasm(), user).unwrap(),
        reads: RefCell::new(BTreeMap::new()),
    });
    let c = Client::new(Box::new(t.clone()));
    rt().block_on(async {
        let filled = fill(&c, 12).await;
        // A video of 10 chunks alone in a capsule of its own.
        let clips = c.capsules_create("Clips").await.unwrap();
        let opts = keepsake::upload::UploadOptions {
            chunk_size: Some(64 * 1024),
            ..Default::default()
        };
        let video = common_video(&c, clips.id, &opts).await;
        let total_chunks = filled.chunks + 10;
        let run = |capsule: Option<u64>, budget: Option<u64>| {
            let opts = ExportOptions {
                capsule,
                in_flight: 3,
                stop_after: budget.map(StopAfter::new),
            };
            let (c, out) = (&c, &out);
            async move { export::export(c, out, &opts, &NoProgress).await.unwrap() }
        };
        let take = || std::mem::take(&mut *t.reads.borrow_mut());

        // 1. The video's capsule, stopped after 4 chunks: they stay in a partial file.
        let r1 = run(Some(clips.id), Some(4)).await;
        assert!(r1.interrupted);
        assert_eq!(
            (r1.chunks_read, r1.files_downloaded, r1.memories_done),
            (4, 0, 0)
        );
        let reads1 = take();
        assert_eq!(
            reads1.keys().copied().collect::<Vec<_>>(),
            (0..4).map(|i| (video, i)).collect::<Vec<_>>()
        );
        let partial = out.join("Clips/0001 Video 99/.original.mp4.keepsake-partial");
        assert_eq!(std::fs::metadata(&partial).unwrap().len(), 4 * 64 * 1024);

        // 2. Everything, stopped half way.
        let r2 = run(None, Some(total_chunks / 2)).await;
        assert!(r2.interrupted);
        assert_eq!(r2.chunks_read, total_chunks / 2);
        let reads2 = take();
        assert!(r2.files_downloaded > 0 && r2.memories_done > 0, "{r2:?}");

        // 3. Everything, to the end: nothing read twice, every chunk read once in all.
        let r3 = run(None, None).await;
        assert!(!r3.interrupted);
        assert_eq!(r3.memories, 13);
        assert_eq!(r3.memories_done, 13);
        assert!(
            r3.files_skipped >= r2.files_downloaded,
            "{r3:?} after {r2:?}"
        );
        let reads3 = take();
        let mut all: BTreeMap<(u64, u32), u32> = BTreeMap::new();
        for m in [&reads1, &reads2, &reads3] {
            for (k, n) in m.iter() {
                *all.entry(*k).or_default() += n;
            }
        }
        assert!(
            all.values().all(|n| *n == 1),
            "a chunk was read twice: {all:?}"
        );
        assert_eq!(all.len() as u64, total_chunks, "every chunk was read");
        assert_eq!(
            r1.chunks_read + r2.chunks_read + r3.chunks_read,
            total_chunks
        );
        assert!(!partial.exists());

        // A 4th run reads nothing; the tree equals an uninterrupted export.
        let r4 = run(None, None).await;
        assert_eq!((r4.chunks_read, r4.files_downloaded), (0, 0));
        assert!(take().is_empty());
        let fresh = dir.path().join("fresh");
        export::export(
            &c,
            &fresh,
            &ExportOptions {
                in_flight: 8,
                ..Default::default()
            },
            &NoProgress,
        )
        .await
        .unwrap();
        assert!(
            tree(&out) == tree(&fresh),
            "resumed export differs from a fresh one"
        );
    });
}

/// A 10-chunk video memory titled "Video 99" in `capsule`; returns its blob id.
async fn common_video(c: &Client, capsule: u64, opts: &keepsake::upload::UploadOptions) -> u64 {
    use backend::api::{
        AssetInput, AssetKind, AssetSource, MemoryCreateArgs, MemoryKind, MemoryMeta,
    };
    let bytes: Vec<u8> = (0..10 * 64 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let r = keepsake::upload::upload_bytes(
        c,
        &bytes,
        "v.mp4",
        "video/mp4",
        capsule,
        "v99",
        None,
        opts,
        &NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(r.chunks_total, 10);
    c.memories_create(&MemoryCreateArgs {
        capsule_id: capsule,
        meta: MemoryMeta {
            title: "Video 99".into(),
            kind: MemoryKind::Video,
            description: String::new(),
            taken_at_ns: None,
            tags: vec![],
        },
        assets: vec![AssetInput {
            kind: AssetKind::Original,
            source: AssetSource::Blob(r.blob_id),
            mime: "video/mp4".into(),
            width: None,
            height: None,
            duration_ms: None,
        }],
        idempotency_key: None,
    })
    .await
    .unwrap();
    r.blob_id
}

/// Through the binary: a stopped export and a stopped import exit 75 and continue where
/// they stopped when run again; a third import creates nothing.
#[test]
fn stopped_exports_and_imports_continue_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b, x) = (d.join("a"), d.join("b"), d.join("x"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    let filled = rt().block_on(async { fill(&client_for_state(&a.join("state")), 30).await });

    let r = keepsake(
        &a,
        &["export", s(&x), "--json"],
        &[("KEEPSAKE_STOP_AFTER_CHUNKS", "5")],
    );
    assert_eq!(r.code, 75, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["export"]["chunks_read"], 5);
    assert!(
        r.stderr.contains("run the same command again"),
        "{}",
        r.stderr
    );
    let e = ok(&a, &["export", s(&x), "--json"])["export"].clone();
    assert_eq!(e["chunks_read"].as_u64().unwrap(), filled.chunks - 5);
    assert!(e["files_skipped"].as_u64().unwrap() >= 1);
    assert_eq!(e["memories_done"], 30);

    let args = ["import", s(&x), "--chunk-size", "65536", "--json"];
    let r = keepsake(&b, &args, &[("KEEPSAKE_STOP_AFTER_CHUNKS", "3")]);
    assert_eq!(r.code, 75, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["import"]["chunks_sent"], 3);
    let i = ok(&b, &args);
    assert_eq!(
        i["import"]["chunks_sent"].as_u64().unwrap(),
        filled.chunks - 3,
        "only what was missing"
    );
    let i = ok(&b, &args);
    assert_eq!(i["import"]["chunks_sent"], 0);
    assert_eq!(i["memories_added"], 0);
    assert_eq!(ok(&b, &["stats", "--json"])["stats"]["memories"], 30);
    assert_eq!(
        ok(&b, &["ls", "--json"])["memories"]
            .as_array()
            .unwrap()
            .len(),
        30
    );
}

/// An archive is untrusted input: a file whose bytes differ from its manifest is refused
/// before any of it is sent, and leaves no open upload session behind.
#[test]
fn a_tampered_file_is_refused_and_leaves_nothing_open() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (a, b, x) = (d.join("a"), d.join("b"), d.join("x"));
    std::fs::create_dir_all(&a).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    rt().block_on(async { fill(&client_for_state(&a.join("state")), 3).await });
    ok(&a, &["export", s(&x), "--json"]);
    let f = x.join("Family/0002 Beach 0/display.jpg");
    let mut bytes = std::fs::read(&f).unwrap();
    let last = bytes.len() - 3;
    bytes[last] ^= 0x5a; // same size, other bytes
    std::fs::write(&f, &bytes).unwrap();

    let r = keepsake(&b, &["import", s(&x), "--json"], &[]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("does not match the SHA-256"),
        "{}",
        r.stderr
    );
    let st = ok(&b, &["stats", "--json"])["stats"].clone();
    assert_eq!(st["open_sessions"], 0, "the begun session was aborted");
    assert_eq!(
        st["memories"], 1,
        "the memory before it was imported, not this one"
    );
}
