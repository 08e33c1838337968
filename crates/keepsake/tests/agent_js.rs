//! agent-js (`@icp-sdk/core`, installed from tests/agent-js/package-lock.json by
//! scripts/tools.sh) in Node against `keepsake serve`, with its default verification:
//! an upload in parallel chunks, finished, read back identical (upload.mjs compares).

mod common;

use std::process::Command;

use common::serve::Serve;

#[test]
fn agent_js_uploads_in_parallel_chunks_and_reads_back_identical() {
    let root = keepsake::embedded::repo_root();
    let out = Command::new("bash")
        .arg("-c")
        .arg("source scripts/tools.sh && ensure_agent_js")
        .current_dir(&root)
        .output()
        .expect("bash");
    assert!(out.status.success(), "installing agent-js failed: {}", String::from_utf8_lossy(&out.stderr));
    let dir = String::from_utf8(out.stdout).unwrap().trim().to_string();

    let d = tempfile::tempdir().unwrap();
    let net = Serve::start(&d.path().join("state"));
    let out = Command::new("node")
        .arg("upload.mjs")
        .args([&net.url, &net.canister, "9000000"])
        .current_dir(&dir)
        .output()
        .expect("node 20 on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "agent-js failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["chunks"], 5, "{v}");
    net.interrupt();
}
