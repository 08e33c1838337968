//! Stable-memory layout. This module owns every `MemoryId` the canister uses.
//!
//! Rules (stable memory is forever):
//! - a `MemoryId` is never reused and never changes the type stored in it;
//! - the header records the layout version; a layout change bumps
//!   [`LAYOUT_VERSION`] and ships a migration in [`State::open`] with a test that
//!   upgrades real old state.
//!
//! Chunk bytes do not live in a `StableBTreeMap`: in ic-stable-structures 0.7 saving a
//! node rewrites every value in it, so multi-megabyte values would rewrite megabytes per
//! insert. The map holds small fixed-size [`ChunkRef`]s keyed by `(stem, idx)`; the bytes
//! live in a dedicated virtual memory managed by [`arena::Arena`].

pub mod arena;
pub mod hash_tree;
pub mod http;
pub mod keys;
pub mod layout;
mod migrate;

use std::borrow::Cow;

use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell, Storable};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::domain::records::{BlobRecord, CapsuleRecord, Config, MemoryRecord, SessionRecord};
pub use keys::{ChunkKey, ChunkRef, DedupEntry, GcItem, MemberKey, OwnerSessionKey, PrincipalKey};

/// Current layout version, recorded in the header.
///
/// - 1: uploads, blobs, capsules (MemoryIds 0-10).
/// - 2: memories, blob reference counts, dedup index, session expiry index and the
///   chunk-freeing queue (MemoryIds 11-16). Migration: `migrate_v1_to_v2`.
/// - 3: invitations, open sessions by capsule, capsules created per principal, blobs
///   by capsule, the blob of every finished session, and a dedup index with one entry
///   per blob (MemoryIds 17-22; 14 is retired); reserved bytes in capsules and header.
///   Plus HTTP serving: chunk body digests, link secret, public memories, the
///   content-addressed index, link-key versions (MemoryIds 23-27, [`http::HttpStable`]).
///   Migration: `migrate_v2_to_v3` (both parts, in `migrate.rs`).
/// - 4: the same maps; a new install puts them in a nested manager with small buckets and
///   the chunk arena alone in an outer one with 16 MiB buckets, so the whole 500 GiB is
///   usable and an empty canister takes ~16 MiB ([`layout`]). Upgraded canisters keep
///   their flat layout (and its 224 GiB capacity): nothing moves, `migrate_v3_to_v4`
///   only records the version.
/// - 5: HTTP certification in stable memory: the certification tree's paths and nodes
///   ([`hash_tree`]) and the memories waiting to be certified (MemoryIds 28-30), and a
///   backlog in the HTTP meta cell. Migration: `migrate_v4_to_v5` records the backlog
///   (every memory, then every content URL), which bounded background passes work off;
///   until a memory is reached its URLs answer `503`, as they did after every upgrade
///   before. Nothing stored is rewritten.
pub const LAYOUT_VERSION: u32 = 5;
const MAGIC: [u8; 4] = *b"KSK1";

// Every MemoryId of the canister. Append only: never reuse or retype a number.
const MEM_HEADER: MemoryId = MemoryId::new(0);
const MEM_CONFIG: MemoryId = MemoryId::new(1);
const MEM_SESSIONS: MemoryId = MemoryId::new(2);
const MEM_OWNER_SESSIONS: MemoryId = MemoryId::new(3);
const MEM_CHUNKS: MemoryId = MemoryId::new(4);
const MEM_BLOBS: MemoryId = MemoryId::new(5);
const MEM_CAPSULES: MemoryId = MemoryId::new(6);
const MEM_MEMBERS: MemoryId = MemoryId::new(7);
const MEM_ARENA_DATA: MemoryId = MemoryId::new(8);
const MEM_ARENA_FREE_BY_OFFSET: MemoryId = MemoryId::new(9);
const MEM_ARENA_FREE_BY_SIZE: MemoryId = MemoryId::new(10);
// Layout 2
const MEM_MEMORIES: MemoryId = MemoryId::new(11);
const MEM_CAPSULE_MEMORIES: MemoryId = MemoryId::new(12);
const MEM_MEMORY_IDEMPOTENCY: MemoryId = MemoryId::new(13);
// 14 held the layout-2 dedup index, `(capsule_id u64 BE, sha256, size u64 BE) ->
// blob_id`: retired at layout 3 (one blob per key only, so layout-1 duplicates lost
// their entry), replaced by 22. Never reused.
#[allow(dead_code)]
const MEM_DEDUP_V2: MemoryId = MemoryId::new(14);
const MEM_SESSION_EXPIRY: MemoryId = MemoryId::new(15);
const MEM_GC_QUEUE: MemoryId = MemoryId::new(16);
// Layout 3
const MEM_INVITATIONS: MemoryId = MemoryId::new(17);
const MEM_CAPSULE_SESSIONS: MemoryId = MemoryId::new(18);
const MEM_PRINCIPALS: MemoryId = MemoryId::new(19);
const MEM_CAPSULE_BLOBS: MemoryId = MemoryId::new(20);
const MEM_FINISHED: MemoryId = MemoryId::new(21);
const MEM_DEDUP: MemoryId = MemoryId::new(22);
// Layout 3, HTTP serving.
const MEM_HTTP_DIGESTS: MemoryId = MemoryId::new(23);
const MEM_HTTP_META: MemoryId = MemoryId::new(24);
const MEM_HTTP_PUBLIC: MemoryId = MemoryId::new(25);
const MEM_HTTP_PUBLIC_SHA: MemoryId = MemoryId::new(26);
const MEM_HTTP_LINK_KEYS: MemoryId = MemoryId::new(27);
// Layout 5, HTTP certification.
const MEM_HTTP_TREE_LEAVES: MemoryId = MemoryId::new(28);
const MEM_HTTP_TREE_NODES: MemoryId = MemoryId::new(29);
const MEM_HTTP_PENDING: MemoryId = MemoryId::new(30);

