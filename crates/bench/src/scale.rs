//! Scale with count: what one call costs when a capsule already holds 1k, 10k, 100k
//! memories, the heap and stable memory it takes, and what an upgrade costs then
//! (`install_code`: pre + compilation + post, and the bounded timer passes that rebuild
//! the HTTP certification afterwards). Every figure is an instruction count of the
//! embedded host, counted as the IC counts.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{anyhow, Result};
use backend::api::{
    AssetInput, AssetKind, AssetSource, BeginArgs, BlobMeta, Capsule, CapsuleCreateArgs, Error, Memory, MemoryCreateArgs,
    MemoryKind, MemoryMeta, MemoryPage, Session,
};
use ic_host::Host;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::keepsake::USER;
use crate::meter::{ok, Msg};

type Res<T> = std::result::Result<T, Error>;

/// The figures at one count of memories.
pub struct Row {
    pub memories: u64,
    pub create: u64,
    pub get: u64,
    pub list_page: u64,
    pub begin: u64,
    pub finish: u64,
    pub heap: u64,
    pub stable: u64,
    pub upgrade: u64,
    pub rebuild_passes: usize,
    pub rebuild_largest: u64,
    pub rebuild_total: u64,
}

fn memory_args(capsule: u64, n: u64) -> MemoryCreateArgs {
    MemoryCreateArgs {
        capsule_id: capsule,
        meta: MemoryMeta {
            title: format!("memory {n}"),
            kind: MemoryKind::Photo,
            description: String::new(),
            taken_at_ns: Some(n),
            tags: vec!["bench".into()],
        },
        assets: vec![AssetInput {
            kind: AssetKind::Thumbnail,
            source: AssetSource::Inline(ByteBuf::from(n.to_le_bytes().repeat(8))),
            mime: "image/jpeg".into(),
            width: Some(8),
            height: Some(8),
            duration_ms: None,
        }],
        idempotency_key: None,
    }
}

fn must<T>(r: Res<T>, what: &str) -> Result<T> {
    r.map_err(|e| anyhow!("{what}: {e:?}"))
}

