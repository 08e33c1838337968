//! Everything a member creates is counted (issue 27, item 4): memories count against
//! their capsule's bytes (their records and certified responses, beyond the blobs) and
//! against `max_memories_per_capsule`; a memory has at most `MAX_MEMORY_PARTS` certified
//! parts. Over an in-memory stable memory; every refusal is checked to change nothing.

mod common;

use backend::api::*;
use backend::domain::records::{
    memory_charge, CapsuleRecord, MemoryRecord, CERT_BYTES_PER_RESPONSE, MAX_MEMORIES_PER_CAPSULE_LIMIT, MAX_MEMORY_PARTS,
    MIN_CHUNK_SIZE,
};
use backend::domain::{Ctx, State};
use backend::storage::{Cbor, Stable};
use common::*;
use serde_bytes::ByteBuf;

use backend::domain::http_cert::KINDS;
const MIME: &str = "video/mp4";

fn admin(w: &World) -> Ctx {
    Ctx { caller: user(200), now: w.now, is_controller: true }
}

fn set_config(w: &mut World, u: ConfigUpdate) -> UploadConfig {
    let a = admin(w);
    w.state.admin_set_config(&a, u).expect("config")
}

/// A finished upload in chunks of `MIN_CHUNK_SIZE`, so a blob of many parts stays small.
fn upload_parts(w: &mut World, who: candid::Principal, cap: u64, parts: u32, seed: u64) -> BlobMeta {
    let len = (parts as usize - 1) * MIN_CHUNK_SIZE as usize + 1;
    let data = file(len, seed);
    let c = w.ctx(who);
    let args = BeginArgs { chunk_size: Some(MIN_CHUNK_SIZE), ..begin_args(cap, len as u64, None) };
    let s = w.state.uploads_begin(&c, args).unwrap();
    assert_eq!(s.chunk_count, parts);
    for i in 0..s.chunk_count {
        w.put(who, &s, i, &data).unwrap();
    }
    w.finish(who, &s, &sha(&data), data.len()).unwrap()
}

fn asset(kind: AssetKind, source: AssetSource) -> AssetInput {
    AssetInput { kind, source, mime: MIME.into(), width: None, height: None, duration_ms: None }
}

fn inline(kind: AssetKind) -> AssetInput {
    asset(kind, AssetSource::Inline(ByteBuf::from(vec![7u8; 100])))
}

fn small_meta() -> MemoryMeta {
    MemoryMeta { title: "clip".into(), kind: MemoryKind::Video, description: String::new(), taken_at_ns: None, tags: vec![] }
}

/// The 10.7 KB of metadata of the issue: the longest title, description and tags.
fn big_meta(n: u64) -> MemoryMeta {
    let mut title = format!("{n:08} ");
    title.push_str(&"t".repeat(512 - title.len()));
    MemoryMeta {
        title,
        kind: MemoryKind::Note,
        description: "d".repeat(8 * 1024),
        taken_at_ns: Some(n),
        tags: (0..32).map(|i| format!("{i:02}{}", "g".repeat(62))).collect(),
    }
}

fn create(w: &mut World, who: candid::Principal, cap: u64, meta: MemoryMeta, assets: Vec<AssetInput>) -> Result<Memory> {
    let c = w.ctx(who);
    w.state.memories_create(&c, MemoryCreateArgs { capsule_id: cap, meta, assets, idempotency_key: None })
}

fn used(w: &World, who: candid::Principal, cap: u64) -> u64 {
    w.state.capsules_get(&w.ctx(who), cap).unwrap().bytes_used
}

/// What a memory of `meta` with `assets` of `parts` each is charged.
fn charge(meta: &MemoryMeta, parts: &[u32]) -> u64 {
    memory_charge(meta, parts.iter().map(|p| (MIME, *p)))
}

/// Runs `f`, which must be refused with `kind`, and checks that stable memory did not
/// change. Returns the refusal.
fn refused<T: std::fmt::Debug>(w: &mut World, kind: &str, f: impl FnOnce(&mut World) -> Result<T>) -> Error {
    let before = w.mem.snapshot();
    let err = f(w).expect_err("refused");
    assert_eq!(err.kind(), kind, "{err}");
    assert!(w.mem.snapshot() == before, "a refused call changed stable memory: {err}");
    err
}