/// Every map, cell and the arena live in one of these (see [`layout`]).
pub type VMem<M> = layout::SMem<M>;

/// Counters and the layout version. Ids come from here and are never reused, even
/// across upgrades, because the header lives in stable memory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Header {
    pub magic: [u8; 4],
    pub layout_version: u32,
    pub next_session_id: u64,
    pub next_blob_id: u64,
    pub next_capsule_id: u64,
    /// High-water mark of the chunk arena (bytes).
    pub arena_end: u64,
    /// Bytes in free arena extents, ready for reuse.
    pub arena_free_bytes: u64,
    pub blob_count: u64,
    pub blob_bytes: u64,
    /// Sessions neither finished nor aborted (expired ones count until collected).
    pub open_sessions: u64,
    /// Chunk bytes held by open sessions.
    pub session_bytes: u64,
    // ---- layout 2 ----
    #[serde(default = "one")]
    pub next_memory_id: u64,
    #[serde(default)]
    pub memory_count: u64,
    #[serde(default)]
    pub next_gc_seq: u64,
    /// Bytes queued for freeing (aborted or expired sessions, deleted blobs, dedup).
    #[serde(default)]
    pub gc_pending_bytes: u64,
    /// Bytes freed by housekeeping since the canister was created.
    #[serde(default)]
    pub bytes_freed_total: u64,
    // ---- layout 3 ----
    /// Bytes declared by open sessions (each reserves its size until it ends).
    #[serde(default)]
    pub reserved_bytes: u64,
}

fn one() -> u64 {
    1
}

impl Default for Header {
    fn default() -> Self {
        Header {
            magic: MAGIC,
            layout_version: LAYOUT_VERSION,
            next_session_id: 1,
            next_blob_id: 1,
            next_capsule_id: 1,
            arena_end: 0,
            arena_free_bytes: 0,
            blob_count: 0,
            blob_bytes: 0,
            open_sessions: 0,
            session_bytes: 0,
            next_memory_id: 1,
            memory_count: 0,
            next_gc_seq: 0,
            gc_pending_bytes: 0,
            bytes_freed_total: 0,
            reserved_bytes: 0,
        }
    }
}

/// CBOR-encoded storable wrapper for records whose schema may grow (new optional fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cbor<T>(pub T);

impl<T: Serialize + DeserializeOwned> Storable for Cbor<T> {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.clone_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        self.clone_bytes()
    }
    fn from_bytes(bytes: Cow<[u8]>) -> Self {
        // Stable data was written by this module; a decode failure means corrupted or
        // mis-migrated memory, which must stop the message rather than serve garbage.
        Cbor(ciborium::from_reader(bytes.as_ref()).expect("corrupt CBOR record in stable memory"))
    }
    const BOUND: Bound = Bound::Unbounded;
}

impl<T: Serialize> Cbor<T> {
    fn clone_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        ciborium::into_writer(&self.0, &mut out).expect("CBOR encoding into a Vec cannot fail");
        out
    }
}

