//! Stable structures of HTTP serving: per-chunk body digests, the link secret, public
//! memories and the content-addressed index (layout 3); the certification tree, the
//! memories waiting to be certified and the one-time backlog (layout 5). The
//! `MemoryId`s are assigned in `storage/mod.rs`, which owns the layout.

use std::borrow::Cow;

use ic_stable_structures::memory_manager::MemoryId;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{Memory, StableBTreeMap, StableCell, Storable};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::hash_tree::StableHashTree;
use super::{Cbor, ChunkKey, VMem};

/// Small state of HTTP serving, in one cell.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HttpMeta {
    /// 32 bytes from `raw_rand`, fetched once. Link keys and memory URLs' ETags derive
    /// from it; no endpoint ever returns it or anything it derives except MACs.
    #[serde(default)]
    pub link_secret: Option<ByteBuf>,
    /// Certification the tree still lacks since it was created (layout 5): memories by
    /// id, then content URLs by digest. New canisters start `Done`.
    #[serde(default)]
    pub backlog: Backlog,
}

/// Where the one-time certification of what existed before the tree stands.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Backlog {
    #[default]
    Done,
    /// Memories with ids `>= next` are not certified yet.
    Memories { next: u64 },
    /// Every memory is; content URLs with digests `>= next` are not yet.
    Content { next: [u8; 32] },
}

/// `(sha256, memory_id, kind)`: a public asset with these bytes. The first entry of a
/// digest is what `/b/<sha256>` serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PublicShaKey {
    pub sha256: [u8; 32],
    pub memory_id: u64,
    pub kind: u8,
}

impl Storable for PublicShaKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(41);
        v.extend_from_slice(&self.sha256);
        v.extend_from_slice(&self.memory_id.to_be_bytes());
        v.push(self.kind);
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        PublicShaKey {
            sha256: b[..32].try_into().expect("32 bytes"),
            memory_id: u64::from_be_bytes(b[32..40].try_into().expect("8 bytes")),
            kind: b[40],
        }
    }
    const BOUND: Bound = Bound::Bounded { max_size: 41, is_fixed_size: true };
}

/// What a public memory published: `(kind, sha256)` of each asset, so unpublishing
/// removes exactly those index entries even after the memory changed.
pub type Published = Vec<(u8, ByteBuf)>;

pub struct HttpStable<M: Memory> {
    /// SHA-256 of each chunk of multi-chunk uploads: the body hash of its 206 response.
    pub digests: StableBTreeMap<ChunkKey, [u8; 32], VMem<M>>,
    meta: StableCell<Cbor<HttpMeta>, VMem<M>>,
    /// Public memories and what they published.
    pub public: StableBTreeMap<u64, Cbor<Published>, VMem<M>>,
    pub public_sha: StableBTreeMap<PublicShaKey, (), VMem<M>>,
    /// Link-key version per capsule (absent = 0); rotating bumps it.
    pub link_key_versions: StableBTreeMap<u64, u32, VMem<M>>,
    /// Every certified response (layout 5).
    pub tree: StableHashTree<VMem<M>>,
    /// Memories whose certification waits for chunk digests or the secret (layout 5).
    pub pending: StableBTreeMap<u64, (), VMem<M>>,
}

/// The MemoryIds this module uses, in the order of the fields above.
pub struct HttpMemoryIds {
    pub digests: MemoryId,
    pub meta: MemoryId,
    pub public: MemoryId,
    pub public_sha: MemoryId,
    pub link_key_versions: MemoryId,
    pub tree_leaves: MemoryId,
    pub tree_nodes: MemoryId,
    pub pending: MemoryId,
}

impl<M: Memory + Clone> HttpStable<M> {
    pub fn open(mm: &super::layout::Layout<M>, ids: HttpMemoryIds) -> Self {
        HttpStable {
            digests: StableBTreeMap::init(mm.get(ids.digests)),
            meta: StableCell::init(mm.get(ids.meta), Cbor(HttpMeta::default())),
            public: StableBTreeMap::init(mm.get(ids.public)),
            public_sha: StableBTreeMap::init(mm.get(ids.public_sha)),
            link_key_versions: StableBTreeMap::init(mm.get(ids.link_key_versions)),
            tree: StableHashTree::init(mm.get(ids.tree_leaves), mm.get(ids.tree_nodes)),
            pending: StableBTreeMap::init(mm.get(ids.pending)),
        }
    }

    pub fn meta(&self) -> HttpMeta {
        self.meta.get().0.clone()
    }

    pub fn set_meta(&mut self, meta: HttpMeta) {
        self.meta.set(Cbor(meta));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_sha_key_round_trips_and_orders_by_digest_first() {
        let a = PublicShaKey { sha256: [1; 32], memory_id: 9, kind: 2 };
        let b = PublicShaKey { sha256: [2; 32], memory_id: 1, kind: 0 };
        assert_eq!(PublicShaKey::from_bytes(a.to_bytes()), a);
        assert!(a.to_bytes() < b.to_bytes() && a < b);
    }
}