/// The first case: a capsule whose quota is exactly one 40-part blob took 200
/// memories of 7 asset kinds over that blob (each certifying 7 × 44 responses). Now a
/// full capsule creates nothing; with room for five memories, five are created, and a
/// delete gives back exactly what the memory was charged.
#[test]
fn two_hundred_memories_over_one_blob_are_refused_once_the_quota_is_reached() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let blob_size = 39 * u64::from(MIN_CHUNK_SIZE) + 1;
    set_config(&mut w, ConfigUpdate { max_capsule_bytes: Some(blob_size), ..Default::default() });
    let blob = upload_parts(&mut w, alice, cap, 40, 1);
    assert_eq!((blob.size, blob.chunk_count, used(&w, alice, cap)), (blob_size, 40, blob_size));
    let assets = || KINDS.iter().map(|k| asset(*k, AssetSource::Blob(blob.id))).collect::<Vec<_>>();

    // The quota is one blob: all 200 are refused, and none changes anything.
    for i in 0..200 {
        let err = refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), assets()));
        if i == 0 {
            assert!(err.message().contains("certified responses"), "{err}");
        }
    }
    assert_eq!((w.state.stats().memories, used(&w, alice, cap)), (0, blob_size));

    // Room for five: five of 200, then refusals that change nothing.
    let each = charge(&small_meta(), &[40; 7]);
    assert!(each >= 7 * 44 * CERT_BYTES_PER_RESPONSE);
    set_config(&mut w, ConfigUpdate { max_capsule_bytes: Some(blob_size + 5 * each + each / 2), ..Default::default() });
    let mut made = vec![];
    for _ in 0..200 {
        let before = w.mem.snapshot();
        match create(&mut w, alice, cap, small_meta(), assets()) {
            Ok(m) => made.push(m.id),
            Err(e) => {
                assert!(matches!(e, Error::QuotaExceeded(_)), "{e}");
                assert!(w.mem.snapshot() == before, "a refused create changed stable memory");
            }
        }
    }
    assert_eq!(made.len(), 5);
    assert_eq!(used(&w, alice, cap), blob_size + 5 * each);
    assert_eq!(w.state.stats().memories, 5);

    // Deleting one gives back exactly its charge (the blob stays: others use it), and
    // makes room for exactly one more.
    let c = w.ctx(alice);
    w.state.memories_delete(&c, made[0]).unwrap();
    assert_eq!(used(&w, alice, cap), blob_size + 4 * each);
    create(&mut w, alice, cap, small_meta(), assets()).unwrap();
    refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), assets()));

    // Removing assets gives back their share; adding one over a full capsule is refused.
    let m = made[1];
    w.state.memories_remove_asset(&c, m, AssetKind::Other).unwrap();
    assert_eq!(used(&w, alice, cap), blob_size + 4 * each + charge(&small_meta(), &[40; 6]));
    // (the freed share fits one asset back, not a new memory)
    refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), assets()));
    w.state.memories_add_asset(&c, m, asset(AssetKind::Other, AssetSource::Blob(blob.id))).unwrap();
    assert_eq!(used(&w, alice, cap), blob_size + 5 * each);
    // A full capsule: adding an asset or growing a memory is refused, removing and
    // shrinking are not.
    w.state.memories_remove_asset(&c, m, AssetKind::Other).unwrap();
    let full = used(&w, alice, cap);
    set_config(&mut w, ConfigUpdate { max_capsule_bytes: Some(full), ..Default::default() });
    refused(&mut w, "QuotaExceeded", |w| w.state.memories_add_asset(&w.ctx(alice), m, inline(AssetKind::Other)));
    refused(&mut w, "QuotaExceeded", |w| w.state.memories_update(&w.ctx(alice), m, big_meta(1)));
    refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, MemoryMeta { title: String::new(), ..small_meta() }, vec![]));
    w.state.memories_remove_asset(&c, m, AssetKind::Preview).unwrap();
    assert_eq!(used(&w, alice, cap), full - (charge(&small_meta(), &[40; 6]) - charge(&small_meta(), &[40; 5])));

    // Everything deleted: the capsule holds nothing (the blob is freed with its last
    // reference).
    let page = w.state.memories_list(&c, cap, None, 50).unwrap();
    for mem in page.memories {
        w.state.memories_delete(&c, mem.id).unwrap();
    }
    assert_eq!((used(&w, alice, cap), w.state.stats().memories), (0, 0));
}

