//! No memory creep: 200 queries that each read 2 MiB of a stored blob leave the process
//! (which runs the canister in-process) within a few MB of where it started. A query
//! is rolled back whole, including any growth of the canister's Wasm memory.
//! (Alone in its test binary: no other test allocates meanwhile.)

mod common;

use backend::api::BeginArgs;
use candid::Principal;
use keepsake::embedded::EmbeddedTransport;
use keepsake::Client;
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
/// The canister's largest range read (2 MiB less 4 KiB for the reply's envelope).
const READ: u64 = 2 * MIB - 4096;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn two_hundred_large_queries_leave_rss_flat() {
    let dir = tempfile::tempdir().unwrap();
    let user = Principal::from_slice(&[0x33, 0x01]);
    let t = EmbeddedTransport::open(&dir.path().join("state"), common::wasm(), user).unwrap();
    let client = Client::new(Box::new(t));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let data = common::random_bytes(8 * MIB as usize, 99);
    rt.block_on(async {
        let cap = client.resolve_capsule(None).await.unwrap().id;
        let args = BeginArgs {
            capsule_id: cap,
            size: data.len() as u64,
            chunk_size: Some(MIB as u32),
            sha256: None,
            mime: "video/mp4".into(),
            name: "big".into(),
            pmid: None,
            idempotency_key: None,
        };
        let s = client.uploads_begin(&args).await.unwrap();
        for (i, chunk) in data.chunks(MIB as usize).enumerate() {
            client.uploads_put_chunk(s.id, i as u32, chunk.to_vec()).await.unwrap();
        }
        let blob = keepsake::upload::finish(&client, s.id, &Sha256::digest(&data), data.len() as u64).await.unwrap().id;
        let read = |i: u64| {
            let offset = (i * 3 * MIB / 2) % (data.len() as u64 - READ);
            let client = &client;
            let data = &data;
            async move {
                let got = client.blobs_read_range(blob, offset, READ).await.unwrap();
                assert!(got[..] == data[offset as usize..(offset + READ) as usize]);
            }
        };
        for i in 0..10 {
            read(i).await; // warm up: allocator pools, page cache, module code
        }
        let before = rss_kib();
        for i in 0..200 {
            read(i).await;
        }
        let after = rss_kib();
        println!("RSS before the 200 queries {before} KiB, after {after} KiB ({:+} KiB)", after as i64 - before as i64);
        assert!(after < before + 8 * 1024, "RSS grew by {} KiB over 200 queries of 2 MiB", after - before);
    });
}
