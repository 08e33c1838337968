//! Verified, resumable downloads: a blob is streamed chunk by chunk (N reads in flight,
//! written in order) into a hidden partial file, hashed as it is written, and renamed to
//! its name only once its SHA-256 and size match. An interrupted download leaves the
//! partial file; the next run hashes what it holds and reads only the chunks after it.
//! A file that already holds exactly the expected bytes is not downloaded again.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context};
use backend::api::BlobMeta;
use futures::stream::{self, StreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::client::{Client, ClientError};
use crate::fsutil::hex;
use crate::upload::{Progress, StopAfter};

/// A download stopped by the chunk budget (`KEEPSAKE_STOP_AFTER_CHUNKS`, the test hook
/// that stands for a killed process). The partial file stays for the next run.
#[derive(Debug, Default)]
pub struct Stopped {
    /// Chunks the stopped download read (and kept) before it stopped.
    pub chunks_read: u32,
    pub bytes_read: u64,
}

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped part way; run the same command again to resume")
    }
}
impl std::error::Error for Stopped {}

#[derive(Clone, Debug, Default)]
pub struct DownloadOptions {
    pub in_flight: usize,
    /// A budget of chunk reads shared by every download of one run.
    pub stop_after: Option<Arc<StopAfter>>,
    /// Leave a file that already holds the expected bytes alone.
    pub skip_existing: bool,
}

/// What one download did.
#[derive(Clone, Debug, Serialize)]
pub struct Fetched {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    /// The file already held these bytes: nothing was read from the canister.
    pub skipped: bool,
    /// Bytes a partial file from an earlier run already held.
    pub resumed_from: u64,
    pub chunks_read: u32,
    pub bytes_read: u64,
    #[serde(skip)]
    pub meta: BlobMeta,
}

/// The hidden file a download writes before it is verified.
pub fn partial_path(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    out.with_file_name(format!(".{name}.keepsake-partial"))
}

/// Feeds the first `len` bytes of `file` (all of it for `None`) to `hasher`.
fn hash_into(
    file: &mut std::fs::File,
    len: Option<u64>,
    hasher: &mut Sha256,
) -> std::io::Result<u64> {
    file.seek(SeekFrom::Start(0))?;
    let mut w = HashWriter(hasher);
    match len {
        Some(n) => std::io::copy(&mut std::io::Read::by_ref(file).take(n), &mut w),
        None => std::io::copy(file, &mut w),
    }
}

/// SHA-256 of a whole file.
pub fn sha256_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut h = Sha256::new();
    hash_into(&mut std::fs::File::open(path)?, None, &mut h)?;
    Ok(h.finalize().into())
}

/// True when `path` holds exactly `size` bytes hashing to `sha256`.
pub fn holds(path: &Path, size: u64, sha256: &[u8]) -> std::io::Result<bool> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == size => {}
        Ok(_) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    }
    Ok(sha256_file(path)?[..] == *sha256)
}

/// Downloads blob `blob_id` into `out`, verified against the blob's SHA-256 (and
/// against `expected`, the digest a memory's asset records, when given).
pub async fn fetch_blob(
    client: &Client,
    blob_id: u64,
    expected: Option<&[u8]>,
    out: &Path,
    opts: &DownloadOptions,
    progress: &dyn Progress,
) -> anyhow::Result<Fetched> {
    let meta = client.blobs_meta(blob_id).await?;
    if let Some(exp) = expected {
        if exp != &meta.sha256[..] {
            bail!(
                "checksum mismatch: the memory says {} but blob {blob_id} is {}",
                hex(exp),
                hex(&meta.sha256)
            );
        }
    }
    let done = |skipped, resumed_from, chunks_read, bytes_read, meta: BlobMeta| Fetched {
        path: out.display().to_string(),
        size: meta.size,
        sha256: hex(&meta.sha256),
        skipped,
        resumed_from,
        chunks_read,
        bytes_read,
        meta,
    };
    if opts.skip_existing && holds(out, meta.size, &meta.sha256)? {
        progress.advance(meta.size);
        return Ok(done(true, 0, 0, 0, meta));
    }
    match stream_into(client, &meta, out, opts, progress, true).await {
        Ok((resumed_from, chunks, bytes)) => Ok(done(false, resumed_from, chunks, bytes, meta)),
        // A partial file that was not a prefix of this blob: start over once.
        Err(e) if e.downcast_ref::<PrefixMismatch>().is_some() => {
            let (_, chunks, bytes) = stream_into(client, &meta, out, opts, progress, false).await?;
            Ok(done(false, 0, chunks, bytes, meta))
        }
        Err(e) => Err(e),
    }
}