/// Runs the backend `wasm` up to each of `counts` memories in one capsule.
pub fn run(wasm: &[u8], counts: &[u64]) -> Result<Vec<Row>> {
    let init = candid::encode_args(())?;
    let mut host = Host::new(wasm, &init)?;
    // The install's timers, as the IC runs them within a second: the first marks the
    // (empty) HTTP certification done. Without it every memory created before the first
    // upgrade went uncertified and its create looked 4 × cheaper (1.88 M instead of 8 M).
    host.tick();
    let (cap, _): (Res<Capsule>, _) = ok(&mut host, true, USER, "capsules_create", (CapsuleCreateArgs { name: "scale".into() },), 0)?;
    let cap = must(cap, "capsules_create")?.id;
    let mut made = 0u64;
    let mut first = None;
    let mut rows = Vec::new();
    for &target in counts {
        let t = Instant::now();
        while made < target {
            let (m, _): (Res<Memory>, _) = ok(&mut host, true, USER, "memories_create", (memory_args(cap, made),), 0)?;
            let id = must(m, "memories_create")?.id;
            first.get_or_insert(id);
            made += 1;
        }
        // One more of each call at this count.
        let (m, create): (Res<Memory>, Msg) = ok(&mut host, true, USER, "memories_create", (memory_args(cap, made),), 0)?;
        let last = must(m, "memories_create")?.id;
        made += 1;
        let mid = first.unwrap_or(last) + (last - first.unwrap_or(last)) / 2;
        let (m, get): (Res<Memory>, Msg) = ok(&mut host, false, USER, "memories_get", (mid,), 0)?;
        must(m, "memories_get")?;
        let (p, list): (Res<MemoryPage>, Msg) = ok(&mut host, false, USER, "memories_list", (cap, Some(mid), 50u32), 0)?;
        let page = must(p, "memories_list")?;
        if page.memories.is_empty() {
            return Err(anyhow!("memories_list from the middle returned nothing"));
        }
        let bytes = made.to_le_bytes().repeat(64);
        let args = BeginArgs {
            capsule_id: cap,
            size: bytes.len() as u64,
            chunk_size: None,
            sha256: None,
            mime: "image/jpeg".into(),
            name: format!("file {made}"),
            pmid: None,
            idempotency_key: None,
        };
        let (s, begin): (Res<Session>, Msg) = ok(&mut host, true, USER, "uploads_begin", (args,), 0)?;
        let session = must(s, "uploads_begin")?.id;
        let (r, _): (Res<backend::api::PutChunkOk>, Msg) =
            ok(&mut host, true, USER, "uploads_put_chunk", (session, 0u32, ByteBuf::from(bytes.clone())), 0)?;
        must(r, "uploads_put_chunk")?;
        let digest = ByteBuf::from(Sha256::digest(&bytes).to_vec());
        let (b, finish): (Res<BlobMeta>, Msg) = ok(&mut host, true, USER, "uploads_finish", (session, digest, bytes.len() as u64), 0)?;
        must(b, "uploads_finish")?;

        let id = host.canister_id();
        let status = host.canister_status(id).ok_or_else(|| anyhow!("no canister"))?;
        let heap = u64::try_from(status.memory_metrics.wasm_memory_size.0).unwrap_or(u64::MAX);
        let stable = host.stable_size_bytes();
        let up = host.upgrade(wasm, &init).map_err(|e| anyhow!("upgrade at {made} memories: {e}"))?;
        // The HTTP certification is rebuilt by timers after the upgrade: run them out.
        let mut passes = Vec::new();
        for _ in 0..10_000 {
            let ran = host.tick();
            if ran.is_empty() {
                break;
            }
            passes.extend(ran.iter().map(|r| r.instructions));
        }
        rows.push(Row {
            memories: made,
            create: create.instructions,
            get: get.instructions,
            list_page: list.instructions,
            begin: begin.instructions,
            finish: finish.instructions,
            heap,
            stable,
            upgrade: up.instructions,
            rebuild_passes: passes.len(),
            rebuild_largest: passes.iter().copied().max().unwrap_or(0),
            rebuild_total: passes.iter().sum(),
        });
        eprintln!("scale: {made} memories in {:.1} s", t.elapsed().as_secs_f64());
    }
    Ok(rows)
}

fn m(i: u64) -> String {
    format!("{:.2} M", i as f64 / 1e6)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from("## Scale with count (one capsule, memories with one inline asset)\n\n");
    s.push_str("| memories | memories_create | memories_get | list page (50) | uploads_begin | uploads_finish | heap | stable | upgrade (install_code) | rebuild passes: count / largest / total |\n");
    s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} / {} |",
            r.memories,
            m(r.create),
            m(r.get),
            m(r.list_page),
            m(r.begin),
            m(r.finish),
            mib(r.heap),
            mib(r.stable),
            m(r.upgrade),
            r.rebuild_passes,
            m(r.rebuild_largest),
            m(r.rebuild_total)
        );
    }
    if let [a, .., b] = rows {
        let ratio = |x: u64, y: u64| y as f64 / x.max(1) as f64;
        let _ = writeln!(
            s,
            "\nFrom {} to {} memories ({:.0} ×): memories_create {:.2} ×, memories_get {:.2} ×, list page {:.2} ×, \
             uploads_begin {:.2} ×, uploads_finish {:.2} ×, upgrade {:.2} ×, heap {:.2} ×.",
            a.memories,
            b.memories,
            b.memories as f64 / a.memories as f64,
            ratio(a.create, b.create),
            ratio(a.get, b.get),
            ratio(a.list_page, b.list_page),
            ratio(a.begin, b.begin),
            ratio(a.finish, b.finish),
            ratio(a.upgrade, b.upgrade),
            ratio(a.heap, b.heap),
        );
    }
    s
}
