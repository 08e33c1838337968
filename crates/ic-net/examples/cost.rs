//! What the HTTP interface costs per request, beside what the canister spends: the
//! envelope check (CBOR, request id, Ed25519 signature) of a small call and of a
//! 1.8 MB chunk, a call certificate and a read_state certificate (BLS signatures), a
//! query signature (Ed25519); then `uploads_put_chunk` of the backend through the whole
//! stack (ic-agent → HTTP → host) with the canister's own instructions for it.
//!
//!   cargo run --release -p ic-net --example cost -- [backend.wasm] [rounds]
//!
//! (`scripts/bench-net.sh` runs it.)

use std::borrow::Cow;
use std::time::Instant;

use candid::Encode;
use ic_agent::identity::BasicIdentity;
use ic_agent::{Agent, Identity};
use ic_net::envelope::{Kind, Request};
use ic_net::ingress::{Entry, Status};
use ic_net::subnet::{NodeKey, Subnet};
use ic_net::tree::{self, Snapshot};
use ic_transport_types::{Envelope, EnvelopeContent, QueryResponse, ReplyResponse};

fn per_op(label: &str, n: u32, mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("| {label} | {us:.0} µs |");
    us
}

fn envelope(id: &BasicIdentity, arg_len: usize) -> Vec<u8> {
    let content = EnvelopeContent::Call {
        nonce: Some(vec![1; 8]),
        ingress_expiry: ic_net::exec::now_ns() + 60_000_000_000,
        sender: id.sender().unwrap(),
        canister_id: ic_host::DEFAULT_CANISTER_ID,
        method_name: "uploads_put_chunk".into(),
        arg: vec![7; arg_len],
        sender_info: None,
    };
    let sig = id.sign(&content).unwrap();
    Envelope { content: Cow::Owned(content), sender_pubkey: sig.public_key, sender_sig: sig.signature, sender_delegation: None }
        .encode_bytes()
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let wasm = args.get(1).cloned().unwrap_or_else(|| "target/canister/backend.wasm".into());
    let rounds: u32 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let id = BasicIdentity::from_raw_key(&[1; 32]);
    let subnet = Subnet::new(ic_host::certify::SubnetKey::generate(), NodeKey::load_or_create(None)?);
    let now = ic_net::exec::now_ns();

    println!("| per request (this machine) | time |\n| --- | --- |");
    let small = envelope(&id, 100);
    per_op("check a call envelope, 100-byte argument (CBOR, request id, Ed25519)", 200, || {
        let r = Request::parse(&small, Kind::Call).unwrap();
        ic_net::auth::authenticate(&r, Some(ic_host::DEFAULT_CANISTER_ID), now, subnet.root_key_raw()).unwrap();
    });
    let big = envelope(&id, 1_800_000);
    let check_chunk = per_op("check a call envelope, 1.8 MB chunk", rounds, || {
        let r = Request::parse(&big, Kind::Call).unwrap();
        ic_net::auth::authenticate(&r, Some(ic_host::DEFAULT_CANISTER_ID), now, subnet.root_key_raw()).unwrap();
    });
    let status = Status::Replied(vec![0; 64]);
    let cert = per_op("certificate of a call's answer (BLS signature)", 50, || {
        tree::call_certificate(&subnet, &[3; 32], &status, now);
    });
    let snap = Snapshot {
        time: now,
        canister: None,
        request: Some(([3; 32], Entry { sender: id.sender().unwrap(), effective: ic_host::DEFAULT_CANISTER_ID, expiry: now, status })),
    };
    let paths = vec![vec![b"request_status".to_vec(), vec![3; 32]]];
    per_op("read_state certificate of a request status", 50, || {
        tree::read_state_certificate(&subnet, &paths, &snap);
    });
    let resp = QueryResponse::Replied { reply: ReplyResponse { arg: vec![0; 1_800_000] }, signatures: vec![] };
    per_op("node signature of a 1.8 MB query response", rounds, || {
        tree::sign_query(&subnet, &resp, &[4; 32], now);
    });

    // The backend through the whole stack.
    let wasm = std::fs::read(&wasm).map_err(|e| anyhow::anyhow!("{wasm}: {e} (run scripts/build.sh)"))?;
    let mut host = ic_host::Host::in_memory();
    let cid = host.install_default(&wasm, &candid::encode_args(())?, ic_host::HostConfig::default())?;
    let net = ic_net::Network::start(host, "127.0.0.1:0".parse()?)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let chunk = 1_800_000usize;
    let (wall, instr) = rt.block_on(async {
        let agent = Agent::builder().with_url(net.url()).with_identity(BasicIdentity::from_raw_key(&[1; 32])).build()?;
        agent.fetch_root_key().await?;
        let call = |m: &'static str, a: Vec<u8>| {
            let agent = agent.clone();
            async move { agent.update(&cid, m).with_arg(a).call_and_wait().await }
        };
        let cap = call("capsules_create", Encode!(&backend_args::Capsule { name: "bench".into() })?).await?;
        let cap_id = backend_args::ok_id(&cap)?;
        let begin = backend_args::begin(cap_id, (chunk as u64) * u64::from(rounds));
        let s = call("uploads_begin", begin).await?;
        let sid = backend_args::ok_id(&s)?;
        let bytes = serde_bytes::ByteBuf::from(vec![9u8; chunk]);
        let mut wall = 0.0;
        let mut instr = 0u64;
        for i in 0..rounds {
            let t = Instant::now();
            call("uploads_put_chunk", Encode!(&sid, &i, &bytes)?).await?;
            wall += t.elapsed().as_secs_f64();
            let exec = net.exec().clone();
            instr += tokio::task::spawn_blocking(move || exec.last_call()).await??.iter().map(|m| m.instructions).sum::<u64>();
        }
        anyhow::Ok((wall / f64::from(rounds), instr / u64::from(rounds)))
    })?;
    println!("| `uploads_put_chunk` of 1.8 MB through ic-agent → HTTP → host, wall | {:.0} µs |", wall * 1e6);
    println!(
        "\nThe canister spends {:.1} M instructions on that chunk (~{:.0} ms at the IC's ~2 B instructions/s); the \
         interface's own checks ({:.0} µs) and certificate ({:.0} µs) are {:.1}% of the wall time.",
        instr as f64 / 1e6,
        instr as f64 / 2e9 * 1e3,
        check_chunk,
        cert,
        (check_chunk + cert) / (wall * 1e6) * 100.0
    );
    net.shutdown()
}

