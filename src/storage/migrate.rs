//! Migrations between layout versions, run by [`Stable::open`] inside `post_upgrade`.
//!
//! Each one streams over the records once (no copy of a whole map on the heap), so its
//! cost is a fixed number of map operations per record: `tests/layout_migration.rs`
//! prints what it costs against the 300 B instruction limit of an upgrade. An upgrade
//! that does not fit traps, and the canister stays on its old Wasm and layout.

use std::collections::BTreeMap;

use ic_stable_structures::Memory;

use super::{Cbor, DedupEntry, PrincipalKey, Stable};
use crate::domain::records::SessionStatus;

impl<M: Memory + Clone> Stable<M> {
    /// Layout 1 had no expiry index: build it from the session records. (New header
    /// fields decode with their defaults; blob records gain `refs = 0`. Layout 2's dedup
    /// index is retired; layout 3's is built by [`Stable::migrate_v2_to_v3`].)
    pub(super) fn migrate_v1_to_v2(&mut self) {
        for e in self.sessions.iter() {
            let s = e.value().0;
            self.session_expiry.insert((s.expires_at_ns, s.id), ());
        }
        self.hdr.layout_version = 2;
    }

    /// Layout 3 builds its indexes from the records:
    /// - every blob gets its dedup entry (all of them: layout-1 duplicates included),
    ///   its `(capsule, blob)` entry, and its creating session's `finished` entry;
    /// - every open session reserves its declared size in its capsule and the header,
    ///   and gets its `(capsule, session)` entry; finished ones their `finished` entry;
    /// - every capsule counts for its first owner's created capsules;
    /// - HTTP serving's structures (MemoryIds 23-27) start empty and nothing stored needs
    ///   rewriting for them: chunk digests of multi-chunk blobs uploaded before layout 3
    ///   are computed later, in bounded background passes (`domain::http` backfills them
    ///   before certifying an asset), and memories start private, as they were.
    pub(super) fn migrate_v2_to_v3(&mut self) {
        for e in self.blobs.iter() {
            let b = e.value().0;
            let entry = DedupEntry { capsule_id: b.capsule_id, sha256: b.sha256(), size: b.size, blob_id: b.id };
            self.dedup.insert(entry, ());
            self.capsule_blobs.insert((b.capsule_id, b.id), ());
            self.finished.insert(b.session_id, b.id);
        }
        let mut reserved: BTreeMap<u64, u64> = BTreeMap::new();
        for e in self.sessions.iter() {
            let s = e.value().0;
            match s.status {
                SessionStatus::Open => {
                    *reserved.entry(s.capsule_id).or_default() += s.size;
                    self.hdr.reserved_bytes += s.size;
                    self.capsule_sessions.insert((s.capsule_id, s.id), ());
                }
                SessionStatus::Finished(blob_id) => {
                    self.finished.insert(s.id, blob_id);
                }
                SessionStatus::Aborted => {}
            }
        }
        let mut created: BTreeMap<PrincipalKey, u32> = BTreeMap::new();
        let ids: Vec<u64> = self.capsules.keys().collect();
        for id in ids {
            let Some(Cbor(mut c)) = self.capsules.get(&id) else { continue };
            if let Some(first) = c.owners.first() {
                *created.entry(PrincipalKey(*first)).or_default() += 1;
            }
            if let Some(r) = reserved.get(&id) {
                c.reserved_bytes = *r;
                self.capsules.insert(id, Cbor(c));
            }
        }
        for (p, n) in created {
            self.principals.insert(p, n);
        }
        self.hdr.layout_version = 3;
    }

    /// Layout 5 keeps HTTP certification in stable memory. What existed before is
    /// certified by background passes, memories first: recording where they start is
    /// the whole migration (constant cost, whatever is stored).
    pub(super) fn migrate_v4_to_v5(&mut self) {
        let mut meta = self.http.meta();
        meta.backlog = super::http::Backlog::Memories { next: 0 };
        self.http.set_meta(meta);
        self.hdr.layout_version = 5;
    }
}
