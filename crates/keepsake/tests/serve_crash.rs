//! Crash safety through the interface: uploads run in parallel over HTTP (ic-agent, the
//! CLI's transport) into `keepsake serve`, which is killed with SIGKILL at random
//! moments. After each restart every upload whose finish was answered reads back
//! byte-identical; sessions left open are aborted, finishes committed whose answer the
//! kill cut off read back too.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backend::api::{BeginArgs, SessionState};
use candid::Principal;
use common::serve::Serve;
use common::Rng;
use keepsake::agent::AgentTransport;
use keepsake::Client;
use sha2::{Digest, Sha256};

const KILLS: u64 = 10;
const CHUNK: usize = 64 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

async fn client(url: &str, canister: &str, pem: &Path) -> Client {
    let url = url::Url::parse(url).unwrap();
    let canister = Principal::from_text(canister).unwrap();
    Client::new(Box::new(AgentTransport::connect(url, canister, Some(pem)).await.unwrap()))
}

/// Batches of four uploads begun together, all their chunks sent at once (interleaved
/// over HTTP), then finished; records each answered finish. Stops at the first error
/// (the network was killed).
async fn uploads(c: &Client, round: u64, answered: Arc<Mutex<BTreeMap<u64, (u64, usize)>>>) {
    let mut rng = Rng(round * 7919 + 17);
    let Ok(cap) = c.resolve_capsule(None).await else { return };
    for batch in 0.. {
        let mut ups = Vec::new();
        for i in 0..4u64 {
            let seed = round * 100_000 + batch * 4 + i + 1;
            let len = (1 + rng.below(6)) as usize * CHUNK + rng.below(CHUNK as u64) as usize;
            let args = BeginArgs {
                capsule_id: cap.id,
                size: len as u64,
                chunk_size: Some(CHUNK as u32),
                sha256: None,
                mime: "application/octet-stream".into(),
                name: format!("{seed}:{len}"),
                pmid: None,
                idempotency_key: None,
            };
            let s = match c.uploads_begin(&args).await {
                Ok(s) => s,
                Err(e) => {
                    println!("round {round}: uploads_begin: {e}");
                    return;
                }
            };
            ups.push((s, seed, common::random_bytes(len, seed)));
        }
        let puts = ups.iter().flat_map(|(s, _, bytes)| {
            (0..s.chunk_count).map(move |i| {
                let chunk = bytes[i as usize * CHUNK..((i as usize + 1) * CHUNK).min(bytes.len())].to_vec();
                c.uploads_put_chunk(s.id, i, chunk)
            })
        });
        if let Some(Err(e)) = futures::future::join_all(puts).await.into_iter().find(Result::is_err) {
            println!("round {round}: uploads_put_chunk: {e}");
            return;
        }
        for (s, seed, bytes) in &ups {
            let sha = Sha256::digest(bytes);
            let Ok(meta) = keepsake::upload::finish(c, s.id, &sha, bytes.len() as u64).await else { return };
            answered.lock().unwrap().insert(meta.id, (*seed, bytes.len()));
        }
    }
}

async fn read_back(c: &Client, blob: u64, (seed, len): (u64, usize)) {
    let want = common::random_bytes(len, seed);
    let got = c.blobs_read_range(blob, 0, len as u64).await.unwrap();
    assert!(got == want, "blob {blob} (seed {seed}) does not read back byte-identical");
}

#[test]
fn answered_uploads_survive_kill_9_of_keepsake_serve() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let pem = d.path().join("me.pem");
    keepsake::identity::write_new_ed25519_pem(&pem).unwrap();
    let seed = std::env::var("KEEPSAKE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5e7e_c4a5);
    println!("serve crash test seed {seed} (KEEPSAKE_CRASH_SEED reruns it)");
    let mut rng = Rng(seed);
    let answered: Arc<Mutex<BTreeMap<u64, (u64, usize)>>> = Arc::default();
    let (mut aborted, mut unanswered) = (0, 0);
    let t0 = Instant::now();
    for round in 0..KILLS {
        let net = Serve::start(&state);
        let (url, canister) = (net.url.clone(), net.canister.clone());
        let (pem2, answered2) = (pem.clone(), answered.clone());
        let uploader = std::thread::spawn(move || {
            runtime().block_on(async {
                // No retries: the first failed call (the network is gone) ends the uploads.
                let once = keepsake::client::RetryPolicy { attempts: 1, ..Default::default() };
                let c = client(&url, &canister, &pem2).await.with_retry(once);
                uploads(&c, round, answered2).await;
            })
        });
        std::thread::sleep(Duration::from_millis(300 + rng.below(1200)));
        net.kill9();
        uploader.join().unwrap();

        let net = Serve::start(&state);
        runtime().block_on(async {
            let c = client(&net.url, &net.canister, &pem).await;
            let known = answered.lock().unwrap().clone();
            for (blob, what) in &known {
                read_back(&c, *blob, *what).await;
            }
            for s in c.uploads_list().await.unwrap() {
                match s.state {
                    SessionState::Open => {
                        c.uploads_abort(s.id).await.unwrap();
                        aborted += 1;
                    }
                    SessionState::Finished { blob_id } if !known.contains_key(&blob_id) => {
                        let (seed, len) = s.name.split_once(':').unwrap();
                        let what = (seed.parse().unwrap(), len.parse().unwrap());
                        read_back(&c, blob_id, what).await;
                        answered.lock().unwrap().insert(blob_id, what);
                        unanswered += 1;
                    }
                    _ => {}
                }
            }
        });
        net.interrupt();
        println!("round {round}: {} blobs verified", answered.lock().unwrap().len());
    }
    let n = answered.lock().unwrap().len();
    println!("{KILLS} kills of serve in {:.1} s: {n} blobs read back, {aborted} open sessions aborted, {unanswered} finished unanswered", t0.elapsed().as_secs_f64());
    assert!(n >= 2 * KILLS as usize, "the uploads got enough done to make the test mean something ({n})");
    assert!(aborted > 0, "some kills hit open sessions");
}
