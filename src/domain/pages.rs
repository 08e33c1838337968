//! Pages. Every list is read page by page with a cursor (the last key of the previous
//! page) and every page is bounded by bytes as well as by count: a page stops before
//! the item that would take its reply past `MAX_REPLY_BYTES`, whatever the records hold
//! (inline images, long texts, many received chunk ranges). The size of an item is an
//! upper bound of its Candid encoding, computed from its record before its view is
//! built, so an item that does not fit costs nothing.

use super::records::{
    AssetRecord, BlobRecord, CapsuleRecord, MemoryRecord, SessionRecord, DEFAULT_PAGE, MAX_PAGE, MAX_REPLY_BYTES,
};

/// Room for the Candid header, type table, result variant and cursor of a reply.
pub const ENVELOPE: u64 = 4096;
/// Keys one page may look at (items that turn out to be filtered out included).
pub const MAX_SCAN: usize = 10_000;

/// A page from `keys`: `load` reads an item's record (`None` skips the key), `size`
/// bounds its encoding, `view` builds it. Returns the items and the cursor of the next
/// page (`None` at the end). A page holds at least one item when one is left.
pub(crate) fn collect_page<K: Copy, R, T>(
    keys: impl Iterator<Item = K>,
    limit: u32,
    mut load: impl FnMut(K) -> Option<R>,
    size: impl Fn(&R) -> u64,
    mut view: impl FnMut(R) -> T,
) -> (Vec<T>, Option<K>) {
    let limit = page_limit(limit);
    let mut out = Vec::new();
    let mut used = ENVELOPE;
    let mut last: Option<K> = None;
    for (scanned, key) in keys.enumerate() {
        if out.len() == limit || scanned == MAX_SCAN {
            return (out, last);
        }
        let Some(rec) = load(key) else {
            last = Some(key);
            continue;
        };
        let bytes = size(&rec);
        if !out.is_empty() && used + bytes > MAX_REPLY_BYTES {
            return (out, last);
        }
        used += bytes;
        out.push(view(rec));
        last = Some(key);
    }
    (out, None)
}

/// `0` means the default page size; at most `MAX_PAGE`.
pub fn page_limit(limit: u32) -> usize {
    (if limit == 0 { DEFAULT_PAGE } else { limit.min(MAX_PAGE) }) as usize
}

// Upper bounds of Candid encodings: a LEB128 length takes at most 5 bytes here (every
// length is below 2^35), a principal at most 31, a variant tag at most 5.
fn text(s: &str) -> u64 {
    s.len() as u64 + 5
}
fn opt_text(s: &Option<String>) -> u64 {
    1 + s.as_deref().map_or(0, text)
}
const PRINCIPAL: u64 = 31;

pub fn capsule_size(c: &CapsuleRecord) -> u64 {
    // ids, counters, role and reserved bytes; four member vectors of principal (+ role)
    96 + text(&c.name) + (PRINCIPAL + 5) * c.member_count() as u64
}

pub fn asset_size(a: &AssetRecord) -> u64 {
    let inline = a.inline.map_or(0, |r| u64::from(r.len) + 5);
    128 + text(&a.mime) + inline
}

pub fn memory_size(m: &MemoryRecord) -> u64 {
    let tags: u64 = m.meta.tags.iter().map(|t| text(t)).sum();
    128 + PRINCIPAL + text(&m.meta.title) + text(&m.meta.description) + tags + m.assets.iter().map(asset_size).sum::<u64>()
}

/// Received chunk ranges are at most the received chunks: 8 bytes each.
pub fn session_size(s: &SessionRecord) -> u64 {
    192 + PRINCIPAL + text(&s.mime) + text(&s.name) + opt_text(&s.pmid) + 8 * u64::from(s.received_chunks)
}

pub fn blob_size(b: &BlobRecord) -> u64 {
    128 + text(&b.mime) + text(&b.name)
}

pub fn invitation_size(capsule_name: &str) -> u64 {
    32 + text(capsule_name) + PRINCIPAL
}

