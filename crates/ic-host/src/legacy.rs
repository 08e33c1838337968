//! Reading the old single-file state format (written by `save_state` up to the page
//! store; only read now, to migrate such a file into a host).
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

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use candid::Principal;
use sha2::{Digest, Sha256};

const MAGIC: &[u8; 8] = b"ICHOSTST";
const VERSION: u32 = 1;
/// Upper bound for length-prefixed small fields (principals, certified data).
const MAX_SMALL: u32 = 1024;
const MAX_CONTROLLERS: u32 = 1024;
/// Stable bytes are handed out in pieces of this size (a multiple of 4 KiB).
const PIECE: usize = 1 << 20;

/// Everything in the file but the stable bytes.
#[derive(Debug, Clone)]
pub(crate) struct Header {
    #[allow(dead_code)]
    pub wasm_hash: [u8; 32],
    pub time: u64,
    pub global_timer: u64,
    pub canister_version: u64,
    pub cycle_balance: u128,
    pub canister_id: Principal,
    pub controllers: Vec<Principal>,
    pub certified_data: Vec<u8>,
    pub pages: u64,
    pub max_pages: u64,
}

struct HashingReader<R: Read> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    fn fill(&mut self, b: &mut [u8]) -> Result<()> {
        self.inner.read_exact(b).context("state file truncated")?;
        self.hasher.update(&*b);
        Ok(())
    }
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut b = [0u8; N];
        self.fill(&mut b)?;
        Ok(b)
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }
    fn small(&mut self) -> Result<Vec<u8>> {
        let len = self.u32()?;
        ensure!(len <= MAX_SMALL, "state file corrupt: field length {len}");
        let mut v = vec![0u8; len as usize];
        self.fill(&mut v)?;
        Ok(v)
    }
}

/// Where a read file goes.
pub(crate) trait Sink {
    /// Called once the header is read.
    fn header(&mut self, h: &Header) -> Result<()>;
    /// The stored stable bytes, in order (offsets are multiples of 1 MiB).
    fn stable(&mut self, offset: u64, bytes: &[u8]) -> Result<()>;
}

/// Reads `path` into `sink`. Fails, after the fact, if the file's checksum does not
/// match: the caller discards what it got.
pub(crate) fn read(path: &Path, sink: &mut impl Sink) -> Result<Header> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut r = HashingReader { inner: BufReader::with_capacity(PIECE, file), hasher: Sha256::new() };
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
    let h = Header {
        wasm_hash,
        time,
        global_timer,
        canister_version,
        cycle_balance,
        canister_id,
        controllers,
        certified_data,
        pages,
        max_pages,
    };
    sink.header(&h)?;
    let mut buf = vec![0u8; PIECE];
    let mut offset = 0u64;
    while offset < stored_len {
        let n = (stored_len - offset).min(PIECE as u64) as usize;
        r.fill(&mut buf[..n])?;
        sink.stable(offset, &buf[..n])?;
        offset += n as u64;
    }
    let expected: [u8; 32] = r.hasher.finalize().into();
    let mut actual = [0u8; 32];
    r.inner.read_exact(&mut actual).context("state file truncated (no checksum)")?;
    ensure!(expected == actual, "state file checksum mismatch: {} is corrupt", path.display());
    let mut rest = [0u8; 1];
    if r.inner.read(&mut rest)? != 0 {
        bail!("state file has trailing bytes: {} is corrupt", path.display());
    }
    Ok(h)
}
