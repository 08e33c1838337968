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
/// Session records one caller may hold at once, in every state (open, finished, aborted,
/// expired until collected), by default: each keeps ~0.7–1.9 KB of stable memory until
/// housekeeping drops it one TTL after the session ended (so a retried finish or abort
/// gets its answer). Every `uploads_begin` makes a record, also one that finds its bytes
/// already stored and so is never open: without a bound, begin + abort (or begins that
/// finish at once by dedup) kept records for a TTL with no limit. 10,000 records a TTL
/// (24 h by default) is a day's phone library of 2,500 photos with their three
/// renditions, or a 200-memory backup exported and imported again; operators set it
/// (`max_session_records_per_caller`) between `max_live_sessions_per_caller` and
/// [`MAX_SESSION_RECORDS_LIMIT`].
pub const DEFAULT_MAX_SESSION_RECORDS_PER_CALLER: u32 = 10_000;
/// The most `max_session_records_per_caller` may be set to: counting a caller's records
/// reads at most this many index keys (~0.2 M instructions a thousand).
pub const MAX_SESSION_RECORDS_LIMIT: u32 = 100_000;
const _: () = assert!(DEFAULT_MAX_SESSION_RECORDS_PER_CALLER >= MAX_LIVE_SESSIONS_LIMIT);

// ---- what a memory costs ----
//
// A memory holds space beyond its blobs and inline bytes: its record (metadata, asset
// descriptions) and the entries certifying its HTTP responses. Both are charged to the
// capsule's `bytes_used` when the memory is created or changed, the amount is kept in
// the record (`MemoryRecord::charged_bytes`), and exactly that is given back when it is
// deleted. The record is charged as the lengths of its texts plus fixed overheads, an
// upper bound of its CBOR encoding (a unit test checks it for the largest record).

/// Bytes charged for one certified HTTP response: what the stable certification tree
/// takes for it, a path and a trie node in two `StableBTreeMap`s, measured at ~630 bytes
/// a response (80,120 responses, `storage::hash_tree`), rounded up.
pub const CERT_BYTES_PER_RESPONSE: u64 = 640;
/// Certified responses of an asset beside one per part: the 200, 304, 403 and 416.
pub const CERT_RESPONSES_PER_ASSET: u64 = 4;
/// Certified parts of one memory at most (an asset's parts: 1 if inline, its blob's
/// chunks otherwise). Certifying a memory costs about a per-part instruction count ×
/// its parts; 8,192 keeps one memory's certification well under 10 B instructions, a
/// quarter of a message's 40 B limit. A longer file needs a larger chunk size.
pub const MAX_MEMORY_PARTS: u32 = 8_192;
/// A memory record beside its texts: ids, kind, timestamps, creator, idempotency
/// digest, CBOR field names and string headers (tags' included), index entries.
pub const MEMORY_RECORD_OVERHEAD: u64 = 384;
/// One asset record beside its MIME type: kind, blob id or inline reference, size,
/// SHA-256, dimensions, duration, CBOR field names.
pub const ASSET_RECORD_OVERHEAD: u64 = 192;
/// The default of `max_memories_per_capsule`.
pub const DEFAULT_MAX_MEMORIES_PER_CAPSULE: u64 = 100_000;
/// The most `max_memories_per_capsule` may be set to. Capsules created before memories
/// were counted have no stored count; their first create counts their memories up to
/// the limit (one index entry each), so the limit bounds that work: ~1 B instructions
/// at 1,000,000.
pub const MAX_MEMORIES_PER_CAPSULE_LIMIT: u64 = 1_000_000;

/// Certified parts of an asset of `chunk_count` chunks (`None`: inline, one part).
pub fn asset_parts(chunk_count: Option<u32>) -> u32 {
    chunk_count.unwrap_or(1)
}

/// Certified responses of an asset of `parts` parts.
pub fn certified_responses(parts: u32) -> u64 {
    u64::from(parts) + CERT_RESPONSES_PER_ASSET
}

