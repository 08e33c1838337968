//! icp-cli (npm `@icp-sdk/icp-cli-linux-x64`, installed by scripts/tools.sh) with
//! `keepsake serve` as a network given by URL and root key: every `dfx canister call
//! backend` example of README.md runs as `icp canister call` and is answered (the
//! interface comes from the canister's `candid:service` metadata, read through
//! `read_state`); the ones whose outcome the example's order fixes are checked.

mod common;

#[path = "../../../tests/common/readme.rs"]
mod readme;

use std::process::Command;

use common::serve::Serve;

#[test]
fn readme_examples_run_through_icp_cli() {
    let root = keepsake::embedded::repo_root();
    let out = Command::new("bash").arg("-c").arg("source scripts/tools.sh && ensure_icp_cli").current_dir(&root).output().unwrap();
    assert!(out.status.success(), "installing icp-cli failed: {}", String::from_utf8_lossy(&out.stderr));
    let icp = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&icp).args(args).env("HOME", home.path()).env("DO_NOT_TRACK", "1").env("RUST_BACKTRACE", "0").output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    };
    let (ok, text) = run(&["identity", "new", "keepsake-test", "--storage", "plaintext"]);
    assert!(ok, "{text}");
    let (ok, me) = run(&["identity", "principal", "--identity", "keepsake-test"]);
    assert!(ok, "{me}");
    let me = me.trim().to_string();

    let d = tempfile::tempdir().unwrap();
    // The icp identity controls the canister too, so the admin examples work.
    let net = Serve::start_with(&d.path().join("state"), &["--controller", &me]);
    // The root key as `serve` prints it is what icp-cli takes (`-k`).
    let root_key = net.root_key.clone();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let mut answers = Vec::new();
    for (method, args) in readme::examples(&readme) {
        let (ok, text) = run(&["canister", "call", "-n", &net.url, "-k", &root_key, "--identity", "keepsake-test", &net.canister, &method, &args]);
        assert!(ok, "icp canister call {method} {args}:\n{text}");
        answers.push((method, text));
    }
    let answer = |m: &str| answers.iter().find(|(x, _)| x == m).map(|(_, t)| t.as_str()).unwrap();
    for m in ["capsules_create", "uploads_begin", "uploads_put_chunk", "uploads_finish", "blobs_meta", "memories_create", "memories_delete", "admin_set_config", "admin_gc"] {
        assert!(answer(m).contains("Ok"), "{m}: {}", answer(m));
    }
    assert!(answer("blobs_read_chunk").contains(r#"Ok = blob "hello""#), "{}", answer("blobs_read_chunk"));
    assert!(answer("blobs_read_range").contains(r#"Ok = blob "ell""#), "{}", answer("blobs_read_range"));
    assert!(answer("upload_config").contains("default_chunk_size = 1_800_000"), "{}", answer("upload_config"));
    println!("{} README examples answered through icp-cli", answers.len());

    // The canister's controller manages it with icp-cli too: status, then an upgrade to
    // the gzip-compressed module (what build tools ship), which keeps every byte stored.
    let net_args = ["-n", net.url.as_str(), "-k", root_key.as_str(), "--identity", "keepsake-test"];
    let (ok, status) = run(&[&["canister", "status"][..], &net_args, &[net.canister.as_str()]].concat());
    assert!(ok && status.contains("Status: Running") && status.contains(&me), "icp canister status:\n{status}");
    let gz = d.path().join("backend.wasm.gz");
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &std::fs::read(common::wasm()).unwrap()).unwrap();
    let gz_bytes = z.finish().unwrap();
    std::fs::write(&gz, &gz_bytes).unwrap();
    // A query whose answer the upgrade must not change: the capsule, its members and bytes.
    let (_, args) = readme::examples(&readme).into_iter().find(|(m, _)| m == "capsules_get").unwrap();
    let get = [&["canister", "call"][..], &net_args, &[net.canister.as_str(), "capsules_get", args.as_str()]].concat();
    let (ok, before) = run(&get);
    assert!(ok, "{before}");
    let install = [&["canister", "install", "--mode", "upgrade", "--wasm", gz.to_str().unwrap()][..], &net_args, &[net.canister.as_str()]].concat();
    let (ok, text) = run(&install);
    assert!(ok, "icp canister install --mode upgrade:\n{text}");
    let (ok, status) = run(&[&["canister", "status"][..], &net_args, &[net.canister.as_str()]].concat());
    let hash: String = <sha2::Sha256 as sha2::Digest>::digest(&gz_bytes).iter().map(|b| format!("{b:02x}")).collect();
    assert!(ok && status.contains(&hash), "the module hash after the upgrade is the .wasm.gz's {hash}:\n{status}");
    let (ok, after) = run(&get);
    assert!(ok && after.contains("Ok") && after == before, "after the upgrade: {after}\nbefore: {before}");
    net.interrupt();
}
