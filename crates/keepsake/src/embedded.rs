//! The embedded host: the real canister Wasm run in-process by `ic-host`, its state kept
//! in a local folder (default `./.keepsake/`): `canister.state` (stable memory and
//! friends, written atomically after each command and periodically during long uploads)
//! and `identity.pem` (the local caller).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use candid::Principal;
use futures::future::LocalBoxFuture;
use ic_host::{reject_code, Host};

use crate::transport::{CallKind, Request, Transport, TransportError};

pub const STATE_FILE: &str = "canister.state";

/// How often a long upload checkpoints the canister state to disk.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(15);

/// The repository this crate lives in (`crates/keepsake/../..`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The canister Wasm: `explicit` (`--wasm`), else `$KEEPSAKE_WASM`, else
/// `<repo>/target/canister/backend.wasm`, built with `scripts/build.sh` if missing.
pub fn resolve_wasm(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("KEEPSAKE_WASM") {
        return Ok(PathBuf::from(p));
    }
    let root = repo_root();
    let wasm = root.join("target/canister/backend.wasm");
    if !wasm.exists() {
        eprintln!("keepsake: building the canister Wasm (scripts/build.sh) …");
        let status = std::process::Command::new("bash")
            .arg(root.join("scripts/build.sh"))
            .current_dir(&root)
            .stdout(std::process::Stdio::null())
            .status()
            .context("running scripts/build.sh")?;
        if !status.success() || !wasm.exists() {
            bail!("scripts/build.sh failed; build the canister or pass --wasm PATH");
        }
    }
    Ok(wasm)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

struct Inner {
    host: Host,
    caller: Principal,
    last_save: Instant,
    dirty: bool,
}

pub struct EmbeddedTransport {
    inner: Mutex<Inner>,
    state_path: PathBuf,
    target: String,
}

impl EmbeddedTransport {
    /// Opens the canister in `state_dir` (installing it on first use) as `caller`.
    pub fn open(state_dir: &Path, wasm_path: &Path, caller: Principal) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let wasm = std::fs::read(wasm_path)
            .with_context(|| format!("reading the canister Wasm {}", wasm_path.display()))?;
        let state_path = state_dir.join(STATE_FILE);
        let fresh = !state_path.exists();
        let mut host = if fresh {
            Host::new(&wasm, &candid::encode_args(())?).context("installing the canister")?
        } else {
            Host::load_state(&state_path, &wasm)
                .with_context(|| format!("loading the canister state {}", state_path.display()))?
        };
        // Canister time follows the wall clock (session TTLs mean something locally too).
        if now_ns() > host.time() {
            host.set_time(now_ns());
        }
        let canonical =
            std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        let target = format!("embedded:{}", canonical.display());
        let t = Self {
            inner: Mutex::new(Inner {
                host,
                caller,
                last_save: Instant::now(),
                dirty: fresh,
            }),
            state_path,
            target,
        };
        t.checkpoint()?;
        Ok(t)
    }

    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    /// The same canister, called as `caller` (e.g. the controller for admin calls).
    /// Consumes `self` so that only one transport ever owns the state.
    pub fn with_caller(self, caller: Principal) -> Self {
        self.set_caller(caller);
        self
    }

    /// Switches the caller of the following calls.
    pub fn set_caller(&self, caller: Principal) {
        self.inner.lock().expect("embedded host").caller = caller;
    }

    /// Moves canister time forward (runs due timers): lets tests see sessions expire.
    pub fn advance_time(&self, d: Duration) {
        let mut inner = self.inner.lock().expect("embedded host");
        inner.host.advance_time(d);
        inner.dirty = true;
    }

    fn save(&self, inner: &mut Inner) -> anyhow::Result<()> {
        inner
            .host
            .save_state(&self.state_path)
            .with_context(|| format!("saving {}", self.state_path.display()))?;
        inner.last_save = Instant::now();
        inner.dirty = false;
        Ok(())
    }
}

fn map_reject(r: ic_host::Reject) -> TransportError {
    if r.code == reject_code::SYS_TRANSIENT {
        TransportError::Transient(r.message)
    } else {
        TransportError::Fatal {
            code: Some(r.code),
            message: r.message,
        }
    }
}

impl Transport for EmbeddedTransport {
    fn call(&self, req: Request) -> LocalBoxFuture<'_, Result<Vec<u8>, TransportError>> {
        // Runs synchronously: the host executes one message at a time anyway.
        let result = (|| {
            let mut inner = self.inner.lock().map_err(|_| TransportError::Fatal {
                code: None,
                message: "embedded host poisoned by an earlier panic".into(),
            })?;
            let t = now_ns();
            if t > inner.host.time() {
                inner.host.set_time(t);
            }
            let r = match req.kind {
                CallKind::Query => {
                    let caller = inner.caller;
                    inner.host.query(caller, req.method, &req.arg)
                }
                CallKind::Update => {
                    inner.dirty = true;
                    let caller = inner.caller;
                    inner.host.update(caller, req.method, &req.arg)
                }
            };
            if inner.dirty && inner.last_save.elapsed() >= CHECKPOINT_EVERY {
                self.save(&mut inner).map_err(|e| TransportError::Fatal {
                    code: None,
                    message: format!("{e:#}"),
                })?;
            }
            r.reply.map_err(map_reject)
        })();
        Box::pin(std::future::ready(result))
    }
    fn caller(&self) -> Principal {
        self.inner
            .lock()
            .map(|i| i.caller)
            .unwrap_or(Principal::anonymous())
    }
    fn target(&self) -> String {
        self.target.clone()
    }
    fn checkpoint(&self) -> anyhow::Result<()> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| anyhow::anyhow!("embedded host poisoned"))?;
        if inner.dirty {
            self.save(&mut inner)?;
        }
        Ok(())
    }
}
