//! Candid types of the public interface. `backend.did` is generated from these.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Every refusal of the canister: a kind a client can match on, and a message a human
/// can read. A refused call changes nothing.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum Error {
    NotFound(String),
    Unauthorized(String),
    InvalidArgument(String),
    Conflict(String),
    QuotaExceeded(String),
    ChecksumMismatch(String),
    Expired(String),
    /// `uploads_finish` only: every chunk arrived but the rolling hash has not caught up
    /// yet (chunks came out of order). Progress was made; call finish again.
    InProgress(String),
}

impl Error {
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound(_) => "NotFound",
            Error::Unauthorized(_) => "Unauthorized",
            Error::InvalidArgument(_) => "InvalidArgument",
            Error::Conflict(_) => "Conflict",
            Error::QuotaExceeded(_) => "QuotaExceeded",
            Error::ChecksumMismatch(_) => "ChecksumMismatch",
            Error::Expired(_) => "Expired",
            Error::InProgress(_) => "InProgress",
        }
    }
    pub fn message(&self) -> &str {
        match self {
            Error::NotFound(m)
            | Error::Unauthorized(m)
            | Error::InvalidArgument(m)
            | Error::Conflict(m)
            | Error::QuotaExceeded(m)
            | Error::ChecksumMismatch(m)
            | Error::Expired(m)
            | Error::InProgress(m) => m,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind(), self.message())
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BeginArgs {
    pub capsule_id: u64,
    /// Declared file size in bytes (> 0).
    pub size: u64,
    /// Defaults to `upload_config().default_chunk_size`.
    pub chunk_size: Option<u32>,
    /// If given, `uploads_finish` must present the same digest.
    pub sha256: Option<ByteBuf>,
    pub mime: String,
    pub name: String,
    /// Provisional memory id chosen by the client (several uploads may share one).
    pub pmid: Option<String>,
    /// Same caller + capsule + key returns the same live session (safe retries, resume).
    pub idempotency_key: Option<String>,
}

#[derive(CandidType, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u32,
    /// Exclusive.
    pub end: u32,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum SessionState {
    Open,
    Finished { blob_id: u64 },
    Aborted,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: u64,
    pub capsule_id: u64,
    pub owner: Principal,
    pub size: u64,
    pub chunk_size: u32,
    pub chunk_count: u32,
    pub sha256: Option<ByteBuf>,
    pub mime: String,
    pub name: String,
    pub pmid: Option<String>,
    pub created_at_ns: u64,
    pub expires_at_ns: u64,
    pub state: SessionState,
    pub received_chunks: u32,
    pub received_bytes: u64,
    /// Bytes of the contiguous prefix already fed to the rolling SHA-256.
    pub hashed_bytes: u64,
    /// Chunk index ranges already stored: a resuming client sends only the rest.
    pub received: Vec<ChunkRange>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PutChunkOk {
    /// False when these exact bytes were already stored for this index (a retry).
    pub stored: bool,
    pub received_chunks: u32,
    pub received_bytes: u64,
    pub hashed_bytes: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub id: u64,
    pub capsule_id: u64,
    pub size: u64,
    pub sha256: ByteBuf,
    pub chunk_size: u32,
    pub chunk_count: u32,
    pub mime: String,
    pub name: String,
    pub created_at_ns: u64,
    pub session_id: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct UploadConfig {
    pub min_chunk_size: u32,
    pub max_chunk_size: u32,
    pub default_chunk_size: u32,
    pub max_file_size: u64,
    pub session_ttl_ns: u64,
    pub max_live_sessions_per_caller: u32,
    /// Bytes the rolling hash may advance in one message (bounds every message's cost).
    pub hash_bytes_per_message: u64,
    pub max_read_bytes: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    pub layout_version: u32,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub open_sessions: u64,
    pub session_bytes: u64,
    pub arena_bytes: u64,
    pub free_bytes: u64,
    pub stable_pages: u64,
    pub capsules: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CapsuleCreateArgs {
    pub name: String,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Reader,
    Writer,
    Owner,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Capsule {
    pub id: u64,
    pub name: String,
    pub owners: Vec<Principal>,
    pub writers: Vec<Principal>,
    pub readers: Vec<Principal>,
    pub created_at_ns: u64,
    pub bytes_used: u64,
    /// The caller's role in this capsule, if any.
    pub my_role: Option<Role>,
}
