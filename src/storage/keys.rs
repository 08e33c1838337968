//! Fixed-size keys and values for the stable maps. Fixed sizes keep BTreeMap nodes
//! small, so an insert rewrites hundreds of bytes, not megabytes.

use std::borrow::Cow;

use candid::Principal;
use ic_stable_structures::storable::Bound;
use ic_stable_structures::Storable;

const PRINCIPAL_BYTES: usize = 30; // length byte + up to 29 bytes

fn put_principal(out: &mut Vec<u8>, p: &Principal) {
    let b = p.as_slice();
    out.push(b.len() as u8);
    out.extend_from_slice(b);
    out.resize(out.len() + (29 - b.len()), 0);
}

fn get_principal(b: &[u8]) -> Principal {
    let len = (b[0] as usize).min(29);
    Principal::from_slice(&b[1..1 + len])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// `(sha256(pmid "#" session_id), idx)`: where chunk `idx` of an upload lives.
/// The stem includes the session id, so two sessions never share a key even when
/// they carry the same provisional memory id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChunkKey {
    pub stem: [u8; 32],
    pub idx: u32,
}

impl Storable for ChunkKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(36);
        v.extend_from_slice(&self.stem);
        v.extend_from_slice(&self.idx.to_be_bytes());
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        ChunkKey { stem: b[..32].try_into().expect("32 bytes"), idx: u32_at(&b, 32) }
    }
    const BOUND: Bound = Bound::Bounded { max_size: 36, is_fixed_size: true };
}

/// Where a chunk's bytes are in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRef {
    pub offset: u64,
    pub len: u32,
}

impl Storable for ChunkRef {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(12);
        v.extend_from_slice(&self.offset.to_be_bytes());
        v.extend_from_slice(&self.len.to_be_bytes());
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        ChunkRef { offset: u64_at(&b, 0), len: u32_at(&b, 8) }
    }
    const BOUND: Bound = Bound::Bounded { max_size: 12, is_fixed_size: true };
}

/// Index of sessions by caller (MemoryId 3), two kinds of entries in one key space:
/// - `(owner, session_id)` for each open session of `owner` (since layout 1);
/// - `(OwnerSessionKey::records_of(owner), session_id)` for every session record
///   `owner` holds, in any state, until housekeeping drops the record (written since
///   the session-record bound; records from before it have none and are not counted,
///   for at most one TTL).
///
/// `records_of(owner)` is a reserved-class principal (its last byte is 0x7f, which the
/// IC never gives a caller), so a range over a caller's own principal still sees only
/// its open sessions, as every reader of the first kind expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OwnerSessionKey {
    pub owner: Principal,
    pub session_id: u64,
}

impl OwnerSessionKey {
    /// The principal under which `owner`'s session records are indexed: the first 28
    /// bytes of `sha256(owner)`, then 0x7f (the IC's class of reserved ids).
    pub fn records_of(owner: Principal) -> Principal {
        use sha2::{Digest, Sha256};
        let mut b = [0u8; 29];
        b[..28].copy_from_slice(&Sha256::digest(owner.as_slice())[..28]);
        b[28] = 0x7f;
        Principal::from_slice(&b)
    }

    /// The entry of session `session_id`'s record, held by `owner`.
    pub fn record(owner: Principal, session_id: u64) -> Self {
        OwnerSessionKey { owner: Self::records_of(owner), session_id }
    }
}

impl Storable for OwnerSessionKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(PRINCIPAL_BYTES + 8);
        put_principal(&mut v, &self.owner);
        v.extend_from_slice(&self.session_id.to_be_bytes());
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        OwnerSessionKey { owner: get_principal(&b), session_id: u64_at(&b, PRINCIPAL_BYTES) }
    }
    const BOUND: Bound = Bound::Bounded { max_size: PRINCIPAL_BYTES as u32 + 8, is_fixed_size: true };
}

/// Index of capsule membership: `(principal, capsule_id) -> role`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MemberKey {
    pub principal: Principal,
    pub capsule_id: u64,
}

impl Storable for MemberKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(PRINCIPAL_BYTES + 8);
        put_principal(&mut v, &self.principal);
        v.extend_from_slice(&self.capsule_id.to_be_bytes());
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        MemberKey { principal: get_principal(&b), capsule_id: u64_at(&b, PRINCIPAL_BYTES) }
    }
    const BOUND: Bound = Bound::Bounded { max_size: PRINCIPAL_BYTES as u32 + 8, is_fixed_size: true };
}

/// One entry per blob of the dedup index (layout 3): `(capsule, sha256, size, blob_id)`.
/// A capsule's blobs with the same bytes (layout 1 could store duplicates) each have
/// their own entry, so removing one never removes another's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DedupEntry {
    pub capsule_id: u64,
    pub sha256: [u8; 32],
    pub size: u64,
    pub blob_id: u64,
}