#[cfg(test)]
mod tests {
    use super::*;
    use candid::Principal;
    use crate::api::{AssetKind, Member, MemoryKind, MemoryMeta, Role};
    use crate::domain::records::{InlineRef, SessionStatus, MAX_DESCRIPTION_LEN, MAX_INLINE_BYTES, MAX_TAGS, MAX_TAG_LEN, MAX_TEXT_LEN};
    use serde_bytes::ByteBuf;

    #[test]
    fn pages_stop_at_the_count_and_at_the_bytes() {
        let sizes = [10u64, 20, 30, 40, 50];
        let (items, next) = collect_page(0..5u32, 2, Some, |k| sizes[*k as usize], |k| k);
        assert_eq!((items, next), (vec![0, 1], Some(1)));
        let (items, next) = collect_page(2..5u32, 50, Some, |k| sizes[*k as usize], |k| k);
        assert_eq!((items, next), (vec![2, 3, 4], None));
        // bytes: each item takes half the budget, so two fit
        let half = (MAX_REPLY_BYTES - ENVELOPE) / 2;
        let (items, next) = collect_page(0..5u32, 50, Some, |_| half, |k| k);
        assert_eq!((items, next), (vec![0, 1], Some(1)));
        // one item always goes out, even if it alone were larger
        let (items, _) = collect_page(0..5u32, 50, Some, |_| MAX_REPLY_BYTES * 2, |k| k);
        assert_eq!(items, vec![0]);
        // skipped keys move the cursor
        let (items, next) = collect_page(0..5u32, 50, |k| (k % 2 == 0).then_some(k), |_| 1, |k| k);
        assert_eq!((items, next), (vec![0, 2, 4], None));
    }

    fn long(n: usize) -> String {
        "é".repeat(n / 2)
    }

