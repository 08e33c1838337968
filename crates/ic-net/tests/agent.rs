//! The front with a client nobody here wrote: ic-agent, with its default verification
//! (root key fetched from `/api/v2/status`, certificates checked under it, query
//! signatures checked under the node key read from the state tree). Plus the
//! refusals of the interface, sent as raw HTTP with envelopes ic-agent's types sign.

use std::borrow::Cow;
use std::time::Duration;

use candid::Principal;
use ic_agent::agent::{RejectCode, RequestStatusResponse};
use ic_agent::identity::{AnonymousIdentity, BasicIdentity, Prime256v1Identity, Secp256k1Identity};
use ic_agent::{Agent, AgentError, Identity};
use ic_host::{Host, HostConfig};
use ic_net::Network;
use ic_transport_types::{to_request_id, Envelope, EnvelopeContent};

const CANISTER: &str = r#"(module
  (import "ic0" "msg_caller_size" (func $caller_size (result i32)))
  (import "ic0" "msg_caller_copy" (func $caller_copy (param i32 i32 i32)))
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (memory 64)
  (func (export "canister_update whoami")
    (call $caller_copy (i32.const 100) (i32.const 0) (call $caller_size))
    (call $append (i32.const 100) (call $caller_size)) (call $reply))
  (func (export "canister_update bump")
    (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
    (call $append (i32.const 0) (i32.const 4)) (call $reply))
  (func (export "canister_query count") (call $append (i32.const 0) (i32.const 4)) (call $reply))
  (func (export "canister_update echo")
    (call $arg_copy (i32.const 1000) (i32.const 0) (call $arg_size))
    (call $append (i32.const 1000) (call $arg_size)) (call $reply))
  (func (export "canister_update boom") (call $trap (i32.const 0) (i32.const 0)))
  (@custom "icp:public candid:service" "service : { bump : () -> () }")
)"#;

fn start() -> (Network, Principal) {
    let wasm = wat::parse_str(CANISTER).unwrap();
    let mut host = Host::in_memory();
    let cid = host.install_default(&wasm, &[], HostConfig::default()).unwrap();
    let net = Network::start(host, "127.0.0.1:0".parse().unwrap()).unwrap();
    (net, cid)
}

async fn agent(net: &Network, id: impl Identity + 'static) -> Agent {
    let agent = Agent::builder().with_url(net.url()).with_identity(id).build().unwrap();
    agent.fetch_root_key().await.unwrap();
    agent
}

