//! The upload engine: streams a source (a file, or bytes in memory) chunk by chunk,
//! hashing as it reads, keeps up to N `uploads_put_chunk` calls in flight, skips the
//! chunks a resumed session already has, and finishes with the digest it computed.

use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::api::{self, BeginArgs, BlobMeta, ChunkRange, Session, SessionState};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::client::{Client, ClientError};
use crate::journal::{Entry, Fingerprint, Journal};

/// Default number of chunks in flight.
pub const DEFAULT_IN_FLIGHT: usize = 8;

/// A budget of chunks after which uploads stop as if the process was killed (test hook,
/// `KEEPSAKE_STOP_AFTER_CHUNKS`). Shared by every upload of one run.
#[derive(Debug)]
pub struct StopAfter(AtomicU64);

impl StopAfter {
    pub fn new(chunks: u64) -> Arc<Self> {
        Arc::new(Self(AtomicU64::new(chunks)))
    }
    /// Takes one chunk from the budget; false when it is spent.
    pub fn take(&self) -> bool {
        self.0
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

#[derive(Clone, Debug)]
pub struct UploadOptions {
    pub in_flight: usize,
    /// `None`: the canister's default chunk size.
    pub chunk_size: Option<u32>,
    pub stop_after: Option<Arc<StopAfter>>,
}

impl Default for UploadOptions {
    fn default() -> Self {
        Self {
            in_flight: DEFAULT_IN_FLIGHT,
            chunk_size: None,
            stop_after: None,
        }
    }
}

/// Progress callbacks (the CLI draws a bar; the library draws nothing).
pub trait Progress {
    /// The upload of `total` bytes starts with `done` bytes already on the canister.
    fn begin(&self, _total: u64, _done: u64) {}
    /// `n` more bytes were accepted by the canister (or, downloading, written).
    fn advance(&self, _n: u64) {}
    /// What is being worked on now (e.g. the memory an export is writing).
    fn message(&self, _m: &str) {}
}

/// One file's progress reported into an overall bar (an export or import of many
/// files): bytes count, the per-file `begin` only adds what was already done.
pub struct PartOf<'a>(pub &'a dyn Progress);
impl Progress for PartOf<'_> {
    fn begin(&self, _total: u64, done: u64) {
        self.0.advance(done);
    }
    fn advance(&self, n: u64) {
        self.0.advance(n);
    }
}

/// No progress output.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What one upload did.
#[derive(Clone, Debug, Serialize)]
pub struct UploadReport {
    pub blob_id: u64,
    pub session_id: u64,
    pub size: u64,
    pub sha256: String,
    pub chunks_total: u32,
    /// Chunks this run sent (a resumed upload sends only the missing ones).
    pub chunks_sent: u32,
    pub bytes_sent: u64,
    pub resumed: bool,
    /// The canister already had these bytes (no chunk was needed).
    pub deduplicated: bool,
    pub seconds: f64,
    #[serde(skip)]
    pub blob: BlobMeta,
}

#[derive(Debug)]
pub enum UploadError {
    Client(ClientError),
    Io(std::io::Error),
    /// The stop hook fired: `chunks_sent` chunks went out, the session stays open.
    Interrupted {
        session_id: u64,
        chunks_sent: u32,
        chunks_total: u32,
    },
    Other(anyhow::Error),
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UploadError::Client(e) => write!(f, "{e}"),
            UploadError::Io(e) => write!(f, "reading the file: {e}"),
            UploadError::Interrupted { session_id, chunks_sent, chunks_total } => write!(
                f,
                "upload interrupted after {chunks_sent} of {chunks_total} chunks (session {session_id}); run the same command again to resume"
            ),
            UploadError::Other(e) => write!(f, "{e:#}"),
        }
    }
}

impl std::error::Error for UploadError {}

impl From<ClientError> for UploadError {
    fn from(e: ClientError) -> Self {
        UploadError::Client(e)
    }
}
impl From<std::io::Error> for UploadError {
    fn from(e: std::io::Error) -> Self {
        UploadError::Io(e)
    }
}
impl From<anyhow::Error> for UploadError {
    fn from(e: anyhow::Error) -> Self {
        UploadError::Other(e)
    }
}

fn has(received: &[ChunkRange], idx: u32) -> bool {
    received.iter().any(|r| r.start <= idx && idx < r.end)
}

fn chunk_len(size: u64, chunk_size: u32, idx: u32) -> usize {
    let start = idx as u64 * chunk_size as u64;
    (size - start).min(chunk_size as u64) as usize
}