/// The few backend types this example sends (Candid by field name, as backend.did has them).
mod backend_args {
    use candid::{CandidType, Deserialize};

    #[derive(CandidType)]
    pub struct Capsule {
        pub name: String,
    }

    #[derive(CandidType)]
    struct BeginArgs {
        sha256: Option<serde_bytes::ByteBuf>,
        capsule_id: u64,
        mime: String,
        name: String,
        pmid: Option<String>,
        size: u64,
        chunk_size: Option<u32>,
        idempotency_key: Option<String>,
    }

    pub fn begin(capsule_id: u64, size: u64) -> Vec<u8> {
        let a = BeginArgs {
            sha256: None,
            capsule_id,
            mime: "application/octet-stream".into(),
            name: "bench.bin".into(),
            pmid: None,
            size,
            chunk_size: None,
            idempotency_key: None,
        };
        candid::encode_one(a).unwrap()
    }

    #[derive(Deserialize, CandidType)]
    struct WithId {
        id: u64,
    }

    #[derive(Deserialize, CandidType)]
    enum Res {
        Ok(WithId),
        Err(candid::Reserved),
    }

    /// The `id` of an `Ok` record reply.
    pub fn ok_id(reply: &[u8]) -> anyhow::Result<u64> {
        match candid::decode_one::<Res>(reply)? {
            Res::Ok(r) => Ok(r.id),
            Res::Err(_) => anyhow::bail!("the canister refused"),
        }
    }
}
