//! Capsules, memories and housekeeping over an in-memory stable memory.

mod common;

use backend::api::*;
use common::*;
use serde_bytes::ByteBuf;

fn meta(title: &str) -> MemoryMeta {
    MemoryMeta { title: title.into(), kind: MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec!["family".into()] }
}

fn blob_asset(kind: AssetKind, blob_id: u64) -> AssetInput {
    AssetInput { kind, source: AssetSource::Blob(blob_id), mime: "image/jpeg".into(), width: Some(10), height: Some(10), duration_ms: None }
}

fn inline_asset(kind: AssetKind, bytes: Vec<u8>) -> AssetInput {
    AssetInput { kind, source: AssetSource::Inline(ByteBuf::from(bytes)), mime: "image/jpeg".into(), width: Some(32), height: Some(21), duration_ms: None }
}

fn upload(w: &mut World, who: candid::Principal, cap: u64, data: &[u8]) -> BlobMeta {
    let s = w.begin(who, cap, data.len(), None);
    for i in 0..s.chunk_count {
        w.put(who, &s, i, data).unwrap();
    }
    w.finish(who, &s, &sha(data), data.len()).unwrap()
}

fn create(w: &mut World, who: candid::Principal, cap: u64, assets: Vec<AssetInput>, key: Option<&str>) -> Result<Memory> {
    let c = w.ctx(who);
    w.state.memories_create(&c, MemoryCreateArgs { capsule_id: cap, meta: meta("beach"), assets, idempotency_key: key.map(str::to_string) })
}

fn gc_all(w: &mut World) {
    while w.state.gc_pass(w.now).more {}
}

#[test]
fn memory_with_four_assets_is_created_atomically_and_reads_back() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let (orig, disp, thumb) = (file(3 * MB, 1), file(400_000, 2), file(40_000, 3));
    let placeholder = file(900, 4);
    let ids: Vec<u64> = [&orig, &disp, &thumb].iter().map(|d| upload(&mut w, alice, cap, d).id).collect();
    let m = create(
        &mut w,
        alice,
        cap,
        vec![
            blob_asset(AssetKind::Original, ids[0]),
            blob_asset(AssetKind::Display, ids[1]),
            blob_asset(AssetKind::Thumbnail, ids[2]),
            inline_asset(AssetKind::Placeholder, placeholder.clone()),
        ],
        None,
    )
    .unwrap();
    let got = w.state.memories_get(&w.ctx(alice), m.id).unwrap();
    assert_eq!(got, m);
    assert_eq!(got.assets.len(), 4);
    let ph = got.assets.iter().find(|a| a.kind == AssetKind::Placeholder).unwrap();
    assert_eq!(ph.inline.as_ref().map(|b| b.to_vec()), Some(placeholder.clone()));
    assert_eq!(ph.sha256.to_vec(), sha(&placeholder));
    for (a, data) in got.assets.iter().filter(|a| a.blob_id.is_some()).zip([&orig, &disp, &thumb]) {
        let blob = w.state.blobs_meta(&w.ctx(alice), a.blob_id.unwrap()).unwrap();
        assert_eq!(&w.read_all(alice, &blob), data);
        assert_eq!(a.sha256, blob.sha256);
    }
    assert_eq!(w.state.stats().memories, 1);
}

#[test]
fn a_bad_asset_list_writes_nothing() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let other_cap = w.capsule(alice);
    let good = upload(&mut w, alice, cap, &file(100_000, 5)).id;
    let foreign = upload(&mut w, alice, other_cap, &file(100_000, 6)).id;
    let open = w.begin(alice, cap, 10, None); // never finished: no blob
    let cases: Vec<(&str, Vec<AssetInput>, &str)> = vec![
        ("missing blob", vec![blob_asset(AssetKind::Original, good), blob_asset(AssetKind::Display, 999)], "NotFound"),
        ("unfinished upload", vec![blob_asset(AssetKind::Original, open.id + 100)], "NotFound"),
        // another capsule's blob is not visible from this one: like a missing blob
        ("blob of another capsule", vec![blob_asset(AssetKind::Original, good), blob_asset(AssetKind::Display, foreign)], "NotFound"),
        ("inline too large", vec![blob_asset(AssetKind::Original, good), inline_asset(AssetKind::Placeholder, vec![1; 32 * 1024 + 1])], "InvalidArgument"),
        ("empty inline", vec![inline_asset(AssetKind::Placeholder, vec![])], "InvalidArgument"),
        ("duplicate kind", vec![blob_asset(AssetKind::Original, good), blob_asset(AssetKind::Original, good)], "InvalidArgument"),
        ("too many assets", (0..17).map(|_| blob_asset(AssetKind::Other, good)).collect(), "InvalidArgument"),
    ];
    for (what, assets, kind) in cases {
        let before = w.mem.snapshot();
        let err = create(&mut w, alice, cap, assets, None).unwrap_err();
        assert_eq!(err.kind(), kind, "{what}: {err}");
        assert!(w.mem.snapshot() == before, "{what}: stable memory changed");
    }
    // the stranger (who cannot tell the capsule exists) and the anonymous caller cannot
    // create at all
    for (p, kind) in [(user(9), "NotFound"), (candid::Principal::anonymous(), "Unauthorized")] {
        let err = create(&mut w, p, cap, vec![blob_asset(AssetKind::Original, good)], None).unwrap_err();
        assert_eq!(err.kind(), kind);
    }
    assert_eq!(w.state.stats().memories, 0);
}