    /// The bounds above are bounds: the largest possible records encode within them.
    #[test]
    fn size_bounds_hold_for_the_largest_records() {
        let p = Principal::from_slice(&[7; 29]);
        let members: Vec<Principal> = (0..25u8).map(|i| Principal::from_slice(&[i; 29])).collect();
        let cap = CapsuleRecord {
            id: u64::MAX,
            name: long(MAX_TEXT_LEN),
            owners: members.clone(),
            writers: members.clone(),
            readers: members.clone(),
            created_at_ns: u64::MAX,
            bytes_used: u64::MAX,
            reserved_bytes: u64::MAX,
            invited: members.iter().map(|&principal| Member { principal, role: Role::Writer }).collect(),
            created_by: Some(p),
            memory_count: Some(u64::MAX),
        };
        let view = crate::api::Capsule {
            id: cap.id,
            name: cap.name.clone(),
            owners: cap.owners.clone(),
            writers: cap.writers.clone(),
            readers: cap.readers.clone(),
            created_at_ns: cap.created_at_ns,
            bytes_used: cap.bytes_used,
            my_role: Some(Role::Owner),
            reserved_bytes: Some(cap.reserved_bytes),
            invited: Some(cap.invited.clone()),
        };
        assert_bound(&[view], capsule_size(&cap));

        let asset = AssetRecord {
            kind: AssetKind::Placeholder,
            blob_id: None,
            inline: Some(InlineRef { offset: 0, len: MAX_INLINE_BYTES as u32 }),
            size: u64::MAX,
            sha256: ByteBuf::from(vec![1; 32]),
            mime: long(MAX_TEXT_LEN),
            width: Some(u32::MAX),
            height: Some(u32::MAX),
            duration_ms: Some(u64::MAX),
        };
        let mem = MemoryRecord {
            id: u64::MAX,
            capsule_id: u64::MAX,
            meta: MemoryMeta {
                title: long(MAX_TEXT_LEN),
                kind: MemoryKind::Document,
                description: long(MAX_DESCRIPTION_LEN),
                taken_at_ns: Some(u64::MAX),
                tags: vec![long(MAX_TAG_LEN); MAX_TAGS],
            },
            assets: vec![asset.clone(); 7],
            created_by: p,
            created_at_ns: u64::MAX,
            updated_at_ns: u64::MAX,
            idempotency: None,
            charged_bytes: u64::MAX,
        };
        let asset_view = crate::api::Asset {
            kind: asset.kind,
            blob_id: Some(u64::MAX),
            inline: Some(ByteBuf::from(vec![0xff; MAX_INLINE_BYTES])),
            size: asset.size,
            sha256: asset.sha256.clone(),
            mime: asset.mime.clone(),
            width: asset.width,
            height: asset.height,
            duration_ms: asset.duration_ms,
        };
        let mem_view = crate::api::Memory {
            id: mem.id,
            capsule_id: mem.capsule_id,
            meta: mem.meta.clone(),
            assets: vec![asset_view; 7],
            created_by: p,
            created_at_ns: u64::MAX,
            updated_at_ns: u64::MAX,
        };
        assert_bound(&[mem_view], memory_size(&mem));

        let received = 65_536u32;
        let sess = SessionRecord {
            id: u64::MAX,
            capsule_id: u64::MAX,
            owner: p,
            size: u64::MAX,
            chunk_size: u32::MAX,
            chunk_count: received * 2,
            expected_sha256: Some(ByteBuf::from(vec![1; 32])),
            mime: long(MAX_TEXT_LEN),
            name: long(MAX_TEXT_LEN),
            pmid: Some(long(128)),
            idempotency_key: None,
            stem: ByteBuf::from(vec![0; 32]),
            created_at_ns: u64::MAX,
            expires_at_ns: u64::MAX,
            status: SessionStatus::Finished(u64::MAX),
            received_chunks: received,
            received_bytes: u64::MAX,
            hashed_chunks: 0,
            hashed_bytes: u64::MAX,
            hasher: ByteBuf::new(),
        };
        let sess_view = crate::api::Session {
            id: sess.id,
            capsule_id: sess.capsule_id,
            owner: p,
            size: sess.size,
            chunk_size: sess.chunk_size,
            chunk_count: sess.chunk_count,
            sha256: sess.expected_sha256.clone(),
            mime: sess.mime.clone(),
            name: sess.name.clone(),
            pmid: sess.pmid.clone(),
            created_at_ns: u64::MAX,
            expires_at_ns: u64::MAX,
            state: crate::api::SessionState::Finished { blob_id: u64::MAX },
            received_chunks: received,
            received_bytes: u64::MAX,
            hashed_bytes: u64::MAX,
            // every other chunk: the most ranges `received` chunks can make
            received: (0..received).map(|i| crate::api::ChunkRange { start: 2 * i, end: 2 * i + 1 }).collect(),
        };
        assert_bound(&[sess_view], session_size(&sess));

        let blob = BlobRecord {
            id: u64::MAX,
            capsule_id: u64::MAX,
            size: u64::MAX,
            sha256: ByteBuf::from(vec![1; 32]),
            chunk_size: u32::MAX,
            chunk_count: u32::MAX,
            stem: ByteBuf::from(vec![0; 32]),
            mime: long(MAX_TEXT_LEN),
            name: long(MAX_TEXT_LEN),
            created_at_ns: u64::MAX,
            session_id: u64::MAX,
            refs: u32::MAX,
        };
        assert_bound(&[crate::domain::uploads::blob_meta(&blob)], blob_size(&blob));
        let inv = crate::api::Invitation { capsule_id: u64::MAX, capsule_name: long(MAX_TEXT_LEN), role: Role::Owner };
        assert_bound(std::slice::from_ref(&inv), invitation_size(&inv.capsule_name));
    }

    /// Fifty of `item` encode within fifty bounds plus the envelope.
    fn assert_bound<T: candid::CandidType + Clone>(item: &[T], bound: u64) {
        let fifty: Vec<T> = item.iter().cycle().take(50).cloned().collect();
        let encoded = candid::encode_one(&fifty).unwrap().len() as u64;
        assert!(encoded <= 50 * bound + ENVELOPE, "{encoded} bytes > 50 x {bound} + {ENVELOPE}");
        let one = candid::encode_one(item).unwrap().len() as u64;
        assert!(one <= bound + ENVELOPE, "{one} > {bound}");
    }
}