/// Bytes a memory with `meta` and assets of `(mime, parts)` is charged beyond its
/// blobs and inline bytes: its record, and `CERT_BYTES_PER_RESPONSE` per certified
/// response.
pub fn memory_charge<'a>(meta: &MemoryMeta, assets: impl IntoIterator<Item = (&'a str, u32)>) -> u64 {
    let texts = meta.title.len() + meta.description.len() + meta.tags.iter().map(String::len).sum::<usize>();
    let mut bytes = MEMORY_RECORD_OVERHEAD + texts as u64;
    for (mime, parts) in assets {
        bytes += ASSET_RECORD_OVERHEAD + mime.len() as u64 + CERT_BYTES_PER_RESPONSE * certified_responses(parts);
    }
    bytes
}

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
    /// Memories one capsule holds at most.
    #[serde(default = "default_memories_per_capsule")]
    pub max_memories_per_capsule: u64,
    /// Session records one caller holds at most, in every state.
    #[serde(default = "default_session_records_per_caller")]
    pub max_session_records_per_caller: u32,
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
fn default_session_records_per_caller() -> u32 {
    DEFAULT_MAX_SESSION_RECORDS_PER_CALLER
}
fn default_memories_per_capsule() -> u64 {
    DEFAULT_MAX_MEMORIES_PER_CAPSULE
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
            max_memories_per_capsule: default_memories_per_capsule(),
            max_session_records_per_caller: default_session_records_per_caller(),
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
            max_memories_per_capsule: Some(self.max_memories_per_capsule),
            max_parts_per_memory: Some(MAX_MEMORY_PARTS),
            max_session_records_per_caller: Some(self.max_session_records_per_caller),
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
    /// Bytes charged to the capsule for this memory beyond its blobs and inline bytes
    /// (`memory_charge`), given back when it is deleted. 0 for memories created before
    /// memories were charged: they give back nothing, and are charged from their next
    /// change on.
    #[serde(default)]
    pub charged_bytes: u64,
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
    /// Memories in the capsule; `None` for capsules created before memories were
    /// counted, until their next memory is created (which counts them once).
    #[serde(default)]
    pub memory_count: Option<u64>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MemoryKind;

    fn encoded_len<T: Serialize>(v: &T) -> u64 {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out.len() as u64
    }

    fn record(text: usize, tags: usize, tag_len: usize, mime: usize, assets: usize, big: bool) -> MemoryRecord {
        // Multi-byte characters, so byte lengths are what is counted.
        let s = |n: usize| "é".repeat(n / 2);
        let n = if big { u64::MAX } else { 1 };
        let asset = AssetRecord {
            kind: AssetKind::Placeholder,
            blob_id: Some(n),
            inline: Some(InlineRef { offset: n, len: u32::MAX }),
            size: n,
            sha256: ByteBuf::from(vec![1; 32]),
            mime: s(mime),
            width: Some(u32::MAX),
            height: Some(u32::MAX),
            duration_ms: Some(n),
        };
        MemoryRecord {
            id: n,
            capsule_id: n,
            meta: MemoryMeta {
                title: s(text),
                kind: MemoryKind::Document,
                description: s(text * 16),
                taken_at_ns: Some(n),
                tags: vec![s(tag_len); tags],
            },
            assets: vec![asset; assets],
            created_by: Principal::from_slice(&[7; 29]),
            created_at_ns: u64::MAX,
            updated_at_ns: u64::MAX,
            idempotency: Some(ByteBuf::from(vec![2; 32])),
            charged_bytes: u64::MAX,
        }
    }

    /// The record part of `memory_charge` (everything but certification) is at least
    /// what the record takes encoded, for the largest record and for small ones; and
    /// not wildly more for a small one.
    #[test]
    fn memory_charge_covers_the_encoded_record() {
        let cases = [
            record(MAX_TEXT_LEN, MAX_TAGS, MAX_TAG_LEN, MAX_TEXT_LEN, 7, true),
            record(MAX_TEXT_LEN, MAX_TAGS, 2, 2, 7, true),
            record(0, 0, 0, 0, 0, true),
            record(0, 0, 0, 0, 1, true),
            record(0, 0, 0, 0, 0, false),
        ];
        for rec in &cases {
            let cert: u64 = rec.assets.len() as u64 * CERT_BYTES_PER_RESPONSE * certified_responses(1);
            let charged = memory_charge(&rec.meta, rec.assets.iter().map(|a| (a.mime.as_str(), 1))) - cert;
            let encoded = encoded_len(rec);
            assert!(charged >= encoded, "charged {charged} < encoded {encoded} ({} assets)", rec.assets.len());
            assert!(charged <= 2 * encoded + 128, "charged {charged} ≫ encoded {encoded}");
        }
    }

    #[test]
    fn certification_is_charged_per_response() {
        let meta = MemoryMeta { title: String::new(), kind: MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec![] };
        let base = memory_charge(&meta, []);
        assert_eq!(base, MEMORY_RECORD_OVERHEAD);
        // an inline asset: 1 part + 200/304/403/416; a 40-chunk blob: 40 + 4
        assert_eq!(memory_charge(&meta, [("", asset_parts(None))]) - base, ASSET_RECORD_OVERHEAD + 5 * CERT_BYTES_PER_RESPONSE);
        assert_eq!(memory_charge(&meta, [("ab", asset_parts(Some(40)))]) - base, ASSET_RECORD_OVERHEAD + 2 + 44 * CERT_BYTES_PER_RESPONSE);
    }
}