#[test]
fn idempotency_key_returns_the_same_memory() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let b = upload(&mut w, alice, cap, &file(10_000, 7)).id;
    let a = create(&mut w, alice, cap, vec![blob_asset(AssetKind::Original, b)], Some("k1")).unwrap();
    let again = create(&mut w, alice, cap, vec![blob_asset(AssetKind::Original, b)], Some("k1")).unwrap();
    assert_eq!(a, again);
    assert_eq!(w.state.stats().memories, 1);
    let c = w.ctx(alice);
    let blob = w.state.blobs_meta(&c, b).unwrap();
    // one reference, not two: deleting the memory frees the blob
    w.state.memories_delete(&c, a.id).unwrap();
    assert!(matches!(w.state.blobs_meta(&c, blob.id), Err(Error::NotFound(_))));
    // a deleted memory's key is free again
    let fresh = upload(&mut w, alice, cap, &file(10_000, 7)).id;
    let b2 = create(&mut w, alice, cap, vec![blob_asset(AssetKind::Original, fresh)], Some("k1")).unwrap();
    assert_ne!(b2.id, a.id);
}

#[test]
fn deleting_memories_frees_blobs_nobody_references_and_space_is_reused() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let shared = upload(&mut w, alice, cap, &file(2 * MB, 8)).id;
    let own = upload(&mut w, alice, cap, &file(2 * MB, 9)).id;
    let m1 = create(&mut w, alice, cap, vec![blob_asset(AssetKind::Original, shared), blob_asset(AssetKind::Display, own)], None).unwrap();
    let m2 = create(&mut w, alice, cap, vec![blob_asset(AssetKind::Original, shared), inline_asset(AssetKind::Placeholder, vec![7; 500])], None).unwrap();
    let c = w.ctx(alice);
    w.state.memories_delete(&c, m1.id).unwrap();
    assert!(w.state.blobs_meta(&c, shared).is_ok(), "still referenced by m2");
    assert!(matches!(w.state.blobs_meta(&c, own), Err(Error::NotFound(_))));
    assert_eq!(w.state.stats().gc_pending_bytes, 2 * MB as u64);
    let end = w.state.stats().arena_bytes;
    gc_all(&mut w);
    w.state.memories_delete(&c, m2.id).unwrap();
    gc_all(&mut w);
    let st = w.state.stats();
    assert_eq!((st.blobs, st.blob_bytes, st.memories, st.gc_pending_bytes), (0, 0, 0, 0));
    assert_eq!(w.state.capsules_get(&c, cap).unwrap().bytes_used, 0);
    assert!(matches!(w.state.memories_get(&c, m2.id), Err(Error::NotFound(_))));
    // new uploads land in the freed space
    upload(&mut w, alice, cap, &file(4 * MB, 10));
    assert!(w.state.stats().arena_bytes <= end, "freed space was not reused");
}

#[test]
fn the_same_file_twice_is_stored_once() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(5 * MB, 11);
    let a = upload(&mut w, alice, cap, &data);
    let b = upload(&mut w, alice, cap, &data);
    assert_eq!(a.id, b.id, "finish reused the stored blob");
    gc_all(&mut w);
    let st = w.state.stats();
    assert_eq!((st.blobs, st.blob_bytes, st.session_bytes, st.gc_pending_bytes), (1, data.len() as u64, 0, 0));
    // with the digest declared up front, begin answers "already stored" at once
    let c = w.ctx(alice);
    let args = BeginArgs { sha256: Some(ByteBuf::from(sha(&data))), ..begin_args(cap, data.len() as u64, None) };
    let s = w.state.uploads_begin(&c, args).unwrap();
    assert_eq!(s.state, SessionState::Finished { blob_id: a.id });
    assert_eq!(w.state.uploads_finish(&c, s.id, &sha(&data), data.len() as u64).unwrap().id, a.id);
    // another capsule keeps its own copy
    let other = w.capsule(alice);
    assert_ne!(upload(&mut w, alice, other, &data).id, a.id);
}

