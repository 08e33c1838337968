//! Candid types of the public interface. `backend.did` is generated from these.

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

// Fields added after the first release are `opt`: clients built with these types still
// decode the replies of an older canister, and older clients ignore them.

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
    /// Memory assets that use this blob. A blob no memory uses can be deleted with
    /// `blobs_delete`.
    pub refs: Option<u32>,
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
    pub max_capsule_bytes: u64,
    /// Capsules one principal may create (controllers are not bounded).
    pub max_capsules_per_caller: Option<u32>,
    /// Capsules the canister holds at most.
    pub max_capsules: Option<u64>,
    /// Bytes the canister stores at most (blobs, inline assets, reserved uploads, space
    /// not yet freed): the rest of stable memory is headroom for the indexes and
    /// housekeeping, so a full canister still aborts, deletes and frees.
    pub max_stored_bytes: Option<u64>,
    /// Members plus pending invitations of one capsule.
    pub max_members_per_capsule: Option<u32>,
    /// Chunks of one upload (a larger file needs a larger chunk size).
    pub max_chunks_per_upload: Option<u32>,
    /// Every reply (pages included) stays below this many bytes.
    pub max_reply_bytes: Option<u64>,
    /// Set in directory mode: capsules are created through this directory canister.
    pub directory: Option<Principal>,
    /// Memories one capsule holds at most.
    pub max_memories_per_capsule: Option<u64>,
    /// Certified parts of one memory at most: the sum over its assets of 1 for an
    /// inline asset and the blob's `chunk_count` otherwise (a longer file needs a larger
    /// chunk size).
    pub max_parts_per_memory: Option<u32>,
    /// Upload sessions one caller may hold at once in any state: open, finished or
    /// aborted (a record is kept one `session_ttl_ns` after it ends, for retries) and
    /// expired ones housekeeping has not dropped yet. Every `uploads_begin` makes one,
    /// also one that finds its bytes already stored.
    pub max_session_records_per_caller: Option<u32>,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
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
    pub memories: u64,
    /// Bytes queued for freeing by housekeeping (aborted/expired uploads, deleted blobs).
    pub gc_pending_bytes: u64,
    /// Bytes freed by housekeeping since the canister was created.
    pub bytes_freed_total: u64,
    /// Bytes declared by open upload sessions (reserved against the quotas).
    pub reserved_bytes: Option<u64>,
    /// Bytes counted against `max_stored_bytes` right now.
    pub stored_bytes: Option<u64>,
    /// Content this canister's stable layout can hold at most (the effective
    /// `max_stored_bytes` is the smaller of the two): 464 GiB for canisters installed
    /// with layout 4 or later, 224 GiB for older ones (their flat layout is kept).
    pub capacity_bytes: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CapsuleCreateArgs {
    pub name: String,
}

/// `directory_capsules_create`: a capsule the directory placed here, with the id it
/// chose (ids are unique across all of the directory's storage canisters).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct DirectoryCapsuleArgs {
    pub id: u64,
    pub owner: Principal,
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
    /// Bytes declared by the capsule's open upload sessions (reserved at `uploads_begin`).
    pub reserved_bytes: Option<u64>,
    /// Principals invited but not yet joined (`capsules_accept`), with the role they get.
    pub invited: Option<Vec<Member>>,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    pub principal: Principal,
    pub role: Role,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CapsulePage {
    pub capsules: Vec<Capsule>,
    /// Pass back as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<u64>,
}