/// The second case: 1,000 memories of 10.7 KB of metadata each were accepted with
/// 0 bytes charged. Now each is charged its texts plus its record's overhead, and the
/// capsule's quota stops them.
#[test]
fn a_thousand_metadata_only_memories_are_refused_once_the_quota_is_reached() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let quota = 1_000_000u64;
    set_config(&mut w, ConfigUpdate { max_capsule_bytes: Some(quota), ..Default::default() });
    let texts = |m: &MemoryMeta| (m.title.len() + m.description.len() + m.tags.iter().map(String::len).sum::<usize>()) as u64;
    assert_eq!(texts(&big_meta(0)), 10_752, "the issue's 10.7 KB");
    let mut made = 0u64;
    let mut charged = 0u64;
    for n in 0..1000 {
        let before = w.mem.snapshot();
        match create(&mut w, alice, cap, big_meta(n), vec![]) {
            Ok(_) => {
                made += 1;
                charged += charge(&big_meta(n), &[]);
            }
            Err(e) => {
                assert!(matches!(e, Error::QuotaExceeded(ref m) if m.contains(&format!("capsule {cap}"))), "{e}");
                assert!(w.mem.snapshot() == before, "a refused create changed stable memory");
            }
        }
    }
    let each = charge(&big_meta(0), &[]);
    assert!(each > 10_752);
    assert_eq!(made, quota / each, "as many as fit");
    assert_eq!(used(&w, alice, cap), charged);
    assert!(charged <= quota && charged + each > quota);
    assert_eq!(w.state.stats().memories, made);

    // An update gives back what the metadata shrank by, and is charged its growth.
    let c = w.ctx(alice);
    let small = charge(&small_meta(), &[]);
    let leftover = quota - charged;
    assert!(leftover >= small && leftover < each);
    let first = w.state.memories_list(&c, cap, None, 1).unwrap().memories[0].id;
    w.state.memories_update(&c, first, small_meta()).unwrap();
    assert_eq!(used(&w, alice, cap), charged - (each - small));
    // the room it freed takes one more big memory (leftover + each - small ≥ each) …
    create(&mut w, alice, cap, big_meta(5000), vec![]).unwrap();
    assert_eq!(used(&w, alice, cap), charged + small);
    // … and then growing the first back does not fit (leftover - small < each - small)
    let err = refused(&mut w, "QuotaExceeded", |w| w.state.memories_update(&w.ctx(alice), first, big_meta(0)));
    assert!(err.message().contains("this update"), "{err}");
    // deleting another big one gives back its charge and makes room again
    let second = w.state.memories_list(&c, cap, Some(first), 1).unwrap().memories[0].id;
    w.state.memories_delete(&c, second).unwrap();
    assert_eq!(used(&w, alice, cap), charged + small - each);
    w.state.memories_update(&c, first, big_meta(0)).unwrap();
    assert_eq!(used(&w, alice, cap), charged);
}

