//! The embedded host: the real canister Wasm run in-process by `ic-host`, its state kept
//! in a local folder (default `./.keepsake/`): `host/` (ic-host's page store: each
//! committed call is durable before its answer comes back, chunk acknowledgements
//! grouped with the next fsync; only the pages a call changed are written) and
//! `identity.pem` (the local caller). A folder of the old format
//! (`canister.state`, one file rewritten whole) is migrated on first open.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use sha2::Digest;
use candid::Principal;
use futures::future::LocalBoxFuture;
use ic_host::{reject_code, Durability, Host, HostConfig};

use crate::transport::{CallKind, Request, Transport, TransportError};

/// The host's directory inside the state folder.
pub const HOST_DIR: &str = "host";
/// The state file of the old format (migrated, then removed).
pub const LEGACY_STATE_FILE: &str = "canister.state";

/// The update whose acknowledgement does not wait for an fsync (see `call`).
const GROUPED_METHOD: &str = "uploads_put_chunk";

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

/// The directory canister's Wasm: $KEEPSAKE_DIRECTORY_WASM, else `directory.wasm.gz` beside
/// the backend's Wasm, else the repository's build.
pub fn resolve_directory_wasm(backend: &Path) -> PathBuf {
    if let Some(p) = std::env::var_os("KEEPSAKE_DIRECTORY_WASM") {
        return PathBuf::from(p);
    }
    let beside = backend.with_file_name("directory.wasm.gz");
    if beside.exists() {
        return beside;
    }
    repo_root().join("target/canister/directory.wasm.gz")
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
}

pub struct EmbeddedTransport {
    inner: Mutex<Inner>,
    host_dir: PathBuf,
    target: String,
}

/// Moves an old-format `canister.state` into a new host directory: built aside, then
/// renamed into place, then the old file is removed (a crash at any point leaves either
/// the old file or the new directory to start from).
fn migrate(state_dir: &Path, wasm: &[u8]) -> anyhow::Result<()> {
    let legacy = state_dir.join(LEGACY_STATE_FILE);
    let host_dir = state_dir.join(HOST_DIR);
    if host_dir.exists() {
        if legacy.exists() {
            std::fs::remove_file(&legacy).with_context(|| format!("removing the migrated {}", legacy.display()))?;
        }
        return Ok(());
    }
    if !legacy.exists() {
        return Ok(());
    }
    let aside = state_dir.join(format!("{HOST_DIR}.migrating"));
    if aside.exists() {
        std::fs::remove_dir_all(&aside)?;
    }
    let mut host = Host::open(&aside)?;
    host.import_legacy_state(&legacy, wasm)
        .with_context(|| format!("migrating {} to the page store", legacy.display()))?;
    host.close()?;
    std::fs::rename(&aside, &host_dir)?;
    std::fs::File::open(state_dir)?.sync_all()?;
    std::fs::remove_file(&legacy)?;
    eprintln!("keepsake: moved the canister state to {}", host_dir.display());
    Ok(())
}

/// Opens the host in `state_dir`: installs the canister on first use, upgrades it when
/// `wasm` is another module than the one installed.
pub fn open_host(state_dir: &Path, wasm: &[u8]) -> anyhow::Result<Host> {
    migrate(state_dir, wasm)?;
    let host_dir = state_dir.join(HOST_DIR);
    let mut host = Host::open(&host_dir).with_context(|| format!("opening the canister state {}", host_dir.display()))?;
    let installed = host.default_canister().and_then(|id| host.canister_module_hash(id));
    let wanted: [u8; 32] = sha2::Sha256::digest(wasm).into();
    match installed {
        None => {
            let config = HostConfig { time_ns: now_ns().max(host.time()), ..HostConfig::default() };
            host.set_time(config.time_ns);
            host.install_default(wasm, &candid::encode_args(())?, config).context("installing the canister")?;
        }
        Some(hash) if hash != wanted => {
            host.upgrade(wasm, &candid::encode_args(())?)
                .map_err(|r| anyhow::anyhow!("upgrading the canister to the given Wasm: {r}"))?;
        }
        Some(_) => {}
    }
    Ok(host)
}

impl EmbeddedTransport {
    /// Opens the canister in `state_dir` (installing it on first use) as `caller`.
    pub fn open(state_dir: &Path, wasm_path: &Path, caller: Principal) -> anyhow::Result<Self> {
        std::fs::create_dir_all(state_dir)
            .with_context(|| format!("creating {}", state_dir.display()))?;
        let wasm = std::fs::read(wasm_path)
            .with_context(|| format!("reading the canister Wasm {}", wasm_path.display()))?;
        let mut host = open_host(state_dir, &wasm)?;
        host.set_durability(Durability::Deferred);
        // Canister time follows the wall clock (session TTLs mean something locally too).
        if now_ns() > host.time() {
            host.set_time(now_ns());
        }
        let canonical =
            std::fs::canonicalize(state_dir).unwrap_or_else(|_| state_dir.to_path_buf());
        let target = format!("embedded:{}", canonical.display());
        Ok(Self {
            inner: Mutex::new(Inner { host, caller }),
            host_dir: state_dir.join(HOST_DIR),
            target,
        })
    }

    /// The host's directory.
    pub fn host_dir(&self) -> &Path {
        &self.host_dir
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
        self.inner.lock().expect("embedded host").host.advance_time(d);
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

impl EmbeddedTransport {
    /// One call as `as_caller`, or as the transport's caller.
    fn call_as(&self, req: Request, as_caller: Option<Principal>) -> LocalBoxFuture<'_, Result<Vec<u8>, TransportError>> {
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
            let caller = as_caller.unwrap_or(inner.caller);
            let r = match req.kind {
                CallKind::Query => inner.host.query(caller, req.method, &req.arg),
                CallKind::Update => inner.host.update(caller, req.method, &req.arg),
            };
            // Group commit: every reply but a chunk's acknowledgement waits for the log to
            // be on disk (with every commit before it). A power loss can only take chunks
            // whose upload then resumes; `kill -9` takes nothing (the log is written
            // before any reply).
            if !(req.kind == CallKind::Update && req.method == GROUPED_METHOD) {
                inner.host.sync().map_err(|e| TransportError::Fatal {
                    code: None,
                    message: format!("ic-host: syncing the state failed: {e:#}"),
                })?;
            }
            r.reply.map_err(map_reject)
        })();
        Box::pin(std::future::ready(result))
    }
}

impl Transport for EmbeddedTransport {
    fn call(&self, req: Request) -> LocalBoxFuture<'_, Result<Vec<u8>, TransportError>> {
        self.call_as(req, None)
    }
    fn call_as_controller(&self, req: Request) -> Option<LocalBoxFuture<'_, Result<Vec<u8>, TransportError>>> {
        Some(self.call_as(req, Some(ic_host::DEFAULT_CONTROLLER)))
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
        inner.host.sync()
    }
}
