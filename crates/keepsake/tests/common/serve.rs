//! `keepsake serve` run as a child process, and the CLI in `--network` mode against it.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{wasm, Run};

/// A running `keepsake serve` (killed when dropped).
pub struct Serve {
    child: Child,
    pub url: String,
    pub canister: String,
    pub root_key: String,
}

impl Serve {
    pub fn start(state: &Path) -> Serve {
        Self::start_with(state, &[])
    }

    /// With more `serve` arguments (e.g. `--controller P`).
    pub fn start_with(state: &Path, extra: &[&str]) -> Serve {
        Self::spawn(state, extra, Stdio::inherit())
    }

    /// With its stderr (the gateway's request log among it) written to `log`.
    pub fn start_logged(state: &Path, log: &Path) -> Serve {
        Self::spawn(state, &[], std::fs::File::create(log).expect("create the serve log").into())
    }

    fn spawn(state: &Path, extra: &[&str], stderr: Stdio) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_keepsake"))
            .arg("--state")
            .arg(state)
            .arg("--wasm")
            .arg(wasm())
            .args(["--json", "serve", "--port", "0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("run keepsake serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        let root_key = v["root_key"].as_str().unwrap().to_string();
        assert_eq!(root_key.len(), 133 * 2);
        Serve { child, url: v["url"].as_str().unwrap().into(), canister: v["canister"].as_str().unwrap().into(), root_key }
    }

    /// Ctrl-C: stops cleanly (exit 0) within a few seconds.
    pub fn interrupt(mut self) {
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

    /// `kill -9`.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The CLI in network mode against this network, as `me.pem`.
    pub fn cli(&self, cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
        self.cli_as(cwd, "me.pem", args, env)
    }

    /// The CLI in network mode against this network, as the identity in `cwd/pem`.
    pub fn cli_as(&self, cwd: &Path, pem: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_keepsake"));
        cmd.current_dir(cwd)
            .arg("--state")
            .arg(cwd.join("cli"))
            .args(["--network", &self.url, "--canister", &self.canister, "--identity"])
            .arg(cwd.join(pem))
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

    pub fn ok(&self, cwd: &Path, args: &[&str]) -> serde_json::Value {
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

