//! Findings of the security audit (issue 11) that need state only an older layout could
//! write, shown natively over the domain logic.

mod common;

use backend::api::{BeginArgs, MemoryCreateArgs, MemoryKind, MemoryMeta, SessionState};
use backend::domain::records::BlobRecord;
use backend::domain::uploads::chunk_stem;
use backend::domain::State;
use backend::storage::{Cbor, ChunkKey, ChunkRef, Stable};
use common::*;
use serde_bytes::ByteBuf;

fn memory_with(w: &mut World, who: candid::Principal, cap: u64, blob: u64) -> u64 {
    let c = w.ctx(who);
    let args = MemoryCreateArgs {
        capsule_id: cap,
        meta: MemoryMeta { title: "m".into(), kind: MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec![] },
        assets: vec![backend::api::AssetInput {
            kind: backend::api::AssetKind::Original,
            source: backend::api::AssetSource::Blob(blob),
            mime: "image/jpeg".into(),
            width: None,
            height: None,
            duration_ms: None,
        }],
        idempotency_key: None,
    };
    w.state.memories_create(&c, args).unwrap().id
}

/// Finding 7: layout 1 had no dedup, so a capsule can hold two blobs with the same
/// (SHA-256, size). Deleting one of them must not drop the dedup entry of the other:
/// identical bytes uploaded later still find the blob that remains.
#[test]
fn f7_layout1_duplicates_keep_dedup_for_the_blob_that_remains() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(300_000, 77);
    let s = w.begin(alice, cap, data.len(), None);
    w.put(alice, &s, 0, &data).unwrap();
    let first = w.finish(alice, &s, &sha(&data), data.len()).unwrap();
    drop(w.state);

    // What layout 1 could hold: a second blob with the same bytes, no dedup index.
    let mut st = Stable::open(w.mem.clone()).unwrap();
    let rec: BlobRecord = st.blobs.get(&first.id).unwrap().0;
    let dup_id = st.hdr.next_blob_id;
    let dup_session = st.hdr.next_session_id;
    let stem = chunk_stem("", dup_session);
    let offset = st.arena.alloc(data.len() as u64).unwrap();
    st.arena.write(offset, &data);
    st.chunks.insert(ChunkKey { stem, idx: 0 }, ChunkRef { offset, len: data.len() as u32 });
    let dup = BlobRecord { id: dup_id, session_id: dup_session, stem: ByteBuf::from(stem.to_vec()), ..rec };
    st.blobs.insert(dup_id, Cbor(dup));
    let mut capsule = st.capsules.get(&cap).unwrap().0;
    capsule.bytes_used += data.len() as u64;
    st.capsules.insert(cap, Cbor(capsule));
    st.hdr.next_blob_id += 1;
    st.hdr.next_session_id += 1;
    st.hdr.blob_count += 1;
    st.hdr.blob_bytes += data.len() as u64;
    st.hdr.layout_version = 1;
    st.save_header();
    drop(st);

    w.state = State::open(w.mem.clone()).expect("open layout-1 state");
    let m1 = memory_with(&mut w, alice, cap, first.id);
    let m2 = memory_with(&mut w, alice, cap, dup_id);
    let c = w.ctx(alice);
    w.state.memories_delete(&c, m1).unwrap();
    let declared = BeginArgs { sha256: Some(ByteBuf::from(sha(&data))), ..begin_args(cap, data.len() as u64, None) };
    let s = w.state.uploads_begin(&c, declared.clone()).unwrap();
    assert_eq!(s.state, SessionState::Finished { blob_id: dup_id }, "the remaining duplicate lost its dedup entry");
    w.state.memories_delete(&c, m2).unwrap();
    let s = w.state.uploads_begin(&c, declared).unwrap();
    assert_eq!(s.state, SessionState::Open, "no blob with these bytes is left");
}