#[test]
fn a_capsule_holds_at_most_max_memories_per_capsule() {
    let mut w = World::new();
    let (alice, bob) = (user(1), user(2));
    let cap = w.capsule(alice);
    let other = w.capsule(bob);
    assert_eq!(w.state.upload_config().max_memories_per_capsule, Some(100_000));
    assert_eq!(w.state.upload_config().max_parts_per_memory, Some(MAX_MEMORY_PARTS));
    // the limit is bounded (and a refused update changes nothing)
    let too_many = Some(MAX_MEMORIES_PER_CAPSULE_LIMIT + 1);
    let a = admin(&w);
    let err = refused(&mut w, "InvalidArgument", |w| {
        w.state.admin_set_config(&a, ConfigUpdate { max_memories_per_capsule: too_many, ..Default::default() })
    });
    assert!(err.message().contains("max_memories_per_capsule"), "{err}");
    let c = w.ctx(alice);
    refused(&mut w, "Unauthorized", |w| w.state.admin_set_config(&c, ConfigUpdate { max_memories_per_capsule: Some(9), ..Default::default() }));

    let cfg = set_config(&mut w, ConfigUpdate { max_memories_per_capsule: Some(3), ..Default::default() });
    assert_eq!(cfg.max_memories_per_capsule, Some(3));
    assert_eq!(w.state.upload_config().max_memories_per_capsule, Some(3));
    let ids: Vec<u64> = (0..3).map(|_| create(&mut w, alice, cap, small_meta(), vec![inline(AssetKind::Placeholder)]).unwrap().id).collect();
    let err = refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), vec![]));
    assert!(err.message().contains("3 memories") && err.message().contains("max_memories_per_capsule"), "{err}");
    // another capsule has its own count
    create(&mut w, bob, other, small_meta(), vec![]).unwrap();
    // a delete makes room for one
    w.state.memories_delete(&c, ids[0]).unwrap();
    create(&mut w, alice, cap, small_meta(), vec![]).unwrap();
    refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), vec![]));
    // an idempotent retry of a memory that exists is not a new memory
    set_config(&mut w, ConfigUpdate { max_memories_per_capsule: Some(4), ..Default::default() });
    let args = MemoryCreateArgs { capsule_id: cap, meta: small_meta(), assets: vec![], idempotency_key: Some("k".into()) };
    let m = w.state.memories_create(&c, args.clone()).unwrap();
    assert_eq!(w.state.memories_create(&c, args).unwrap(), m);
    // a lower limit than the capsule holds: no creates until enough are deleted
    set_config(&mut w, ConfigUpdate { max_memories_per_capsule: Some(2), ..Default::default() });
    refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), vec![]));
    w.state.memories_delete(&c, ids[1]).unwrap();
    w.state.memories_delete(&c, ids[2]).unwrap();
    refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), vec![]));
    w.state.memories_delete(&c, m.id).unwrap();
    create(&mut w, alice, cap, small_meta(), vec![]).unwrap();
    // the counts survive an upgrade
    w.upgrade();
    refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), vec![]));
}

/// Rewrites stable memory as a build before this change left it: capsules without a
/// memory count, memories charged nothing.
fn as_before_counting(w: &mut World, cap: u64) {
    let mem = w.mem.clone();
    let placeholder = State::open(common::CountingMemory::default()).unwrap();
    drop(std::mem::replace(&mut w.state, placeholder));
    let mut st = Stable::open(mem.clone()).unwrap();
    let mut c: CapsuleRecord = st.capsules.get(&cap).unwrap().0;
    let charged: Vec<MemoryRecord> = st.memories.iter().map(|e| e.value().0).collect();
    for mut m in charged {
        c.bytes_used -= m.charged_bytes;
        m.charged_bytes = 0;
        st.memories.insert(m.id, Cbor(m));
    }
    c.memory_count = None;
    st.capsules.insert(cap, Cbor(c));
    drop(st);
    w.state = State::open(mem).unwrap();
}

fn stored_capsule(w: &mut World, cap: u64) -> CapsuleRecord {
    let mem = w.mem.clone();
    let placeholder = State::open(common::CountingMemory::default()).unwrap();
    drop(std::mem::replace(&mut w.state, placeholder));
    let c = Stable::open(mem.clone()).unwrap().capsules.get(&cap).unwrap().0;
    w.state = State::open(mem).unwrap();
    c
}