#[test]
fn expired_sessions_are_collected_in_bounded_passes() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let data = file(4 * MB, 12);
    for _ in 0..3 {
        let s = w.begin(alice, cap, data.len(), None);
        w.put(alice, &s, 0, &data).unwrap();
        w.put(alice, &s, 2, &data).unwrap();
    }
    let ttl = w.state.upload_config().session_ttl_ns;
    assert_eq!(w.state.gc_pass(w.now).sessions_expired, 0, "nothing is due before the TTL");
    w.now += ttl + 1;
    let mut passes = 0;
    loop {
        let r = w.state.gc_pass(w.now);
        passes += 1;
        assert!(r.chunks_freed <= backend::domain::gc::GC_CHUNKS_PER_PASS);
        if !r.more {
            break;
        }
    }
    let st = w.state.stats();
    assert_eq!((st.open_sessions, st.session_bytes, st.gc_pending_bytes), (0, 0, 0));
    assert_eq!(st.bytes_freed_total, 3 * (1_800_000 + 400_000));
    assert!(w.state.uploads_list(&w.ctx(alice)).is_empty());
    println!("expired 3 sessions in {passes} passes");
}

#[test]
fn quotas_refuse_with_a_clear_error_and_change_nothing() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let admin = backend::domain::Ctx { caller: user(200), now: w.now, is_controller: true };
    let c = w.ctx(alice);
    assert!(matches!(w.state.admin_set_config(&c, ConfigUpdate::default()), Err(Error::Unauthorized(_))));
    assert!(matches!(
        w.state.admin_set_config(&admin, ConfigUpdate { session_ttl_ns: Some(1), ..Default::default() }),
        Err(Error::InvalidArgument(_))
    ));
    let cfg = w.state.admin_set_config(&admin, ConfigUpdate { max_capsule_bytes: Some(3 * MB as u64), ..Default::default() }).unwrap();
    assert_eq!(cfg.max_capsule_bytes, 3 * MB as u64);
    upload(&mut w, alice, cap, &file(2 * MB, 13));
    let before = w.mem.snapshot();
    let err = w.state.uploads_begin(&c, begin_args(cap, 2 * MB as u64, None)).unwrap_err();
    assert!(matches!(err, Error::QuotaExceeded(ref m) if m.contains("capsule")), "{err}");
    assert!(w.mem.snapshot() == before);
}

#[test]
fn members_and_roles() {
    let mut w = World::new();
    let (alice, bob, carol) = (user(1), user(2), user(3));
    let cap = w.capsule(alice);
    let a = w.ctx(alice);
    let b = w.ctx(bob);
    assert!(matches!(w.state.capsules_get(&b, cap), Err(Error::NotFound(_))), "non-members cannot tell it exists");
    w.state.capsules_set_member(&a, cap, bob, Role::Reader).unwrap();
    assert!(matches!(w.state.capsules_get(&b, cap), Err(Error::NotFound(_))), "invited is not joined");
    assert_eq!(w.state.capsules_accept(&b, cap).unwrap().my_role, Some(Role::Reader));
    assert_eq!(w.state.capsules_get(&b, cap).unwrap().my_role, Some(Role::Reader));
    assert!(matches!(w.state.uploads_begin(&b, begin_args(cap, 10, None)), Err(Error::Unauthorized(_))));
    assert!(matches!(w.state.capsules_set_member(&b, cap, carol, Role::Reader), Err(Error::Unauthorized(_))));
    w.state.capsules_set_member(&a, cap, bob, Role::Writer).unwrap();
    w.state.uploads_begin(&b, begin_args(cap, 10, None)).unwrap();
    assert!(matches!(w.state.capsules_remove_member(&a, cap, alice), Err(Error::Conflict(_))), "last owner stays");
    assert!(matches!(w.state.capsules_set_member(&a, cap, alice, Role::Reader), Err(Error::Conflict(_))));
    w.state.capsules_set_member(&a, cap, bob, Role::Owner).unwrap();
    w.state.capsules_remove_member(&b, cap, alice).unwrap();
    assert!(w.state.capsules_list(&a).is_empty());
    assert_eq!(w.state.capsules_list(&b).len(), 1);
    w.state.capsules_remove_member(&b, cap, bob).expect_err("bob is now the last owner");
}

#[test]
fn memories_list_pages_with_a_cursor() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let c = w.ctx(alice);
    let ids: Vec<u64> = (0..23).map(|_| create(&mut w, alice, cap, vec![], None).unwrap().id).collect();
    let mut seen = vec![];
    let mut cursor = None;
    loop {
        let page = w.state.memories_list(&c, cap, cursor, 10).unwrap();
        assert!(page.memories.len() <= 10);
        seen.extend(page.memories.iter().map(|m| m.id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    // a limit above the maximum page is clamped; 23 fit in one page of 50
    let all = w.state.memories_list(&c, cap, None, 1000).unwrap();
    assert_eq!((all.memories.len(), all.next_cursor), (23, None));
    assert!(matches!(w.state.memories_list(&w.ctx(user(5)), cap, None, 10), Err(Error::NotFound(_))));
}
