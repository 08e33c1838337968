//! `keepsake serve` with the CLI's `--network` mode (ic-agent, default verification:
//! root key fetched from the local network, certificates and query signatures checked)
//! against it: a 30 MB file and a JPEG with derivatives up and back identical, an
//! upload stopped part way resumed with only the missing chunks, Ctrl-C, and a restart
//! that finds everything.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::{random_file, wasm, Run};

/// A running `keepsake serve` (killed when dropped).
struct Serve {
    child: Child,
    url: String,
    canister: String,
}

impl Serve {
    fn start(state: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keepsake"))
            .arg("--state")
            .arg(state)
            .arg("--wasm")
            .arg(wasm())
            .args(["--json", "serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run keepsake serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        assert_eq!(v["root_key"].as_str().unwrap().len(), 133 * 2);
        Serve { child, url: v["url"].as_str().unwrap().into(), canister: v["canister"].as_str().unwrap().into() }
    }

    /// Ctrl-C: stops cleanly (exit 0) within a few seconds.
    fn interrupt(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "serve exited with {status}");
                return;
            }
            assert!(std::time::Instant::now() < deadline, "serve did not stop on Ctrl-C");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The CLI in network mode against this network, as `me.pem`.
    fn cli(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keepsake"));
        cmd.current_dir(cwd)
            .arg("--state")
            .arg(cwd.join("cli"))
            .args(["--network", &self.url, "--canister", &self.canister, "--identity"])
            .arg(cwd.join("me.pem"))
            .arg("--json")
            .args(args)
            .env_remove("KEEPSAKE_STOP_AFTER_CHUNKS");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = cmd.output().unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    fn ok(&self, cwd: &Path, args: &[&str]) -> serde_json::Value {
        let r = self.cli(cwd, args, &[]);
        assert_eq!(r.code, 0, "keepsake {args:?}:\n{}\n{}", r.stdout, r.stderr);
        r.json()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn cli_uploads_resumes_and_reads_back_through_keepsake_serve() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let state = dir.join("state");
    keepsake::identity::write_new_ed25519_pem(&dir.join("me.pem")).unwrap();
    let big = dir.join("video.bin");
    random_file(&big, 30_000_000, 10);
    let photo = dir.join("photo.jpg");
    std::fs::write(&photo, keepsake::derive::sample_photo(1600, 1200, 3)).unwrap();

    let net = Serve::start(&state);
    // Stopped after 5 of 17 chunks, as if killed: the second run sends only the rest.
    let r = net.cli(dir, &["upload", big.to_str().unwrap()], &[("KEEPSAKE_STOP_AFTER_CHUNKS", "5")]);
    assert_eq!(r.code, 75, "{}\n{}", r.stdout, r.stderr);
    let up = net.ok(dir, &["upload", big.to_str().unwrap()]);
    let file = &up["files"][0]["original"];
    assert_eq!(file["resumed"], true, "{up}");
    let total = file["chunks_total"].as_u64().unwrap();
    assert_eq!(total, 17);
    assert_eq!(file["chunks_sent"].as_u64().unwrap(), total - 5, "{up}");
    let video_id = up["files"][0]["memory_id"].as_u64().unwrap();

    let up = net.ok(dir, &["upload", "--derivatives", photo.to_str().unwrap()]);
    let photo_id = up["files"][0]["memory_id"].as_u64().unwrap();
    let kinds: Vec<&str> = up["files"][0]["assets"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"Display") && kinds.contains(&"Thumbnail"), "{kinds:?}");
    let ls = net.ok(dir, &["ls"]);
    assert_eq!(ls["memories"].as_array().unwrap().len(), 2, "{ls}");

    let get = |net: &Serve, id: u64, asset: &str, out: &str| {
        net.ok(dir, &["get", &id.to_string(), "--asset", asset, "-o", dir.join(out).to_str().unwrap()]);
        std::fs::read(dir.join(out)).unwrap()
    };
    assert!(get(&net, video_id, "original", "v1.bin") == std::fs::read(&big).unwrap());
    assert_eq!(get(&net, photo_id, "original", "p1.jpg"), std::fs::read(&photo).unwrap());
    let display = get(&net, photo_id, "display", "d1.jpg");
    assert_eq!(image::load_from_memory(&display).unwrap().width(), 1600.min(2048));

    // Ctrl-C, then a restart on the same folder finds everything.
    net.interrupt();
    let net = Serve::start(&state);
    assert!(get(&net, video_id, "original", "v2.bin") == std::fs::read(&big).unwrap());
    assert_eq!(net.ok(dir, &["ls"])["memories"].as_array().unwrap().len(), 2);
    net.interrupt();
}
