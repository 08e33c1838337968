//! Records kept in stable memory (CBOR). Adding a field: make it `#[serde(default)]` so
//! records written by older builds still decode.

use candid::Principal;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::api::{AssetKind, Member, MemoryMeta, Role, UploadConfig};

pub const MIN_CHUNK_SIZE: u32 = 64 * 1024;
/// Ingress messages are at most 2 MiB; this leaves room for the Candid envelope.
pub const MAX_CHUNK_SIZE: u32 = 1_900_000;
pub const DEFAULT_CHUNK_SIZE: u32 = 1_800_000;
pub const MAX_TEXT_LEN: usize = 512;
pub const MAX_KEY_LEN: usize = 128;
/// Bytes the rolling hash may advance in one message: one full chunk (always at least
/// one chunk), so every put and finish stays near 0.4 % of the 40 B instruction limit
/// whatever the file size and the arrival order.
pub const HASH_BYTES_PER_MESSAGE: u64 = MAX_CHUNK_SIZE as u64;
/// Largest `blobs_read_range`: 2 MiB less room for the Candid reply envelope, so the
/// reply fits the IC's 2 MiB limit even when the query runs as an update.
pub const MAX_READ_BYTES: u64 = (2 << 20) - 4096;
/// Inline assets (placeholders) live with the memory: at most this many bytes each.
pub const MAX_INLINE_BYTES: usize = 32 * 1024;
pub const MAX_ASSETS: usize = 16;
pub const MAX_DESCRIPTION_LEN: usize = 8 * 1024;
pub const MAX_TAGS: usize = 32;
pub const MAX_TAG_LEN: usize = 64;
pub const MAX_PAGE: u32 = 50;
pub const DEFAULT_PAGE: u32 = 20;
/// Every reply stays below this: 2 MiB (the limit of an update, and of a query run as
/// an update) less room for the Candid type table and envelope.
pub const MAX_REPLY_BYTES: u64 = (2 << 20) - (64 << 10);
/// Members plus pending invitations of one capsule.
pub const MAX_MEMBERS: usize = 100;
/// Chunks of one upload: bounds the chunk ranges a session reports (and so its reply).
pub const MAX_CHUNKS: u32 = 65_536;
/// The IC's stable memory of one canister.
pub const STABLE_MEMORY_LIMIT: u64 = 500 << 30;
/// The most `max_stored_bytes` may be set to (464 GiB): the rest of the 500 GiB of stable
/// memory is headroom for the arena's fragmentation (1/16 of the stored bytes) and for
/// every index, so a full canister can always abort, delete and free. A canister still in
/// the flat layout holds less (`storage::layout`); its effective limit is the smaller.
pub const MAX_STORED_BYTES_LIMIT: u64 = crate::storage::layout::NESTED_CAPACITY_BYTES;
/// Most sessions one caller may keep open (the configurable limit's ceiling): bounds
/// the sessions a revocation aborts in one message.
pub const MAX_LIVE_SESSIONS_LIMIT: u32 = 1000;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    pub max_file_size: u64,
    pub session_ttl_ns: u64,
    pub max_live_sessions_per_caller: u32,
    // (Layout 1 also stored `hash_bytes_per_message` and `max_read_bytes`; they are now
    // the constants HASH_BYTES_PER_MESSAGE and MAX_READ_BYTES, and the stored fields
    // are ignored when decoding.)
    #[serde(default = "default_capsule_bytes")]
    pub max_capsule_bytes: u64,
    // ---- layout 3 ----
    #[serde(default = "default_capsules_per_caller")]
    pub max_capsules_per_caller: u32,
    #[serde(default = "default_capsules")]
    pub max_capsules: u64,
    #[serde(default = "default_stored_bytes")]
    pub max_stored_bytes: u64,
    /// Directory mode: only this canister (a keepsake `directory`) creates capsules,
    /// with ids it chooses; users upload and read here directly.
    #[serde(default)]
    pub directory: Option<Principal>,
}

fn default_capsule_bytes() -> u64 {
    100 << 30
}
fn default_capsules_per_caller() -> u32 {
    16
}
fn default_capsules() -> u64 {
    100_000
}
fn default_stored_bytes() -> u64 {
    MAX_STORED_BYTES_LIMIT
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_file_size: 4 << 30,
            session_ttl_ns: 24 * 3600 * 1_000_000_000,
            max_live_sessions_per_caller: 64,
            max_capsule_bytes: default_capsule_bytes(),
            max_capsules_per_caller: default_capsules_per_caller(),
            max_capsules: default_capsules(),
            max_stored_bytes: default_stored_bytes(),
            directory: None,
        }
    }
}