/// Capsules from before memories were counted have no count: their first create counts
/// the capsule's memories (up to the limit + 1) and stores the count; a refusal stores
/// nothing. Memories from before were charged nothing and give back nothing.
#[test]
fn capsules_from_before_are_counted_once_and_old_memories_give_back_nothing() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    let blob = upload_parts(&mut w, alice, cap, 3, 9);
    let ids: Vec<u64> = (0..5)
        .map(|_| create(&mut w, alice, cap, small_meta(), vec![asset(AssetKind::Original, AssetSource::Blob(blob.id))]).unwrap().id)
        .collect();
    assert_eq!(stored_capsule(&mut w, cap).memory_count, Some(5));
    as_before_counting(&mut w, cap);
    assert_eq!(stored_capsule(&mut w, cap).memory_count, None);
    assert_eq!(used(&w, alice, cap), blob.size);

    // at the limit: refused, counted exactly, nothing stored
    set_config(&mut w, ConfigUpdate { max_memories_per_capsule: Some(5), ..Default::default() });
    let err = refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), vec![]));
    assert!(err.message().contains("holds 5 memories"), "{err}");
    // over it: counted up to the limit + 1 only
    set_config(&mut w, ConfigUpdate { max_memories_per_capsule: Some(3), ..Default::default() });
    let err = refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), vec![]));
    assert!(err.message().contains("at least 4 memories"), "{err}");
    assert_eq!(stored_capsule(&mut w, cap).memory_count, None);

    // room: the create counts them and stores 6
    set_config(&mut w, ConfigUpdate { max_memories_per_capsule: Some(7), ..Default::default() });
    let new = create(&mut w, alice, cap, small_meta(), vec![]).unwrap();
    assert_eq!(stored_capsule(&mut w, cap).memory_count, Some(6));
    let new_charge = charge(&small_meta(), &[]);
    assert_eq!(used(&w, alice, cap), blob.size + new_charge);
    create(&mut w, alice, cap, small_meta(), vec![]).unwrap();
    refused(&mut w, "QuotaExceeded", |w| create(w, alice, cap, small_meta(), vec![]));

    // an old memory's delete gives back nothing (it was charged nothing), a new one's
    // exactly its charge; the count follows both
    let c = w.ctx(alice);
    w.state.memories_delete(&c, ids[0]).unwrap();
    assert_eq!(used(&w, alice, cap), blob.size + 2 * new_charge);
    w.state.memories_delete(&c, new.id).unwrap();
    assert_eq!(used(&w, alice, cap), blob.size + new_charge);
    assert_eq!(stored_capsule(&mut w, cap).memory_count, Some(5));
    // an old memory's asset removal gives back nothing either; its next change charges it
    w.state.memories_remove_asset(&c, ids[1], AssetKind::Original).unwrap();
    assert_eq!(used(&w, alice, cap), blob.size + new_charge);
    w.state.memories_update(&c, ids[1], small_meta()).unwrap();
    assert_eq!(used(&w, alice, cap), blob.size + 2 * new_charge);
    w.state.memories_delete(&c, ids[1]).unwrap();
    assert_eq!(used(&w, alice, cap), blob.size + new_charge);
}

/// A memory has at most `MAX_MEMORY_PARTS` certified parts (1 per inline asset, the
/// blob's chunks otherwise), at create and at add_asset.
#[test]
fn a_memory_has_at_most_max_memory_parts() {
    let mut w = World::new();
    let alice = user(1);
    let cap = w.capsule(alice);
    assert_eq!(MAX_MEMORY_PARTS, 8_192);
    // 5 × 1,638 + 2 inline = 8,192: exactly the cap
    let parts = (MAX_MEMORY_PARTS - 2) / 5;
    assert_eq!(5 * parts + 2, MAX_MEMORY_PARTS);
    let blob = upload_parts(&mut w, alice, cap, parts, 3);
    let on_blob = |k: &[AssetKind]| k.iter().map(|k| asset(*k, AssetSource::Blob(blob.id))).collect::<Vec<_>>();

    // 6 × 1,638 = 9,828: refused, naming the limit and the number, suggesting a larger chunk size
    let err = refused(&mut w, "InvalidArgument", |w| create(w, alice, cap, small_meta(), on_blob(&KINDS[..6])));
    let msg = err.message();
    assert!(msg.contains("MAX_MEMORY_PARTS") && msg.contains("8192") && msg.contains(&(6 * parts).to_string()), "{msg}");
    assert!(msg.contains("chunk size"), "{msg}");
    // 5 blobs and 2 inline: at the cap, accepted
    let mut assets = on_blob(&KINDS[..5]);
    assets.push(inline(AssetKind::Preview));
    assets.push(inline(AssetKind::Other));
    let m = create(&mut w, alice, cap, small_meta(), assets).unwrap();
    assert_eq!(used(&w, alice, cap), blob.size + 200 + charge(&small_meta(), &[parts, parts, parts, parts, parts, 1, 1]));
    // past the cap through add_asset: refused
    let c = w.ctx(alice);
    w.state.memories_remove_asset(&c, m.id, AssetKind::Other).unwrap();
    let err = refused(&mut w, "InvalidArgument", |w| {
        w.state.memories_add_asset(&w.ctx(alice), m.id, asset(AssetKind::Other, AssetSource::Blob(blob.id)))
    });
    assert!(err.message().contains(&(6 * parts + 1).to_string()), "{err}");
    // back to the cap with one part
    w.state.memories_add_asset(&c, m.id, inline(AssetKind::Other)).unwrap();
    w.state.memories_delete(&c, m.id).unwrap();
    assert_eq!(used(&w, alice, cap), 0, "the blob went with its last reference, the charge with the memory");
}
