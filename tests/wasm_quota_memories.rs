//! Issue 27, item 4 on the real Wasm (embedded host): memories over a blob the capsule
//! already has are charged for their records and certified responses, a full capsule
//! creates nothing more, `max_memories_per_capsule` holds, and the counts survive an
//! upgrade. (`tests/quota_memories.rs` has the native cases, the parts cap among them.)

#[macro_use]
mod harness;

use backend::api::{self, *};
use backend::domain::records::{memory_charge, MIN_CHUNK_SIZE};
use candid::Principal;
use harness::*;

use backend::domain::http_cert::KINDS;

fn config(b: &mut dyn Backend, u: ConfigUpdate) -> UploadConfig {
    let r: api::Result<UploadConfig> = b.call(controller(), "admin_set_config", (u,));
    r.expect("admin_set_config")
}

fn meta() -> MemoryMeta {
    MemoryMeta { title: "clip".into(), kind: MemoryKind::Video, description: String::new(), taken_at_ns: None, tags: vec![] }
}

fn create(b: &mut dyn Backend, who: Principal, cap: u64, assets: Vec<AssetInput>) -> api::Result<Memory> {
    b.call(who, "memories_create", (MemoryCreateArgs { capsule_id: cap, meta: meta(), assets, idempotency_key: None },))
}

fn used(b: &mut dyn Backend, who: Principal, cap: u64) -> u64 {
    let c: api::Result<Capsule> = b.q(who, "capsules_get", (cap,));
    c.unwrap().bytes_used
}

#[test]
fn memories_are_counted_on_the_wasm() {
    let mut e = embedded();
    let b: &mut dyn Backend = &mut e;
    let alice = user(1);
    let cap = b.capsule(alice);
    let cfg: UploadConfig = b.q(alice, "upload_config", ());
    assert_eq!((cfg.max_memories_per_capsule, cfg.max_parts_per_memory), (Some(100_000), Some(8_192)));

    // A capsule whose quota is one 40-part blob.
    let data = file(39 * MIN_CHUNK_SIZE as usize + 1, 27);
    config(b, ConfigUpdate { max_capsule_bytes: Some(data.len() as u64), ..Default::default() });
    let s = b.begin_chunked(alice, cap, data.len(), None, Some(MIN_CHUNK_SIZE));
    for i in 0..s.chunk_count {
        b.put(alice, &s, i, &data).unwrap();
    }
    let blob = b.finish(alice, &s, &data).0.unwrap();
    assert_eq!(blob.chunk_count, 40);
    let seven = || {
        KINDS
            .iter()
            .map(|k| AssetInput { kind: *k, source: AssetSource::Blob(blob.id), mime: "video/mp4".into(), width: None, height: None, duration_ms: None })
            .collect::<Vec<_>>()
    };
    // Full: nothing more, not even memories over the blob it has, nor metadata alone.
    for assets in [seven(), vec![]] {
        let r = create(b, alice, cap, assets);
        assert!(matches!(r, Err(Error::QuotaExceeded(_))), "{r:?}");
    }
    assert_eq!(b.stats().memories, 0);

    // Room for three, a count limit of two.
    let each = memory_charge(&meta(), [("video/mp4", 40); 7]);
    config(b, ConfigUpdate { max_capsule_bytes: Some(blob.size + 3 * each), max_memories_per_capsule: Some(2), ..Default::default() });
    let first = create(b, alice, cap, seven()).unwrap();
    create(b, alice, cap, seven()).unwrap();
    let r = create(b, alice, cap, seven());
    assert!(matches!(r, Err(Error::QuotaExceeded(ref m)) if m.contains("max_memories_per_capsule")), "{r:?}");
    assert_eq!(used(b, alice, cap), blob.size + 2 * each);

    // The counts and charges survive an upgrade.
    b.upgrade(canister_wasm()).unwrap();
    let r = create(b, alice, cap, seven());
    assert!(matches!(r, Err(Error::QuotaExceeded(_))), "{r:?}");
    config(b, ConfigUpdate { max_memories_per_capsule: Some(3), ..Default::default() });
    create(b, alice, cap, seven()).unwrap();
    let r = create(b, alice, cap, vec![]);
    assert!(matches!(r, Err(Error::QuotaExceeded(_))), "{r:?}");
    assert_eq!(used(b, alice, cap), blob.size + 3 * each);

    // A delete gives back exactly the memory's charge.
    let r: api::Result<()> = b.call(alice, "memories_delete", (first.id,));
    r.unwrap();
    assert_eq!(used(b, alice, cap), blob.size + 2 * each);
}