impl Config {
    pub fn view(&self) -> UploadConfig {
        UploadConfig {
            min_chunk_size: MIN_CHUNK_SIZE,
            max_chunk_size: MAX_CHUNK_SIZE,
            default_chunk_size: DEFAULT_CHUNK_SIZE,
            max_file_size: self.max_file_size,
            session_ttl_ns: self.session_ttl_ns,
            max_live_sessions_per_caller: self.max_live_sessions_per_caller,
            hash_bytes_per_message: HASH_BYTES_PER_MESSAGE,
            max_read_bytes: MAX_READ_BYTES,
            max_capsule_bytes: self.max_capsule_bytes,
            max_capsules_per_caller: Some(self.max_capsules_per_caller),
            max_capsules: Some(self.max_capsules),
            max_stored_bytes: Some(self.max_stored_bytes),
            max_members_per_capsule: Some(MAX_MEMBERS as u32),
            max_chunks_per_upload: Some(MAX_CHUNKS),
            max_reply_bytes: Some(MAX_REPLY_BYTES),
            directory: self.directory,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Finished(u64),
    Aborted,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: u64,
    pub capsule_id: u64,
    pub owner: Principal,
    pub size: u64,
    pub chunk_size: u32,
    pub chunk_count: u32,
    pub expected_sha256: Option<ByteBuf>,
    pub mime: String,
    pub name: String,
    pub pmid: Option<String>,
    pub idempotency_key: Option<String>,
    /// `sha256(pmid "#" id)`: the first half of every chunk key of this session.
    pub stem: ByteBuf,
    pub created_at_ns: u64,
    pub expires_at_ns: u64,
    pub status: SessionStatus,
    pub received_chunks: u32,
    pub received_bytes: u64,
    /// Chunks `0..hashed_chunks` have been fed to the rolling hash, in order.
    pub hashed_chunks: u32,
    pub hashed_bytes: u64,
    /// sha2 0.11 `SerializableState` of the rolling hasher after `hashed_chunks`.
    pub hasher: ByteBuf,
}

impl SessionRecord {
    pub fn stem(&self) -> [u8; 32] {
        self.stem.as_slice().try_into().expect("stem is 32 bytes")
    }

    /// Exact length chunk `idx` must have.
    pub fn chunk_len(&self, idx: u32) -> u32 {
        if idx + 1 < self.chunk_count {
            self.chunk_size
        } else {
            (self.size - u64::from(self.chunk_size) * u64::from(self.chunk_count - 1)) as u32
        }
    }

    pub fn is_expired(&self, now: u64) -> bool {
        self.status == SessionStatus::Open && now >= self.expires_at_ns
    }

    /// Bytes this session holds against the quotas: its declared size while open.
    pub fn reserved(&self) -> u64 {
        if self.status == SessionStatus::Open {
            self.size
        } else {
            0
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlobRecord {
    pub id: u64,
    pub capsule_id: u64,
    pub size: u64,
    pub sha256: ByteBuf,
    pub chunk_size: u32,
    pub chunk_count: u32,
    /// Chunk key stem: the blob's bytes are the session's chunks, never copied.
    pub stem: ByteBuf,
    pub mime: String,
    pub name: String,
    pub created_at_ns: u64,
    pub session_id: u64,
    /// Memory assets that point at this blob. Dropping the last one frees the blob.
    #[serde(default)]
    pub refs: u32,
}

impl BlobRecord {
    pub fn stem(&self) -> [u8; 32] {
        self.stem.as_slice().try_into().expect("stem is 32 bytes")
    }
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256.as_slice().try_into().expect("sha256 is 32 bytes")
    }
}

/// Inline bytes live in the chunk arena, not in the memory record, so memory records
/// stay small and a map node never carries kilobytes of image data.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct InlineRef {
    pub offset: u64,
    pub len: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AssetRecord {
    pub kind: AssetKind,
    pub blob_id: Option<u64>,
    pub inline: Option<InlineRef>,
    pub size: u64,
    pub sha256: ByteBuf,
    pub mime: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct MemoryRecord {
    pub id: u64,
    pub capsule_id: u64,
    pub meta: MemoryMeta,
    pub assets: Vec<AssetRecord>,
    pub created_by: Principal,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
    /// The idempotency index entry to drop when the memory is deleted.
    pub idempotency: Option<ByteBuf>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CapsuleRecord {
    pub id: u64,
    pub name: String,
    pub owners: Vec<Principal>,
    pub writers: Vec<Principal>,
    pub readers: Vec<Principal>,
    pub created_at_ns: u64,
    pub bytes_used: u64,
    // ---- layout 3 ----
    /// Bytes declared by the capsule's open sessions.
    #[serde(default)]
    pub reserved_bytes: u64,
    /// Invited, not yet joined.
    #[serde(default)]
    pub invited: Vec<Member>,
    /// Who created it (`None` for capsules created before layout 3).
    #[serde(default)]
    pub created_by: Option<Principal>,
}

impl CapsuleRecord {
    pub fn role_of(&self, p: &Principal) -> Option<Role> {
        if self.owners.contains(p) {
            Some(Role::Owner)
        } else if self.writers.contains(p) {
            Some(Role::Writer)
        } else if self.readers.contains(p) {
            Some(Role::Reader)
        } else {
            None
        }
    }

    pub fn member_count(&self) -> usize {
        self.owners.len() + self.writers.len() + self.readers.len() + self.invited.len()
    }
}
