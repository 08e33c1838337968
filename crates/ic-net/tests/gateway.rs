//! The HTTP gateway in front of a canister that does not certify its answers: the
//! gateway (DFINITY's verification, under the network's root key) must refuse them, in
//! every URL form a browser uses. The keepsake canister's certified answers, ranges and
//! private links through the same gateway are tested in crates/keepsake/tests/gateway.rs.

use candid::CandidType;
use ic_host::{Host, HostConfig};
use ic_net::Network;

#[derive(CandidType)]
struct HttpResponse {
    status_code: u16,
    headers: Vec<(String, String)>,
    body: serde_bytes::ByteBuf,
    upgrade: Option<bool>,
}

/// A canister whose `http_request` answers 200 "forged" with no certificate.
fn uncertified() -> Vec<u8> {
    let reply = candid::encode_one(HttpResponse {
        status_code: 200,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: serde_bytes::ByteBuf::from(b"forged".to_vec()),
        upgrade: None,
    })
    .unwrap();
    let data: String = reply.iter().map(|b| format!("\\{b:02x}")).collect();
    wat::parse_str(format!(
        r#"(module
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (memory 1)
  (data (i32.const 0) "{data}")
  (func (export "canister_query http_request") (call $append (i32.const 0) (i32.const {})) (call $reply)))"#,
        reply.len()
    ))
    .unwrap()
}

fn client(net: &Network, host: &str) -> reqwest::Client {
    let addr = net.url().trim_start_matches("http://").parse().unwrap();
    reqwest::Client::builder().resolve(host, addr).build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_answers_that_do_not_verify() {
    let mut host = Host::in_memory();
    let cid = host.install_default(&uncertified(), &[], HostConfig::default()).unwrap();
    let net = Network::start(host, "127.0.0.1:0".parse().unwrap()).unwrap();
    let port = net.url().rsplit(':').next().unwrap().to_string();
    let name = format!("{cid}.localhost");
    let http = client(&net, &name);

    // The canister answers 200 "forged": the gateway hands out a 500, never those bytes.
    for url in [format!("http://{name}:{port}/photo.jpg"), format!("{}/photo.jpg?canisterId={cid}", net.url())] {
        let r = http.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 500, "{url}");
        let body = r.text().await.unwrap();
        assert!(body.contains("verification failed") && !body.contains("forged"), "{url}: {body}");
    }
    // The same query by hand shows that the canister did answer "forged".
    let agent = ic_agent::Agent::builder().with_url(net.url()).build().unwrap();
    agent.fetch_root_key().await.unwrap();
    let arg = candid::encode_args(("GET", "/photo.jpg", Vec::<(String, String)>::new(), Vec::<u8>::new())).unwrap();
    let raw = agent.query(&cid, "http_request").with_arg(arg).call().await.unwrap();
    assert!(raw.windows(6).any(|w| w == b"forged"));

    // A canister of the subnet that does not exist is a 404; the interface stays the interface.
    let none = ic_host::canister_id_of(7);
    assert_ne!(none, cid);
    let r = http.get(format!("{}/x?canisterId={none}", net.url())).send().await.unwrap();
    assert_eq!(r.status(), 404, "{}", r.text().await.unwrap());
    let r = http.get(format!("http://{name}:{port}/api/v2/status")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/cbor");
    net.shutdown().unwrap();
}