/// Every stable structure of the canister, opened over one `MemoryManager`.
pub struct Stable<M: Memory> {
    header: StableCell<Cbor<Header>, VMem<M>>,
    config: StableCell<Cbor<Config>, VMem<M>>,
    pub sessions: StableBTreeMap<u64, Cbor<SessionRecord>, VMem<M>>,
    /// `(owner, session)` for every open session, plus one entry per session record
    /// (any state) under a reserved-class principal derived from the owner, which counts
    /// a caller's records.
    pub owner_sessions: StableBTreeMap<OwnerSessionKey, (), VMem<M>>,
    pub chunks: StableBTreeMap<ChunkKey, ChunkRef, VMem<M>>,
    pub blobs: StableBTreeMap<u64, Cbor<BlobRecord>, VMem<M>>,
    pub capsules: StableBTreeMap<u64, Cbor<CapsuleRecord>, VMem<M>>,
    pub members: StableBTreeMap<MemberKey, u8, VMem<M>>,
    pub arena: arena::Arena<VMem<M>>,
    pub memories: StableBTreeMap<u64, Cbor<MemoryRecord>, VMem<M>>,
    /// `(capsule_id, memory_id)`: a capsule's memories in creation order.
    pub capsule_memories: StableBTreeMap<(u64, u64), (), VMem<M>>,
    /// `sha256(caller, capsule, key) -> memory_id` for idempotent `memories_create`.
    pub memory_idempotency: StableBTreeMap<[u8; 32], u64, VMem<M>>,
    /// `(capsule, sha256, size, blob_id)`: a capsule stores identical bytes once.
    pub dedup: StableBTreeMap<DedupEntry, (), VMem<M>>,
    /// `(expires_at_ns, session_id)` for every session record, for housekeeping.
    pub session_expiry: StableBTreeMap<(u64, u64), (), VMem<M>>,
    /// Chunks waiting to be freed, in bounded batches, oldest first.
    pub gc_queue: StableBTreeMap<u64, GcItem, VMem<M>>,
    /// `(invitee, capsule) -> role`: invitations not yet accepted.
    pub invitations: StableBTreeMap<MemberKey, u8, VMem<M>>,
    /// `(capsule, session)` for every open session.
    pub capsule_sessions: StableBTreeMap<(u64, u64), (), VMem<M>>,
    /// Capsules each principal has created.
    pub principals: StableBTreeMap<PrincipalKey, u32, VMem<M>>,
    /// `(capsule, blob)` for every blob.
    pub capsule_blobs: StableBTreeMap<(u64, u64), (), VMem<M>>,
    /// `session -> blob` for each session that made a new blob (as long as the blob
    /// lives), so a retried finish gets its answer after the session record is gone.
    pub finished: StableBTreeMap<u64, u64, VMem<M>>,
    /// HTTP serving (layout 3).
    pub http: http::HttpStable<M>,
    /// Heap copy of the header; written back with [`Stable::save_header`].
    pub hdr: Header,
    raw: M,
    /// New layout (large arena buckets, maps in a nested manager) or flat.
    pub nested: bool,
}

impl<M: Memory + Clone> Stable<M> {
    /// Opens (or creates) the layout in `memory`. Refuses memory written by a newer
    /// layout version: running old code on new state would corrupt it.
    pub fn open(memory: M) -> Result<Self, String> {
        Self::open_layout(memory.clone(), layout::Layout::open(memory))
    }

