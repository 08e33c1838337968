#![allow(dead_code)]
//! Helpers for the end-to-end tests: the real canister Wasm (a private copy, so a
//! concurrent rebuild cannot change it under a test), the real binary, and test data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod media;
pub mod serve;

pub fn wasm() -> &'static Path {
    static WASM: OnceLock<PathBuf> = OnceLock::new();
    WASM.get_or_init(|| {
        let src = keepsake::embedded::resolve_wasm(None).expect("canister Wasm");
        let dir = std::env::temp_dir().join(format!("keepsake-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dst = dir.join("backend.wasm");
        std::fs::copy(&src, &dst).expect("copy Wasm");
        dst
    })
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }
}

/// Runs `keepsake` with `--state STATE --wasm WASM` in `cwd`.
pub fn keepsake(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keepsake"));
    cmd.current_dir(cwd)
        .arg("--state")
        .arg(cwd.join("state"))
        .arg("--wasm")
        .arg(wasm())
        .args(args);
    cmd.env_remove("KEEPSAKE_STOP_AFTER_CHUNKS")
        .env_remove("KEEPSAKE_NETWORK")
        .env_remove("KEEPSAKE_CANISTER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("run keepsake");
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

pub fn ok(cwd: &Path, args: &[&str]) -> serde_json::Value {
    let r = keepsake(cwd, args, &[]);
    assert_eq!(
        r.code, 0,
        "keepsake {args:?} failed:\n{}\n{}",
        r.stdout, r.stderr
    );
    r.json()
}

// The workspace's one generator of test bytes.
#[allow(dead_code)]
#[path = "../../../../tests/common/data.rs"]
mod data;

/// Deterministic pseudo-random bytes (incompressible, like a video).
pub fn random_file(path: &Path, len: usize, seed: u64) {
    std::fs::write(path, data::file(len, seed)).unwrap();
}

/// A current-thread runtime for library-level tests.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// A client on the embedded canister in `state`, as the identity the CLI uses there.
pub fn client_for_state(state: &Path) -> keepsake::Client {
    use ic_agent::Identity;
    let me = keepsake::identity::load_or_create(state)
        .unwrap()
        .sender()
        .unwrap();
    let t = keepsake::embedded::EmbeddedTransport::open(state, wasm(), me).unwrap();
    keepsake::Client::new(Box::new(t))
}

/// What [`fill`] made.
#[derive(Debug, Default)]
pub struct Filled {
    pub memories: usize,
    pub blobs: usize,
    /// Chunks of every blob (videos use 64 KiB chunks, so they have several).
    pub chunks: u64,
    pub bytes: u64,
}

/// Fills the canister behind `c` with `n` memories in two capsules ("Family", and
/// "Trip" for every 20th): photos (a generated JPEG with real derivatives: display and
/// thumbnail blobs, an inline placeholder), every 25th a small video in 64 KiB chunks;
/// tags, some capture times and descriptions, titles that repeat and titles with
/// characters no file name may hold.
pub async fn fill(c: &keepsake::Client, n: usize) -> Filled {
    use backend::api::{
        AssetInput, AssetKind, AssetSource, MemoryCreateArgs, MemoryKind, MemoryMeta,
    };
    use keepsake::upload::{self, NoProgress, UploadOptions};
    let family = c.capsules_create("Family").await.unwrap();
    let trip = c.capsules_create("Trip").await.unwrap();
    let opts = UploadOptions {
        chunk_size: Some(64 * 1024),
        ..Default::default()
    };
    let mut f = Filled::default();
    for i in 0..n {
        let cap = if i % 20 == 19 { trip.id } else { family.id };
        let key = format!("fill-{i}");
        let blob = |bytes: Vec<u8>,
                    name: String,
                    mime: &'static str,
                    kind: AssetKind,
                    dims: Option<(u32, u32)>| {
            let (key, opts) = (format!("{key}-{kind:?}"), &opts);
            async move {
                let r = upload::upload_bytes(
                    c,
                    &bytes,
                    &name,
                    mime,
                    cap,
                    &key,
                    None,
                    opts,
                    &NoProgress,
                )
                .await
                .unwrap();
                let input = keepsake::ops::blob_asset(kind, &r.blob, mime, dims);
                (input, r.chunks_total, bytes.len() as u64)
            }
        };
        let mut assets = Vec::new();
        let kind;
        if i % 25 == 3 {
            kind = MemoryKind::Video;
            let bytes = data::file(70_000 + i * 1_500, 1000 + i as u64);
            let (mut a, ch, len) = blob(
                bytes,
                format!("clip-{i}.mp4"),
                "video/mp4",
                AssetKind::Original,
                None,
            )
            .await;
            a.duration_ms = Some(1_000 + i as u64);
            assets.push((a, ch, len));
        } else {
            kind = MemoryKind::Photo;
            let jpg = keepsake::derive::sample_photo(96 + (i as u32 % 5) * 8, 64, i as u64);
            let d = keepsake::derive::derive(&image::load_from_memory(&jpg).unwrap()).unwrap();
            let dims = Some((d.width, d.height));
            assets.push(
                blob(
                    jpg,
                    format!("photo-{i}.jpg"),
                    "image/jpeg",
                    AssetKind::Original,
                    dims,
                )
                .await,
            );
            for r in [&d.display, &d.thumbnail] {
                let name = format!("photo-{i}.{:?}.jpg", r.kind);
                assets.push(
                    blob(
                        r.bytes.clone(),
                        name,
                        "image/jpeg",
                        r.kind,
                        Some((r.width, r.height)),
                    )
                    .await,
                );
            }
            let p = &d.placeholder;
            let inline = AssetInput {
                kind: AssetKind::Placeholder,
                source: AssetSource::Inline(serde_bytes::ByteBuf::from(p.bytes.clone())),
                mime: "image/jpeg".into(),
                width: Some(p.width),
                height: Some(p.height),
                duration_ms: None,
            };
            assets.push((inline, 0, 0));
        }
        let title = match i % 17 {
            _ if kind == MemoryKind::Video => format!("Video {i}"),
            0 => format!("Sunset / Dune: #{i}?"),
            5 => String::new(),
            _ => format!("Beach {}", i / 3),
        };
        let mut tags = vec![format!("y{}", 2000 + i % 7)];
        if i % 2 == 0 {
            tags.push("family".into());
        }
        for (_, ch, len) in &assets {
            if *ch > 0 {
                f.blobs += 1;
                f.chunks += u64::from(*ch);
                f.bytes += len;
            }
        }
        c.memories_create(&MemoryCreateArgs {
            capsule_id: cap,
            meta: MemoryMeta {
                title,
                kind,
                description: if i % 4 == 0 {
                    "low tide".into()
                } else {
                    String::new()
                },
                taken_at_ns: (i % 3 == 0).then_some(1_600_000_000_000_000_000 + i as u64),
                tags,
            },
            assets: assets.into_iter().map(|a| a.0).collect(),
            idempotency_key: Some(key),
        })
        .await
        .unwrap();
        f.memories += 1;
    }
    c.checkpoint().unwrap();
    f
}

/// Every file under `root`, by relative path.
pub fn tree(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The asset kinds of a memory or file result in `--json` output, in order.
pub fn asset_kinds(v: &serde_json::Value) -> Vec<String> {
    v["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap().to_string())
        .collect()
}

/// The bytes `random_file` writes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    data::file(len, seed)
}

/// xorshift: the test's only source of randomness (seeded, printed).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