async fn count(agent: &Agent, cid: Principal) -> u32 {
    let r = agent.query(&cid, "count").with_arg(vec![]).call().await.unwrap();
    u32::from_le_bytes(r[..4].try_into().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ic_agent_calls_queries_and_reads_state_with_every_key_type() {
    let (net, cid) = start();
    let ids: Vec<Box<dyn Identity>> = vec![
        Box::new(BasicIdentity::from_raw_key(&[7; 32])),
        Box::new(Secp256k1Identity::from_private_key(k256::SecretKey::from_slice(&[8; 32]).unwrap())),
        Box::new(Prime256v1Identity::from_private_key(p256::SecretKey::from_slice(&[9; 32]).unwrap())),
        Box::new(AnonymousIdentity),
    ];
    for (i, id) in ids.into_iter().enumerate() {
        let me = id.sender().unwrap();
        let agent = Agent::builder().with_url(net.url()).with_arc_identity(id.into()).build().unwrap();
        agent.fetch_root_key().await.unwrap();
        assert_eq!(agent.read_root_key(), net.root_key());
        // The caller is the principal of the key that signed (v4 synchronous call).
        let who = agent.update(&cid, "whoami").with_arg(vec![]).call_and_wait().await.unwrap();
        assert_eq!(Principal::from_slice(&who), me);
        let n = agent.update(&cid, "bump").with_arg(vec![]).call_and_wait().await.unwrap();
        assert_eq!(u32::from_le_bytes(n[..4].try_into().unwrap()), i as u32 + 1);
        // Query, its node signature verified by ic-agent (the default).
        assert_eq!(count(&agent, cid).await, i as u32 + 1);
    }
    let agent = agent(&net, AnonymousIdentity).await;
    let hash = agent.read_state_canister_info(cid, "module_hash").await.unwrap();
    let wasm = wat::parse_str(CANISTER).unwrap();
    assert_eq!(hash, <sha2::Sha256 as sha2::Digest>::digest(&wasm).to_vec());
    let controllers = agent.read_state_canister_controllers(cid).await.unwrap();
    assert_eq!(controllers, vec![ic_host::DEFAULT_CONTROLLER]);
    let did = agent.read_state_canister_metadata(cid, "candid:service").await.unwrap();
    assert_eq!(did, b"service : { bump : () -> () }");
    // A trap is a certified reject (code 5), and nothing of it stays.
    match agent.update(&cid, "boom").with_arg(vec![]).call_and_wait().await {
        Err(AgentError::CertifiedReject { reject, .. }) => {
            assert_eq!(reject.reject_code, RejectCode::CanisterError);
            // The certified request status carries the specification's error code too.
            assert_eq!(reject.error_code.as_deref(), Some("IC0503"), "{reject:?}");
        }
        other => panic!("{other:?}"),
    }
    // A subnet read_state: its public key is the root key (no delegation).
    let subnet = agent.fetch_subnet_by_id(&net.subnet().id).await.unwrap();
    assert!(subnet.contains_canister(&cid));
    net.shutdown().unwrap();
}

/// Signs `content` as ic-agent would and encodes the envelope.
fn envelope(id: &dyn Identity, content: EnvelopeContent) -> Vec<u8> {
    let sig = id.sign(&content).unwrap();
    Envelope { content: Cow::Owned(content), sender_pubkey: sig.public_key, sender_sig: sig.signature, sender_delegation: sig.delegations }
        .encode_bytes()
}

fn call_content(id: &dyn Identity, cid: Principal, method: &str, expiry: u64) -> EnvelopeContent {
    EnvelopeContent::Call {
        nonce: None,
        ingress_expiry: expiry,
        sender: id.sender().unwrap(),
        canister_id: cid,
        method_name: method.into(),
        arg: vec![],
        sender_info: None,
    }
}

fn in_a_minute() -> u64 {
    ic_net::exec::now_ns() + 60_000_000_000
}

async fn post(net: &Network, path: String, body: Vec<u8>) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new().post(format!("{}{path}", net.url())).header("content-type", "application/cbor").body(body).send().await.unwrap();
    (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_async_call_is_polled_and_a_replayed_request_runs_once() {
    let (net, cid) = start();
    let id = BasicIdentity::from_raw_key(&[3; 32]);
    let agent = agent(&net, BasicIdentity::from_raw_key(&[3; 32])).await;
    let content = call_content(&id, cid, "bump", in_a_minute());
    let request_id = to_request_id(&content).unwrap();
    let body = envelope(&id, content);
    let url = format!("/api/v2/canister/{cid}/call");
    assert_eq!(post(&net, url.clone(), body.clone()).await.0, 202);
    // The same request again, on every call endpoint: accepted, never run again.
    assert_eq!(post(&net, url, body.clone()).await.0, 202);
    let (status, _) = post(&net, format!("/api/v3/canister/{cid}/call"), body.clone()).await;
    assert_eq!(status, 200);
    // Polled with read_state, certificate verified by ic-agent.
    let mut reply = None;
    for _ in 0..50 {
        match agent.request_status_raw(&request_id, cid).await.unwrap().0 {
            RequestStatusResponse::Replied(r) => {
                reply = Some(r.arg);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert_eq!(reply.unwrap(), 1u32.to_le_bytes());
    assert_eq!(count(&agent, cid).await, 1, "a replayed request executed again");
    // Another sender may not read this request's status.
    let other = self::agent(&net, BasicIdentity::from_raw_key(&[4; 32])).await;
    match other.request_status_raw(&request_id, cid).await {
        Err(AgentError::HttpError(e)) => assert_eq!(e.status, 403),
        r => panic!("{r:?}"),
    }
    net.shutdown().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_execute_nothing() {
    let (net, cid) = start();
    let id = BasicIdentity::from_raw_key(&[5; 32]);
    let agent = agent(&net, BasicIdentity::from_raw_key(&[5; 32])).await;
    let sync = format!("/api/v3/canister/{cid}/call");

    // A bad signature: the envelope's signature is over another request.
    let good: Envelope = serde_cbor::from_slice(&envelope(&id, call_content(&id, cid, "bump", in_a_minute()))).unwrap();
    let other = call_content(&id, cid, "bump", in_a_minute() + 1);
    let forged = Envelope { content: Cow::Owned(other), ..good }.encode_bytes();
    let (status, body) = post(&net, sync.clone(), forged).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("Failed to authenticate"));

    // Another key's signature under this sender.
    let mallory = BasicIdentity::from_raw_key(&[6; 32]);
    let content = call_content(&id, cid, "bump", in_a_minute());
    let sig = mallory.sign(&content).unwrap();
    let env = Envelope { content: Cow::Owned(content), sender_pubkey: sig.public_key, sender_sig: sig.signature, sender_delegation: None };
    assert_eq!(post(&net, sync.clone(), env.encode_bytes()).await.0, 400);

    // Expired, and too far in the future.
    let expired = envelope(&id, call_content(&id, cid, "bump", ic_net::exec::now_ns() - 1_000_000_000));
    let (status, body) = post(&net, sync.clone(), expired).await;
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("Invalid request expiry"));
    let later = envelope(&id, call_content(&id, cid, "bump", ic_net::exec::now_ns() + 3_600_000_000_000));
    assert_eq!(post(&net, sync.clone(), later).await.0, 400);

    // Over 2 MiB: refused before it is parsed.
    let big = EnvelopeContent::Call {
        nonce: None,
        ingress_expiry: in_a_minute(),
        sender: id.sender().unwrap(),
        canister_id: cid,
        method_name: "echo".into(),
        arg: vec![7; 2 * 1024 * 1024],
        sender_info: None,
    };
    assert_eq!(post(&net, sync.clone(), envelope(&id, big)).await.0, 413);
    // Just under the limit is taken (ic-agent sends it: a request a client makes).
    let fits = vec![7; 2 * 1024 * 1024 - 1024];
    let echoed = agent.update(&cid, "echo").with_arg(fits.clone()).call_and_wait().await.unwrap();
    assert!(echoed == fits, "the argument came back changed");

    // A missing method, a missing canister: non-replicated rejections, code 3.
    match agent.update(&cid, "nope").with_arg(vec![]).call_and_wait().await {
        Err(AgentError::UncertifiedReject { reject, .. }) => {
            assert_eq!(reject.reject_code, RejectCode::DestinationInvalid, "{reject:?}");
            assert_eq!(reject.error_code.as_deref(), Some("IC0536"), "{reject:?}");
        }
        r => panic!("{r:?}"),
    }
    let missing = ic_host::canister_id_of(77);
    match agent.update(&missing, "bump").with_arg(vec![]).call_and_wait().await {
        Err(AgentError::UncertifiedReject { reject, .. }) => {
            assert_eq!(reject.reject_code, RejectCode::DestinationInvalid);
            assert_eq!(reject.error_code.as_deref(), Some("IC0301"), "{reject:?}");
        }
        r => panic!("{r:?}"),
    }
    match agent.query(&cid, "nope").with_arg(vec![]).call().await {
        Err(AgentError::UncertifiedReject { reject, .. }) => {
            assert_eq!(reject.reject_code, RejectCode::DestinationInvalid);
            assert_eq!(reject.error_code.as_deref(), Some("IC0536"), "{reject:?}");
        }
        r => panic!("{r:?}"),
    }
    // A canister id outside the subnet's ranges.
    let outside = Principal::from_slice(&[0xff; 10]);
    assert!(matches!(agent.update(&outside, "bump").with_arg(vec![]).call_and_wait().await, Err(AgentError::HttpError(_))));

    assert_eq!(count(&agent, cid).await, 0, "a refused request executed");
    net.shutdown().unwrap();
}

/// Fires once when due: counts in memory word 4 (a query reads it).
const TIMER_CANISTER: &str = r#"(module
  (import "ic0" "global_timer_set" (func $timer_set (param i64) (result i64)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory 1)
  (func (export "canister_init") (drop (call $timer_set (i64.const 1))))
  (func (export "canister_global_timer") (i32.store (i32.const 4) (i32.add (i32.load (i32.const 4)) (i32.const 1))))
  (func (export "canister_query fired") (call $append (i32.const 4) (i32.const 4)) (call $reply))
)"#;

/// Tools create and install canisters through the management canister, with the
/// specification's effective canister id rules; the network runs timers as time passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_canister_creates_installs_and_timers_fire() {
    use ic_host::management_types as mgmt;
    let (net, cid) = start();
    let me = BasicIdentity::from_raw_key(&[21; 32]);
    let my_principal = me.sender().unwrap();
    let agent = agent(&net, me).await;
    let mgmt_id = Principal::management_canister();
    // Any id of the subnet's range is the effective id of a provisional create.
    let arg = candid::encode_one(mgmt::ProvisionalCreateCanisterWithCyclesArgs::default()).unwrap();
    let out = agent.update(&mgmt_id, "provisional_create_canister_with_cycles").with_effective_canister_id(cid).with_arg(arg).call_and_wait().await.unwrap();
    let new_id = candid::decode_one::<mgmt::CanisterIdRecord>(&out).unwrap().canister_id;
    assert_ne!(new_id, cid);
    assert_eq!(agent.read_state_canister_controllers(new_id).await.unwrap(), vec![my_principal]);
    let install = mgmt::InstallCodeArgs {
        mode: mgmt::CanisterInstallMode::Install,
        canister_id: new_id,
        wasm_module: wat::parse_str(TIMER_CANISTER).unwrap(),
        arg: vec![],
        sender_canister_version: None,
    };
    let arg = candid::encode_one(&install).unwrap();
    // The effective id must be the canister acted on.
    match agent.update(&mgmt_id, "install_code").with_effective_canister_id(cid).with_arg(arg.clone()).call_and_wait().await {
        Err(AgentError::HttpError(e)) => assert_eq!(e.status, 400),
        r => panic!("{r:?}"),
    }
    agent.update(&mgmt_id, "install_code").with_effective_canister_id(new_id).with_arg(arg).call_and_wait().await.unwrap();
    // Someone else is not a controller: refused by the management canister.
    let other = self::agent(&net, BasicIdentity::from_raw_key(&[22; 32])).await;
    let status = candid::encode_one(mgmt::CanisterIdRecord { canister_id: new_id }).unwrap();
    assert!(other.update(&mgmt_id, "stop_canister").with_effective_canister_id(new_id).with_arg(status).call_and_wait().await.is_err());
    // The timer set in init fires without any call (the host thread ticks).
    let mut fired = 0;
    for _ in 0..50 {
        let r = agent.query(&new_id, "fired").with_arg(vec![]).call().await.unwrap();
        fired = u32::from_le_bytes(r[..4].try_into().unwrap());
        if fired > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(fired, 1);
    net.shutdown().unwrap();
}
