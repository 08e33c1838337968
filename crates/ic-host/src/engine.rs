//! The shared wasmtime [`Engine`] and the module cache (in-memory + on-disk).
//!
//! Modules are compiled once per process (in-memory map keyed by the sha256 of
//! the original wasm) and once per machine (serialized artifacts on disk keyed
//! by sha256 of wasm bytes + wasmtime version + engine configuration).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use wasmtime::{Config, Engine, InstancePre, Module};

use crate::imports;
use crate::rewrite;
use crate::state::StoreData;

/// Version of wasmtime this crate is pinned to (part of the disk cache key).
const WASMTIME_VERSION: &str = "48.0.8";
/// Describes the engine configuration below (part of the disk cache key).
/// Bump when changing [`engine`] or the rewriting in [`rewrite`].
const CONFIG_FINGERPRINT: &str = "fuel-ic-weights-v1;simd;bulk;multivalue;nan-canon;rewrite-v2";

/// The process-wide engine. Fuel metering is on, with the IC's weight of each operator
/// (see [`crate::metering`]): one unit of fuel is one IC instruction.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .operator_cost(crate::metering::ic_operator_cost())
            .wasm_simd(true)
            .wasm_relaxed_simd(false)
            .wasm_bulk_memory(true)
            .wasm_multi_value(true)
            // The IC runs deterministic Wasm: canonicalize NaNs.
            .cranelift_nan_canonicalization(true);
        // The configuration above is static and valid for every target wasmtime supports.
        Engine::new(&config).expect("ic-host: static wasmtime configuration is valid")
    })
}

static CACHE_DIR_OVERRIDE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Overrides the directory of the on-disk compiled-module cache for this
/// process (`None` restores the default). The default is
/// `$IC_HOST_CACHE_DIR`, else `$CARGO_TARGET_DIR/ic-host-cache`, else
/// `<temp dir>/ic-host-cache`.
pub fn set_module_cache_dir(dir: Option<PathBuf>) {
    if let Ok(mut guard) = CACHE_DIR_OVERRIDE.lock() {
        *guard = dir;
    }
}

/// The directory currently used for the on-disk module cache.
pub fn module_cache_dir() -> PathBuf {
    if let Some(dir) = CACHE_DIR_OVERRIDE.lock().ok().and_then(|g| g.clone()) {
        return dir;
    }
    if let Some(dir) = std::env::var_os("IC_HOST_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir).join("ic-host-cache");
    }
    std::env::temp_dir().join("ic-host-cache")
}

/// A compiled canister module, linked against the system API, plus facts about it.
#[derive(Clone)]
pub(crate) struct CompiledModule {
    pub module: Module,
    /// The module linked with [`imports::linker`]: instantiating it is cheap.
    pub pre: Arc<InstancePre<StoreData>>,
    /// sha256 of the original (not rewritten) wasm.
    pub wasm_hash: [u8; 32],
    /// Size of the original wasm.
    pub wasm_len: usize,
    /// The custom sections of the original wasm (name, contents): canister metadata.
    pub custom_sections: Arc<Vec<(String, Vec<u8>)>>,
    /// Instructions the IC charges for compiling it (see [`crate::metering::compilation_cost`]).
    pub compilation_cost: u64,
}