/// An invitation to a capsule: it takes effect when the invitee calls `capsules_accept`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    pub capsule_id: u64,
    pub capsule_name: String,
    pub role: Role,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct InvitationPage {
    pub invitations: Vec<Invitation>,
    pub next_cursor: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UploadsPageArgs {
    /// `null`: the caller's own open sessions. A capsule id: every open session of that
    /// capsule (owners and controllers only).
    pub capsule_id: Option<u64>,
    pub cursor: Option<u64>,
    pub limit: Option<u32>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SessionPage {
    pub sessions: Vec<Session>,
    pub next_cursor: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BlobPage {
    pub blobs: Vec<BlobMeta>,
    pub next_cursor: Option<u64>,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AssetKind {
    /// The file as the user gave it.
    Original,
    /// A large rendition for viewing (photos: 2048 px on the long side).
    Display,
    /// A small rendition for grids (512 px).
    Thumbnail,
    /// A tiny inline image shown while the others load (32 px, ≤ 32 KiB).
    Placeholder,
    /// A still frame of a video.
    Poster,
    /// A smaller, streamable rendition of a video.
    Preview,
    /// Anything else the app keeps with the memory (sidecar, caption file, …).
    Other,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum AssetSource {
    /// A finished blob of the same capsule.
    Blob(u64),
    /// Bytes stored with the memory itself (at most 32 KiB).
    Inline(ByteBuf),
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AssetInput {
    pub kind: AssetKind,
    pub source: AssetSource,
    pub mime: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Asset {
    pub kind: AssetKind,
    /// Set for blob assets: read them with `blobs_read_chunk` / `blobs_read_range`.
    pub blob_id: Option<u64>,
    /// Set for inline assets.
    pub inline: Option<ByteBuf>,
    pub size: u64,
    pub sha256: ByteBuf,
    pub mime: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryKind {
    Photo,
    Video,
    Audio,
    Document,
    Note,
    Other,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct MemoryMeta {
    pub title: String,
    pub kind: MemoryKind,
    pub description: String,
    /// When the moment happened (e.g. EXIF capture time), if known.
    pub taken_at_ns: Option<u64>,
    pub tags: Vec<String>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemoryCreateArgs {
    pub capsule_id: u64,
    pub meta: MemoryMeta,
    pub assets: Vec<AssetInput>,
    /// Same caller + capsule + key returns the same memory (safe retries).
    pub idempotency_key: Option<String>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Memory {
    pub id: u64,
    pub capsule_id: u64,
    pub meta: MemoryMeta,
    pub assets: Vec<Asset>,
    pub created_by: Principal,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MemoryPage {
    pub memories: Vec<Memory>,
    /// Pass back as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<u64>,
}

/// Controllers change limits with `admin_set_config`; `null` keeps a value.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ConfigUpdate {
    pub max_file_size: Option<u64>,
    pub max_capsule_bytes: Option<u64>,
    pub max_live_sessions_per_caller: Option<u32>,
    pub session_ttl_ns: Option<u64>,
    pub max_capsules_per_caller: Option<u32>,
    pub max_capsules: Option<u64>,
    pub max_stored_bytes: Option<u64>,
    /// Puts the canister in directory mode: from then on only this principal (a keepsake
    /// `directory` canister) creates capsules, through `directory_capsules_create`.
    pub directory: Option<Principal>,
    /// Memories one capsule holds at most (at most 1,000,000).
    pub max_memories_per_capsule: Option<u64>,
    /// Upload session records one caller holds at most, in every state (from
    /// `max_live_sessions_per_caller` to 100,000).
    pub max_session_records_per_caller: Option<u32>,
}

/// What one housekeeping pass did (also returned by `admin_gc`).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct GcReport {
    pub sessions_expired: u32,
    pub records_removed: u32,
    pub chunks_freed: u32,
    pub bytes_freed: u64,
    /// True when work is left for the next pass.
    pub more: bool,
}

/// `http_request` argument: the HTTP gateway interface's `HttpRequest`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: ByteBuf,
    /// Highest response verification version the gateway supports (2 = certified
    /// headers and status, which every response here uses).
    pub certificate_version: Option<u16>,
}

/// `http_request` reply: the HTTP gateway interface's `HttpResponse`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status_code: u16,
    pub headers: Vec<(String, String)>,
    pub body: ByteBuf,
    pub upgrade: Option<bool>,
}

/// An expiring link to one asset of a memory (`links_create`).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// `/m/<memory>/<kind>?token=…`: append it to the canister's HTTP origin.
    pub path: String,
    pub token: String,
    pub expires_at_ns: u64,
}
