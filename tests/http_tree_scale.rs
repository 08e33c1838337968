//! The HTTP certification tree with 100,000 assets: heap bytes and time to build it,
//! insert into it and serve from it. `cargo test --test http_tree_scale --
//! --ignored --nocapture` (about a minute); Wasm instruction counts per certified
//! response come from `tests/wasm_http.rs`.

mod common;
#[allow(unused_imports)]
use common::{file as _, sha as _};

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use backend::api::*;
use common::*;
use serde_bytes::ByteBuf;

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
#[ignore = "a measurement: run with --ignored --nocapture"]
fn tree_with_100k_assets() {
    let mut w = World::new();
    let owner = user(1);
    let cap = w.capsule(owner);
    let c = w.ctx(owner);
    let kinds = [AssetKind::Original, AssetKind::Display, AssetKind::Thumbnail, AssetKind::Placeholder];
    let memories = 25_000u64;
    for m in 0..memories {
        let assets = kinds
            .iter()
            .enumerate()
            .map(|(i, k)| AssetInput {
                kind: *k,
                source: AssetSource::Inline(ByteBuf::from((m * 4 + i as u64).to_be_bytes().to_vec())),
                mime: "image/jpeg".into(),
                width: None,
                height: None,
                duration_ms: None,
            })
            .collect();
        let meta = MemoryMeta { title: String::new(), kind: MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec![] };
        w.state.memories_create(&c, MemoryCreateArgs { capsule_id: cap, meta, assets, idempotency_key: None }).unwrap();
        if m % 2 == 0 {
            w.state.memories_set_public(&c, m + 1, true).unwrap();
        }
    }
    // An upgrade drops the heap tree; measure the rebuild from stable memory.
    let before = LIVE.load(Ordering::Relaxed);
    w.upgrade();
    let t = Instant::now();
    let mut passes = 0;
    let mut entries = 0;
    loop {
        let r = w.state.http_rebuild_step();
        passes += 1;
        entries += r.entries;
        if !r.more {
            break;
        }
    }
    let build = t.elapsed();
    let heap = LIVE.load(Ordering::Relaxed) - before;
    // Serve: a certified 200 of a public placeholder, and a 403 of a private one.
    let anon = w.ctx(candid::Principal::anonymous());
    let t = Instant::now();
    let n = 2_000u64;
    for i in 0..n {
        let m = 1 + (i * 7919) % memories;
        let req = HttpRequest { method: "GET".into(), url: format!("/m/{m}/placeholder"), headers: vec![], body: ByteBuf::new(), certificate_version: Some(2) };
        let r = w.state.http_request(&anon, &req, Some(&[0u8; 100]));
        assert!(r.status_code == 200 || r.status_code == 403);
    }
    let serve = t.elapsed() / n as u32;
    // Insert: one more memory with four assets.
    let t = Instant::now();
    let assets = kinds
        .iter()
        .map(|k| AssetInput { kind: *k, source: AssetSource::Inline(ByteBuf::from(vec![1, 2, 3])), mime: "image/jpeg".into(), width: None, height: None, duration_ms: None })
        .collect();
    let meta = MemoryMeta { title: String::new(), kind: MemoryKind::Photo, description: String::new(), taken_at_ns: None, tags: vec![] };
    w.state.memories_create(&c, MemoryCreateArgs { capsule_id: cap, meta, assets, idempotency_key: None }).unwrap();
    let insert = t.elapsed();
    println!("== certification tree, {} assets ({} public), native ==", memories * 4, memories * 2);
    println!("responses certified: {entries} in {passes} passes; heap {:.1} MiB ({:.0} bytes per response)", heap as f64 / 1048576.0, heap as f64 / entries as f64);
    println!("rebuild after upgrade: {build:?} ({:?} per response)", build / entries as u32);
    println!("serve (witness + certificate header): {serve:?} per request; insert a 4-asset memory: {insert:?}");
}
