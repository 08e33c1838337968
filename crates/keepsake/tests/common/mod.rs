#![allow(dead_code)]
//! Helpers for the end-to-end tests: the real canister Wasm (a private copy, so a
//! concurrent rebuild cannot change it under a test), the real binary, and test data.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

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

/// The bytes `random_file` writes.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    data::file(len, seed)
}
