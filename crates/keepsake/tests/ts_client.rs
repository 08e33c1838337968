//! The TypeScript client (`clients/ts`, @keepsake/client on agent-js) against `keepsake
//! serve`: its bindings checked against backend.did, then its Node tests (a 50 MB parallel
//! upload read back, resume after SIGKILL sending only the missing chunks, typed refusals
//! not retried while failures in transit are, a memory committed whole or not at all,
//! abort; directory mode against `serve --storage 2`: one lookup, then cached; an upload
//! outlives a 10 s stop of its storage canister, a short `retryForMs` gives up). Installed and built by scripts/tools.sh (`ensure_ts_client`).

mod common;

use std::process::Command;

#[test]
fn the_typescript_client_passes_its_tests_against_keepsake_serve() {
    let root = keepsake::embedded::repo_root();
    let out = Command::new("bash").arg("-c").arg("source scripts/tools.sh && ensure_ts_client").current_dir(&root).output().expect("bash");
    assert!(out.status.success(), "installing the TS client failed: {}", String::from_utf8_lossy(&out.stderr));
    let dir = String::from_utf8(out.stdout).unwrap().trim().lines().last().unwrap().to_string();
    let out = Command::new("npm")
        .args(["test", "--silent"])
        .current_dir(&dir)
        .env("KEEPSAKE_BIN", env!("CARGO_BIN_EXE_keepsake"))
        .env("KEEPSAKE_WASM", common::wasm())
        .output()
        .expect("npm (node 20) on PATH");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{}", text.lines().filter(|l| l.starts_with("# ") || l.starts_with("ok ") || l.starts_with("not ok")).collect::<Vec<_>>().join("\n"));
    assert!(out.status.success(), "the TS client's tests failed:\n{text}");
    assert!(text.contains("# pass 7") && text.contains("# fail 0"), "{text}");
}