impl DedupEntry {
    /// The first possible entry for these bytes: a range scan from here finds them.
    pub fn first(capsule_id: u64, sha256: [u8; 32], size: u64) -> Self {
        DedupEntry { capsule_id, sha256, size, blob_id: 0 }
    }
    pub fn same_bytes(&self, other: &DedupEntry) -> bool {
        (self.capsule_id, self.sha256, self.size) == (other.capsule_id, other.sha256, other.size)
    }
}

impl Storable for DedupEntry {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(56);
        v.extend_from_slice(&self.capsule_id.to_be_bytes());
        v.extend_from_slice(&self.sha256);
        v.extend_from_slice(&self.size.to_be_bytes());
        v.extend_from_slice(&self.blob_id.to_be_bytes());
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        DedupEntry {
            capsule_id: u64_at(&b, 0),
            sha256: b[8..40].try_into().expect("32 bytes"),
            size: u64_at(&b, 40),
            blob_id: u64_at(&b, 48),
        }
    }
    const BOUND: Bound = Bound::Bounded { max_size: 56, is_fixed_size: true };
}

/// A principal as a fixed-size key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PrincipalKey(pub Principal);

impl Storable for PrincipalKey {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(PRINCIPAL_BYTES);
        put_principal(&mut v, &self.0);
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        PrincipalKey(get_principal(&b))
    }
    const BOUND: Bound = Bound::Bounded { max_size: PRINCIPAL_BYTES as u32, is_fixed_size: true };
}

/// Chunks `next_idx..chunk_count` under `stem` are waiting to be freed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcItem {
    pub stem: [u8; 32],
    pub next_idx: u32,
    pub chunk_count: u32,
}

impl Storable for GcItem {
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.into_bytes())
    }
    fn into_bytes(self) -> Vec<u8> {
        let mut v = Vec::with_capacity(40);
        v.extend_from_slice(&self.stem);
        v.extend_from_slice(&self.next_idx.to_be_bytes());
        v.extend_from_slice(&self.chunk_count.to_be_bytes());
        v
    }
    fn from_bytes(b: Cow<[u8]>) -> Self {
        GcItem { stem: b[..32].try_into().expect("32 bytes"), next_idx: u32_at(&b, 32), chunk_count: u32_at(&b, 36) }
    }
    const BOUND: Bound = Bound::Bounded { max_size: 40, is_fixed_size: true };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = ChunkKey { stem: [7; 32], idx: 0xdead_beef };
        assert_eq!(ChunkKey::from_bytes(k.to_bytes()), k);
        let r = ChunkRef { offset: 1 << 40, len: 1_800_000 };
        assert_eq!(ChunkRef::from_bytes(r.to_bytes()), r);
        for p in [Principal::anonymous(), Principal::management_canister(), Principal::from_slice(&[9; 29])] {
            let k = OwnerSessionKey { owner: p, session_id: 42 };
            assert_eq!(OwnerSessionKey::from_bytes(k.to_bytes()), k);
            let m = MemberKey { principal: p, capsule_id: 3 };
            assert_eq!(MemberKey::from_bytes(m.to_bytes()), m);
        }
        let g = GcItem { stem: [5; 32], next_idx: 7, chunk_count: 560 };
        assert_eq!(GcItem::from_bytes(g.to_bytes()), g);
        let e = DedupEntry { capsule_id: 9, sha256: [3; 32], size: 1 << 33, blob_id: 77 };
        assert_eq!(DedupEntry::from_bytes(e.to_bytes()), e);
        assert!(DedupEntry::first(9, [3; 32], 1 << 33) < e);
        let p = PrincipalKey(Principal::from_slice(&[9; 29]));
        assert_eq!(PrincipalKey::from_bytes(p.to_bytes()), p);
    }

    /// A caller's record entries round-trip, are never a caller's own range (a
    /// self-authenticating, anonymous or canister principal), and differ per caller.
    #[test]
    fn record_entries_stay_out_of_every_callers_open_range() {
        let callers = [Principal::anonymous(), Principal::management_canister(), Principal::from_slice(&[9; 29]), Principal::from_slice(&[1, 2, 3, 4])];
        let tags: Vec<Principal> = callers.iter().map(|p| OwnerSessionKey::records_of(*p)).collect();
        for (p, tag) in callers.iter().zip(&tags) {
            let k = OwnerSessionKey::record(*p, u64::MAX);
            assert_eq!(OwnerSessionKey::from_bytes(k.to_bytes()), k);
            assert_eq!((tag.as_slice().len(), tag.as_slice()[28]), (29, 0x7f));
            assert!(!callers.contains(tag));
            let open = OwnerSessionKey { owner: *p, session_id: 0 }..=OwnerSessionKey { owner: *p, session_id: u64::MAX };
            assert!(!open.contains(&k) && !open.contains(&OwnerSessionKey::record(*p, 0)));
        }
        let distinct: std::collections::BTreeSet<_> = tags.iter().collect();
        assert_eq!(distinct.len(), tags.len());
    }
}
