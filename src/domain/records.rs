//! Records kept in stable memory (CBOR). Adding a field: make it `#[serde(default)]` so
//! records written by older builds still decode.

use candid::Principal;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::api::{Role, UploadConfig};

pub const MIN_CHUNK_SIZE: u32 = 64 * 1024;
/// Ingress messages are at most 2 MiB; this leaves room for the Candid envelope.
pub const MAX_CHUNK_SIZE: u32 = 1_900_000;
pub const DEFAULT_CHUNK_SIZE: u32 = 1_800_000;
pub const MAX_TEXT_LEN: usize = 512;
pub const MAX_KEY_LEN: usize = 128;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    pub max_file_size: u64,
    pub session_ttl_ns: u64,
    pub max_live_sessions_per_caller: u32,
    pub hash_bytes_per_message: u64,
    pub max_read_bytes: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_file_size: 4 << 30,
            session_ttl_ns: 24 * 3600 * 1_000_000_000,
            max_live_sessions_per_caller: 64,
            // Two full chunks: in-order uploads with parallel puts drain the hash backlog
            // as they go, and no message hashes more than this.
            hash_bytes_per_message: 2 * MAX_CHUNK_SIZE as u64,
            max_read_bytes: 2 << 20,
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
            hash_bytes_per_message: self.hash_bytes_per_message,
            max_read_bytes: self.max_read_bytes,
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
}

impl BlobRecord {
    pub fn stem(&self) -> [u8; 32] {
        self.stem.as_slice().try_into().expect("stem is 32 bytes")
    }
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
}