/// The custom sections of a module (it was validated already; unreadable ones are skipped).
fn custom_sections(wasm: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for payload in wasmtime::wasmparser::Parser::new(0).parse_all(wasm).flatten() {
        if let wasmtime::wasmparser::Payload::CustomSection(c) = payload {
            out.push((c.name().to_string(), c.data().to_vec()));
        }
    }
    out
}

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Feeds `Hash` output into a sha256 (deterministic, unlike `DefaultHasher`).
struct ShaHasher(Sha256);
impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn disk_key(wasm_hash: &[u8; 32]) -> String {
    let mut h = ShaHasher(Sha256::new());
    h.write(wasm_hash);
    h.write(WASMTIME_VERSION.as_bytes());
    h.write(CONFIG_FINGERPRINT.as_bytes());
    engine().precompile_compatibility_hash().hash(&mut h);
    let digest: [u8; 32] = h.0.finalize().into();
    hex(&digest)
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compiles (or fetches from cache) the module for `wasm`.
pub(crate) fn load_module(wasm: &[u8]) -> Result<CompiledModule> {
    static MEMO: OnceLock<Mutex<HashMap<[u8; 32], CompiledModule>>> = OnceLock::new();
    let wasm_hash = sha256(wasm);
    let memo = MEMO.get_or_init(Default::default);
    if let Some(m) = memo.lock().ok().and_then(|m| m.get(&wasm_hash).cloned()) {
        return Ok(m);
    }
    let wasm = &*decompressed(wasm)?;
    let module = load_or_compile(wasm, &wasm_hash)?;
    let pre = imports::linker(&module)
        .and_then(|l| l.instantiate_pre(&module))
        .map_err(|e| anyhow::anyhow!("ic-host: cannot link the canister wasm: {e:#}"))?;
    let compiled = CompiledModule {
        module,
        pre: Arc::new(pre),
        wasm_hash,
        wasm_len: wasm.len(),
        custom_sections: Arc::new(custom_sections(wasm)),
        compilation_cost: crate::metering::compilation_cost(wasm).context("ic-host: invalid canister wasm")?,
    };
    if let Ok(mut m) = memo.lock() {
        m.insert(wasm_hash, compiled.clone());
    }
    Ok(compiled)
}

/// The largest Wasm module the IC accepts once decompressed.
pub const MAX_DECOMPRESSED_WASM: u64 = 100 << 20;

/// `wasm` itself, or its contents if it is gzip-compressed (as the IC accepts modules:
/// `module_hash` stays the hash of the bytes installed).
fn decompressed(wasm: &[u8]) -> Result<std::borrow::Cow<'_, [u8]>> {
    use std::io::Read;
    if !wasm.starts_with(&[0x1f, 0x8b]) {
        return Ok(wasm.into());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(wasm)
        .take(MAX_DECOMPRESSED_WASM + 1)
        .read_to_end(&mut out)
        .context("ic-host: invalid canister wasm: a gzip stream that does not decompress")?;
    if out.len() as u64 > MAX_DECOMPRESSED_WASM {
        anyhow::bail!("ic-host: invalid canister wasm: more than {MAX_DECOMPRESSED_WASM} bytes once decompressed");
    }
    Ok(out.into())
}

/// `wasm_hash` is the hash of the module as installed (compressed or not); `wasm` is its
/// decompressed code.
fn load_or_compile(wasm: &[u8], wasm_hash: &[u8; 32]) -> Result<Module> {
    let dir = module_cache_dir();
    let path = dir.join(format!("{}.cwasm", disk_key(wasm_hash)));
    if path.is_file() {
        // SAFETY: the file was produced by `Module::serialize` of this very
        // engine configuration (the key covers wasmtime version + config) and
        // is only ever written atomically. wasmtime additionally checks the
        // header and rejects incompatible artifacts; we recompile on error.
        match unsafe { Module::deserialize_file(engine(), &path) } {
            Ok(m) => return Ok(m),
            Err(_) => {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
    let rewritten = rewrite::rewrite(wasm).context("ic-host: invalid canister wasm")?;
    let module = Module::new(engine(), &rewritten)
        .map_err(anyhow::Error::from)
        .context("ic-host: failed to compile canister wasm")?;
    // Caching is best effort: a read-only or missing directory only costs time.
    if let Ok(bytes) = module.serialize() {
        let _ = write_atomically(&dir, &path, &bytes);
    }
    Ok(module)
}

/// Writes `bytes` to `path` via a temp file in `dir` + rename.
pub(crate) fn write_atomically(dir: &std::path::Path, path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{:?}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("cache"),
        std::process::id(),
        std::thread::current().id()
    ));
    let result = (|| -> Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