    /// [`Stable::open`] over a given layout (tests make flat canisters with it).
    pub fn open_layout(memory: M, mm: layout::Layout<M>) -> Result<Self, String> {
        let fresh = mm.get(MEM_HEADER).size() == 0;
        let header = StableCell::init(mm.get(MEM_HEADER), Cbor(Header::default()));
        let hdr = header.get().0.clone();
        if !fresh {
            if hdr.magic != MAGIC {
                return Err("stable memory does not hold a keepsake layout".into());
            }
            if hdr.layout_version > LAYOUT_VERSION {
                return Err(format!(
                    "stable memory has layout version {}, this build understands up to {}; refusing to downgrade",
                    hdr.layout_version, LAYOUT_VERSION
                ));
            }
        }
        let mut arena = arena::Arena::open(
            mm.arena(MEM_ARENA_DATA),
            StableBTreeMap::init(mm.get(MEM_ARENA_FREE_BY_OFFSET)),
            StableBTreeMap::init(mm.get(MEM_ARENA_FREE_BY_SIZE)),
        );
        arena.end = hdr.arena_end;
        arena.free_bytes = hdr.arena_free_bytes;
        let mut st = Stable {
            config: StableCell::init(mm.get(MEM_CONFIG), Cbor(Config::default())),
            sessions: StableBTreeMap::init(mm.get(MEM_SESSIONS)),
            owner_sessions: StableBTreeMap::init(mm.get(MEM_OWNER_SESSIONS)),
            chunks: StableBTreeMap::init(mm.get(MEM_CHUNKS)),
            blobs: StableBTreeMap::init(mm.get(MEM_BLOBS)),
            capsules: StableBTreeMap::init(mm.get(MEM_CAPSULES)),
            members: StableBTreeMap::init(mm.get(MEM_MEMBERS)),
            arena,
            memories: StableBTreeMap::init(mm.get(MEM_MEMORIES)),
            capsule_memories: StableBTreeMap::init(mm.get(MEM_CAPSULE_MEMORIES)),
            memory_idempotency: StableBTreeMap::init(mm.get(MEM_MEMORY_IDEMPOTENCY)),
            dedup: StableBTreeMap::init(mm.get(MEM_DEDUP)),
            session_expiry: StableBTreeMap::init(mm.get(MEM_SESSION_EXPIRY)),
            gc_queue: StableBTreeMap::init(mm.get(MEM_GC_QUEUE)),
            invitations: StableBTreeMap::init(mm.get(MEM_INVITATIONS)),
            capsule_sessions: StableBTreeMap::init(mm.get(MEM_CAPSULE_SESSIONS)),
            principals: StableBTreeMap::init(mm.get(MEM_PRINCIPALS)),
            capsule_blobs: StableBTreeMap::init(mm.get(MEM_CAPSULE_BLOBS)),
            finished: StableBTreeMap::init(mm.get(MEM_FINISHED)),
            http: http::HttpStable::open(
                &mm,
                http::HttpMemoryIds {
                    digests: MEM_HTTP_DIGESTS,
                    meta: MEM_HTTP_META,
                    public: MEM_HTTP_PUBLIC,
                    public_sha: MEM_HTTP_PUBLIC_SHA,
                    link_key_versions: MEM_HTTP_LINK_KEYS,
                    tree_leaves: MEM_HTTP_TREE_LEAVES,
                    tree_nodes: MEM_HTTP_TREE_NODES,
                    pending: MEM_HTTP_PENDING,
                },
            ),
            header,
            hdr,
            raw: memory,
            nested: mm.is_nested(),
        };
        if st.hdr.layout_version == 1 {
            st.migrate_v1_to_v2();
        }
        if st.hdr.layout_version == 2 {
            st.migrate_v2_to_v3();
        }
        if st.hdr.layout_version == 3 {
            st.hdr.layout_version = 4; // migrate_v3_to_v4: nothing to rewrite
        }
        if st.hdr.layout_version == 4 {
            st.migrate_v4_to_v5();
        }
        st.save_header();
        Ok(st)
    }

    pub fn save_header(&mut self) {
        self.hdr.arena_end = self.arena.end;
        self.hdr.arena_free_bytes = self.arena.free_bytes;
        if self.header.get().0 != self.hdr {
            self.header.set(Cbor(self.hdr.clone()));
        }
    }

    pub fn config(&self) -> Config {
        self.config.get().0.clone()
    }

    pub fn set_config(&mut self, config: Config) {
        self.config.set(Cbor(config));
    }

    /// Content this canister's layout can hold.
    pub fn capacity_bytes(&self) -> u64 {
        layout::capacity_bytes(self.nested)
    }

    /// Size of the whole stable memory in 64 KiB pages.
    pub fn stable_pages(&self) -> u64 {
        self.raw.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::VectorMemory;

    /// Seed bug: a map's key type was changed in place and old bytes were read with the
    /// new type. Here the header's version gates every open: memory from a newer layout
    /// (or not ours at all) is refused instead of misread.
    #[test]
    fn seed_layout_refuses_memory_it_does_not_understand() {
        let mem = VectorMemory::default();
        let mut st = Stable::open(mem.clone()).unwrap();
        st.hdr.next_blob_id = 42;
        st.save_header();
        drop(st);
        let st = Stable::open(mem.clone()).unwrap();
        assert_eq!(st.hdr.next_blob_id, 42, "header survives a reopen");
        assert_eq!(st.hdr.layout_version, LAYOUT_VERSION);

        let mut st = st;
        st.hdr.layout_version = LAYOUT_VERSION + 1;
        st.save_header();
        drop(st);
        let err = Stable::open(mem.clone()).err().expect("newer layout must be refused");
        assert!(err.contains("refusing to downgrade"), "{err}");

        let mut st = Stable::open(VectorMemory::default()).unwrap();
        st.hdr.magic = *b"NOPE";
        st.save_header();
        let raw = st.raw.clone();
        drop(st);
        assert!(Stable::open(raw).is_err());
    }
}