#[derive(Debug)]
struct PrefixMismatch;
impl std::fmt::Display for PrefixMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the partial file does not belong to this blob")
    }
}
impl std::error::Error for PrefixMismatch {}

/// Streams the chunks after the partial file's whole chunks (all of them without
/// `resume`), then verifies and renames. Returns (bytes resumed from, chunks, bytes read).
async fn stream_into(
    client: &Client,
    meta: &BlobMeta,
    out: &Path,
    opts: &DownloadOptions,
    progress: &dyn Progress,
    resume: bool,
) -> anyhow::Result<(u64, u32, u64)> {
    let tmp = partial_path(out);
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(!resume)
        .open(&tmp)
        .with_context(|| format!("opening {}", tmp.display()))?;
    let cs = u64::from(meta.chunk_size.max(1));
    // Whole chunks only: a chunk torn by an interruption is read again.
    let first = (file.metadata()?.len() / cs).min(u64::from(meta.chunk_count)) as u32;
    let kept = (u64::from(first) * cs).min(meta.size);
    let mut hasher = Sha256::new();
    if hash_into(&mut file, Some(kept), &mut hasher)? != kept {
        bail!("{} changed while it was read", tmp.display());
    }
    file.set_len(kept)?;
    file.seek(SeekFrom::Start(kept))?;
    progress.begin(meta.size, kept);
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let blob_id = meta.id;
    let mut chunks = stream::iter(first..meta.chunk_count)
        .map(|i| {
            let allowed = opts.stop_after.as_ref().is_none_or(|s| s.take());
            async move {
                if !allowed {
                    return Err(anyhow::Error::new(Stopped::default()));
                }
                client
                    .blobs_read_chunk(blob_id, i)
                    .await
                    .map_err(|e: ClientError| anyhow::Error::new(e))
            }
        })
        .buffered(opts.in_flight.max(1));
    let (mut n, mut bytes) = (0u32, 0u64);
    let mut failure = None;
    while let Some(chunk) = chunks.next().await {
        match chunk {
            Ok(c) => {
                hasher.update(&c);
                w.write_all(&c)?;
                n += 1;
                bytes += c.len() as u64;
                progress.advance(c.len() as u64);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    drop(chunks);
    // Whatever happened, what was written stays for the next run.
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    if let Some(e) = failure {
        if e.is::<Stopped>() {
            return Err(anyhow::Error::new(Stopped {
                chunks_read: n,
                bytes_read: bytes,
            }));
        }
        return Err(e);
    }
    let digest = hasher.finalize();
    let size = kept + bytes;
    if size != meta.size || digest[..] != meta.sha256[..] {
        let _ = std::fs::remove_file(&tmp);
        if kept > 0 {
            return Err(anyhow::Error::new(PrefixMismatch));
        }
        bail!(
            "checksum mismatch: downloaded {size} bytes hashing to {}, expected {} bytes hashing to {}",
            hex(&digest),
            meta.size,
            hex(&meta.sha256)
        );
    }
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok((kept, n, bytes))
}

struct HashWriter<'a>(&'a mut Sha256);
impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Writes inline bytes to `out` (atomically) unless it already holds them; true when
/// written.
pub fn write_inline(out: &Path, bytes: &[u8], skip_existing: bool) -> std::io::Result<bool> {
    if skip_existing && holds(out, bytes.len() as u64, &Sha256::digest(bytes))? {
        return Ok(false);
    }
    crate::fsutil::write_atomic(out, bytes)?;
    Ok(true)
}

/// The stop by the chunk budget behind `e`, if that is what `e` is.
pub fn stopped(e: &anyhow::Error) -> Option<&Stopped> {
    e.chain().find_map(|c| c.downcast_ref::<Stopped>())
}
