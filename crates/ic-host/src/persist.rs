//! Saving / loading canister state to a file.
//!
//! Format (all integers little endian):
//! ```text
//! magic "ICHOSTST" | version u32 (=1)
//! wasm_sha256 [32] | time u64 | global_timer u64 | canister_version u64 | cycle_balance u128
//! canister_id: len u32 + bytes
//! controllers: count u32, then each len u32 + bytes
//! certified_data: len u32 + bytes
//! stable_pages u64 | max_stable_pages u64 | stored_len u64 | stored bytes (trailing zeros trimmed)
//! sha256 of everything above [32]
//! ```
//! Written to a temp file in the same directory, fsynced, then renamed.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use candid::Principal;
use sha2::{Digest, Sha256};

use crate::state::{CanisterState, StableMemory};

const MAGIC: &[u8; 8] = b"ICHOSTST";
const VERSION: u32 = 1;
/// Upper bound for length-prefixed small fields (principals, certified data).
const MAX_SMALL: u32 = 1024;
const MAX_CONTROLLERS: u32 = 1024;

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

struct HashingReader<R: Read> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.inner.read_exact(&mut b).context("state file truncated")?;
        self.hasher.update(b);
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn vec(&mut self, len: u64) -> Result<Vec<u8>> {
        let len = usize::try_from(len).context("state file field too large")?;
        let mut v = Vec::new();
        v.try_reserve_exact(len).context("state file field too large")?;
        v.resize(len, 0);
        self.inner.read_exact(&mut v).context("state file truncated")?;
        self.hasher.update(&v);
        Ok(v)
    }
    fn small(&mut self) -> Result<Vec<u8>> {
        let len = self.u32()?;
        ensure!(len <= MAX_SMALL, "state file corrupt: field length {len}");
        self.vec(len.into())
    }
}

fn put_small<W: Write>(w: &mut W, bytes: &[u8]) -> Result<()> {
    w.write_all(&(bytes.len() as u32).to_le_bytes())?;
    w.write_all(bytes)?;
    Ok(())
}

pub(crate) fn save(path: &Path, c: &CanisterState, wasm_hash: &[u8; 32]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file_name = path.file_name().context("state path has no file name")?.to_string_lossy().into_owned();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| -> Result<()> {
        let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = HashingWriter { inner: BufWriter::new(file), hasher: Sha256::new() };
        w.write_all(MAGIC)?;
        w.write_all(&VERSION.to_le_bytes())?;
        w.write_all(wasm_hash)?;
        w.write_all(&c.time.to_le_bytes())?;
        w.write_all(&c.global_timer.to_le_bytes())?;
        w.write_all(&c.canister_version.to_le_bytes())?;
        w.write_all(&c.cycle_balance.to_le_bytes())?;
        put_small(&mut w, c.canister_id.as_slice())?;
        w.write_all(&(c.controllers.len() as u32).to_le_bytes())?;
        for p in &c.controllers {
            put_small(&mut w, p.as_slice())?;
        }
        put_small(&mut w, &c.certified_data)?;
        let stored = c.stable.stored();
        let trimmed = &stored[..stored.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1)];
        w.write_all(&c.stable.pages().to_le_bytes())?;
        w.write_all(&c.stable.max_pages.to_le_bytes())?;
        w.write_all(&(trimmed.len() as u64).to_le_bytes())?;
        w.write_all(trimmed)?;
        let digest = w.hasher.finalize();
        let mut inner = w.inner;
        inner.write_all(&digest)?;
        let file = inner.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn load(path: &Path) -> Result<(CanisterState, [u8; 32])> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = HashingReader { inner: BufReader::new(file), hasher: Sha256::new() };
    ensure!(&r.bytes::<8>()? == MAGIC, "{} is not an ic-host state file", path.display());
    let version = r.u32()?;
    ensure!(version == VERSION, "unsupported ic-host state file version {version} (expected {VERSION})");
    let wasm_hash = r.bytes::<32>()?;
    let time = r.u64()?;
    let global_timer = r.u64()?;
    let canister_version = r.u64()?;
    let cycle_balance = u128::from_le_bytes(r.bytes()?);
    let canister_id = Principal::try_from_slice(&r.small()?).context("state file: bad canister id")?;
    let n = r.u32()?;
    ensure!(n <= MAX_CONTROLLERS, "state file corrupt: {n} controllers");
    let mut controllers = Vec::new();
    for _ in 0..n {
        controllers.push(Principal::try_from_slice(&r.small()?).context("state file: bad controller")?);
    }
    let certified_data = r.small()?;
    let pages = r.u64()?;
    let max_pages = r.u64()?;
    let stored_len = r.u64()?;
    ensure!(
        pages.checked_mul(crate::state::PAGE_SIZE).is_some_and(|size| stored_len <= size),
        "state file corrupt: stable data longer than stable memory"
    );
    let data = r.vec(stored_len)?;
    let expected: [u8; 32] = r.hasher.finalize().into();
    let mut actual = [0u8; 32];
    r.inner.read_exact(&mut actual).context("state file truncated (no checksum)")?;
    ensure!(expected == actual, "state file checksum mismatch: {} is corrupt", path.display());
    let mut rest = [0u8; 1];
    if r.inner.read(&mut rest)? != 0 {
        bail!("state file has trailing bytes: {} is corrupt", path.display());
    }
    let stable = StableMemory::from_parts(data, pages, max_pages.max(pages))
        .context("state file corrupt: inconsistent stable memory")?;
    Ok((
        CanisterState {
            canister_id,
            controllers,
            stable,
            time,
            global_timer,
            certified_data,
            canister_version,
            cycle_balance,
        },
        wasm_hash,
    ))
}