struct Sent {
    chunks: u32,
    bytes: u64,
}

/// Sends every chunk of `session` that it lacks, reading `reader` from the start, then
/// finishes with the SHA-256 computed while reading.
async fn stream_session(
    client: &Client,
    session: &Session,
    reader: &mut dyn Read,
    opts: &UploadOptions,
    progress: &dyn Progress,
) -> Result<(BlobMeta, Sent), UploadError> {
    let (size, cs, n) = (session.size, session.chunk_size, session.chunk_count);
    let already: u64 = (0..n)
        .filter(|&i| has(&session.received, i))
        .map(|i| chunk_len(size, cs, i) as u64)
        .sum();
    progress.begin(size, already);

    let mut hasher = Sha256::new();
    let mut in_flight = FuturesUnordered::new();
    let mut sent = Sent {
        chunks: 0,
        bytes: 0,
    };
    let mut interrupted = false;
    let mut first_error: Option<UploadError> = None;
    for idx in 0..n {
        let len = chunk_len(size, cs, idx);
        let mut buf = vec![0u8; len];
        reader.read_exact(&mut buf)?;
        hasher.update(&buf);
        if has(&session.received, idx) {
            continue;
        }
        if let Some(stop) = &opts.stop_after {
            if !stop.take() {
                interrupted = true;
                break;
            }
        }
        while in_flight.len() >= opts.in_flight.max(1) {
            match in_flight.next().await {
                Some(Ok(len)) => {
                    sent.chunks += 1;
                    sent.bytes += len;
                    progress.advance(len);
                }
                Some(Err(e)) => {
                    first_error = Some(e);
                    break;
                }
                None => break,
            }
        }
        if first_error.is_some() {
            break;
        }
        let sid = session.id;
        in_flight.push(async move {
            client
                .uploads_put_chunk(sid, idx, buf)
                .await
                .map(|_| len as u64)
                .map_err(UploadError::from)
        });
    }
    // Let the calls already sent complete, whatever happens next.
    while let Some(r) = in_flight.next().await {
        match r {
            Ok(len) => {
                sent.chunks += 1;
                sent.bytes += len;
                progress.advance(len);
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    if interrupted {
        return Err(UploadError::Interrupted {
            session_id: session.id,
            chunks_sent: sent.chunks,
            chunks_total: n,
        });
    }
    let digest = hasher.finalize();
    let blob = finish(client, session.id, &digest, size).await?;
    Ok((blob, sent))
}

/// `uploads_finish`, called again while the canister answers `InProgress` (its rolling
/// hash catches up a bounded number of bytes per message).
pub async fn finish(
    client: &Client,
    session: u64,
    sha256: &[u8],
    size: u64,
) -> Result<BlobMeta, ClientError> {
    let mut rounds = 0u32;
    loop {
        match client.uploads_finish(session, sha256, size).await {
            Err(ClientError::Canister(api::Error::InProgress(_))) if rounds < 100_000 => {
                rounds += 1;
                if rounds.is_multiple_of(64) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            other => return other,
        }
    }
}

fn report(
    blob: BlobMeta,
    session: &Session,
    sent: Sent,
    resumed: bool,
    dedup: bool,
    t0: Instant,
) -> UploadReport {
    UploadReport {
        blob_id: blob.id,
        session_id: session.id,
        size: blob.size,
        sha256: crate::fsutil::hex(&blob.sha256),
        chunks_total: session.chunk_count,
        chunks_sent: sent.chunks,
        bytes_sent: sent.bytes,
        resumed,
        deduplicated: dedup,
        seconds: t0.elapsed().as_secs_f64(),
        blob,
    }
}

/// Uploads a file into `capsule_id`, resuming an interrupted upload of the same file.
/// `key` is the file's idempotency key ([`Fingerprint::key`]); the journal entry is kept
/// (with the blob id) until the caller removes it once the memory exists.
#[allow(clippy::too_many_arguments)]
pub async fn upload_file(
    client: &Client,
    journal: &mut Journal,
    path: &Path,
    fingerprint: &Fingerprint,
    capsule_id: u64,
    mime: &str,
    opts: &UploadOptions,
    progress: &dyn Progress,
) -> Result<UploadReport, UploadError> {
    match upload_file_once(
        client,
        journal,
        path,
        fingerprint,
        capsule_id,
        mime,
        opts,
        progress,
        None,
    )
    .await
    {
        // The session we resumed expired meanwhile: start over once, in a fresh session.
        Err(UploadError::Client(ClientError::Canister(api::Error::Expired(_)))) => {
            journal.remove(&client.target(), capsule_id, &fingerprint.key())?;
            let fresh = format!("{}-{}", fingerprint.key(), now_suffix());
            upload_file_once(
                client,
                journal,
                path,
                fingerprint,
                capsule_id,
                mime,
                opts,
                progress,
                Some(fresh),
            )
            .await
        }
        other => other,
    }
}

fn now_suffix() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{:x}", t.as_millis())
}

#[allow(clippy::too_many_arguments)]
async fn upload_file_once(
    client: &Client,
    journal: &mut Journal,
    path: &Path,
    fingerprint: &Fingerprint,
    capsule_id: u64,
    mime: &str,
    opts: &UploadOptions,
    progress: &dyn Progress,
    session_key: Option<String>,
) -> Result<UploadReport, UploadError> {
    let t0 = Instant::now();
    let key = fingerprint.key();
    let session_key = session_key.unwrap_or_else(|| key.clone());
    let target = client.target();
    let size = fingerprint.size;
    if size == 0 {
        return Err(UploadError::Client(ClientError::Canister(
            api::Error::InvalidArgument("empty files cannot be uploaded".into()),
        )));
    }

    // 1. A session from the journal, if the canister still has it open (or finished it).
    let mut session: Option<Session> = None;
    let mut resumed = false;
    if let Some(e) = journal.get(&target, capsule_id, &key).cloned() {
        if let Some(blob_id) = e.blob_id {
            if let Ok(blob) = client.blobs_meta(blob_id).await {
                let s = client.uploads_status(e.session_id).await.ok();
                let fake = s.unwrap_or_else(|| placeholder_session(e.session_id, &blob));
                return Ok(report(
                    blob,
                    &fake,
                    Sent {
                        chunks: 0,
                        bytes: 0,
                    },
                    true,
                    false,
                    t0,
                ));
            }
        }
        match client.uploads_status(e.session_id).await {
            Ok(s) if s.size == size && s.state != SessionState::Aborted => {
                resumed = true;
                session = Some(s);
            }
            Ok(_) | Err(ClientError::Canister(_)) => journal.remove(&target, capsule_id, &key)?,
            Err(e) => return Err(e.into()),
        }
    }

    // 2. Otherwise begin (the idempotency key returns the same live session if one exists).
    let session = match session {
        Some(s) if s.state == SessionState::Open => s,
        Some(s) => s, // Finished: handled below
        None => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let s = client
                .uploads_begin(&BeginArgs {
                    capsule_id,
                    size,
                    chunk_size: opts.chunk_size,
                    sha256: None,
                    mime: mime.to_string(),
                    name,
                    pmid: Some(key.clone()),
                    idempotency_key: Some(session_key.clone()),
                })
                .await?;
            resumed = !s.received.is_empty();
            s
        }
    };
    journal.put(
        &key,
        Entry {
            target: target.clone(),
            capsule_id,
            session_id: session.id,
            path: fingerprint.path.clone(),
            size,
            blob_id: None,
            memory_id: None,
        },
    )?;

    // A session that comes back finished (resumed after its finish, or already stored)
    // needs no bytes.
    let (blob, sent, already_stored) = if let SessionState::Finished { blob_id } = session.state {
        (
            client.blobs_meta(blob_id).await?,
            Sent {
                chunks: 0,
                bytes: 0,
            },
            !resumed,
        )
    } else {
        let mut file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
        let (blob, sent) = stream_session(client, &session, &mut file, opts, progress).await?;
        (blob, sent, false)
    };
    remember_blob(
        journal,
        &key,
        &target,
        capsule_id,
        &session,
        fingerprint,
        blob.id,
    )?;
    Ok(report(blob, &session, sent, resumed, already_stored, t0))
}

fn remember_blob(
    journal: &mut Journal,
    key: &str,
    target: &str,
    capsule_id: u64,
    session: &Session,
    fp: &Fingerprint,
    blob_id: u64,
) -> anyhow::Result<()> {
    journal.put(
        key,
        Entry {
            target: target.to_string(),
            capsule_id,
            session_id: session.id,
            path: fp.path.clone(),
            size: fp.size,
            blob_id: Some(blob_id),
            memory_id: None,
        },
    )
}

fn placeholder_session(id: u64, blob: &BlobMeta) -> Session {
    Session {
        id,
        capsule_id: blob.capsule_id,
        owner: candid::Principal::anonymous(),
        size: blob.size,
        chunk_size: blob.chunk_size,
        chunk_count: blob.chunk_count,
        sha256: Some(blob.sha256.clone()),
        mime: blob.mime.clone(),
        name: blob.name.clone(),
        pmid: None,
        created_at_ns: blob.created_at_ns,
        expires_at_ns: 0,
        state: SessionState::Finished { blob_id: blob.id },
        received_chunks: blob.chunk_count,
        received_bytes: blob.size,
        hashed_bytes: blob.size,
        received: vec![ChunkRange {
            start: 0,
            end: blob.chunk_count,
        }],
    }
}

/// An upload whose SHA-256 is known before it starts (derivatives, imported files).
#[derive(Clone, Copy, Debug)]
pub struct Declared<'a> {
    pub capsule_id: u64,
    pub size: u64,
    pub sha256: &'a [u8],
    pub name: &'a str,
    pub mime: &'a str,
    /// The session's idempotency key: the same key finds the same live session.
    pub key: &'a str,
    pub pmid: Option<&'a str>,
}

/// Begins (or finds again, by its key) the session of a declared upload. A capsule that
/// already stores these bytes answers with a finished session; if the key names a
/// finished session whose blob was deleted since, a fresh session is begun.
pub async fn begin_declared(
    client: &Client,
    d: &Declared<'_>,
    opts: &UploadOptions,
) -> Result<Session, UploadError> {
    let begin = |key: String| BeginArgs {
        capsule_id: d.capsule_id,
        size: d.size,
        chunk_size: opts.chunk_size,
        sha256: Some(serde_bytes::ByteBuf::from(d.sha256.to_vec())),
        mime: d.mime.to_string(),
        name: d.name.to_string(),
        pmid: d.pmid.map(str::to_string),
        idempotency_key: Some(key),
    };
    let session = client.uploads_begin(&begin(d.key.to_string())).await?;
    if let SessionState::Finished { blob_id } = session.state {
        if let Err(ClientError::Canister(api::Error::NotFound(_))) =
            client.blobs_meta(blob_id).await
        {
            let key = format!("{}-{}", d.key, now_suffix());
            return Ok(client.uploads_begin(&begin(key)).await?);
        }
    }
    Ok(session)
}

/// Sends what `session` lacks, reading the source from its start, and finishes. A
/// finished session (the capsule already had the bytes) needs nothing.
pub async fn complete(
    client: &Client,
    session: &Session,
    reader: &mut dyn Read,
    opts: &UploadOptions,
    progress: &dyn Progress,
) -> Result<UploadReport, UploadError> {
    let t0 = Instant::now();
    if let SessionState::Finished { blob_id } = session.state {
        let blob = client.blobs_meta(blob_id).await?;
        progress.begin(blob.size, blob.size);
        let none = Sent {
            chunks: 0,
            bytes: 0,
        };
        return Ok(report(blob, session, none, false, true, t0));
    }
    let resumed = !session.received.is_empty();
    let (blob, sent) = stream_session(client, session, reader, opts, progress).await?;
    Ok(report(blob, session, sent, resumed, false, t0))
}

/// Uploads bytes held in memory (derivatives). The digest is declared up front, so a
/// canister that already stores these bytes in the capsule answers with the blob at once.
#[allow(clippy::too_many_arguments)]
pub async fn upload_bytes(
    client: &Client,
    bytes: &[u8],
    name: &str,
    mime: &str,
    capsule_id: u64,
    key: &str,
    pmid: Option<&str>,
    opts: &UploadOptions,
    progress: &dyn Progress,
) -> Result<UploadReport, UploadError> {
    let sha = Sha256::digest(bytes);
    let d = Declared {
        capsule_id,
        size: bytes.len() as u64,
        sha256: &sha,
        name,
        mime,
        key,
        pmid,
    };
    let session = begin_declared(client, &d, opts).await?;
    let mut reader = bytes;
    complete(client, &session, &mut reader, opts, progress).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_arithmetic() {
        assert_eq!(chunk_len(10, 4, 0), 4);
        assert_eq!(chunk_len(10, 4, 2), 2);
        let r = [
            ChunkRange { start: 0, end: 2 },
            ChunkRange { start: 5, end: 6 },
        ];
        assert!(has(&r, 0) && has(&r, 1) && !has(&r, 2) && has(&r, 5) && !has(&r, 6));
        let s = StopAfter::new(2);
        assert!(s.take() && s.take() && !s.take() && !s.take());
    }
}
