//! The harness's third backend: the same embedded host behind the IC's HTTPS interface
//! (`ic-net`), called by ic-agent with its default verification, so a scenario also
//! runs over the real protocol: signed envelopes, v4 synchronous calls, certificates
//! under the root key, signed queries, upgrades through the management canister.
//!
//! A scenario's caller principals cannot sign, so each is mapped to an Ed25519 identity
//! derived from it (the anonymous principal stays anonymous); the harness's controller's
//! identity is made a controller of the canister.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use candid::Principal;
use ic_agent::identity::{AnonymousIdentity, BasicIdentity};
use ic_agent::{Agent, AgentError, Identity};
use ic_host::management_types as mgmt;
use sha2::Digest;

use super::{canister_wasm, controller, Backend, Reject};

pub struct Http {
    net: ic_net::Network,
    rt: tokio::runtime::Runtime,
    cid: Principal,
    agents: HashMap<Principal, Agent>,
}

fn identity_of(p: Principal) -> Arc<dyn Identity> {
    if p == Principal::anonymous() {
        return Arc::new(AnonymousIdentity);
    }
    Arc::new(BasicIdentity::from_raw_key(&sha2::Sha256::digest(p.as_slice()).into()))
}

pub fn http() -> Http {
    let mut host = ic_host::Host::in_memory();
    let cid = host.install_default(canister_wasm(), &candid::encode_args(()).unwrap(), ic_host::HostConfig::default()).unwrap();
    let ctl = identity_of(controller()).sender().unwrap();
    host.set_controllers(vec![controller(), ctl]);
    let net = ic_net::Network::start(host, "127.0.0.1:0".parse().unwrap()).expect("start the network");
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    Http { net, rt, cid, agents: HashMap::new() }
}

fn reject(e: AgentError) -> Reject {
    match e {
        AgentError::CertifiedReject { reject, .. } | AgentError::UncertifiedReject { reject, .. } => {
            Reject::new(reject.reject_code as u32, reject.reject_message)
        }
        // Refused by the interface before it reached the host (e.g. 413 past 2 MiB).
        AgentError::HttpError(e) if (400..500).contains(&e.status) => {
            Reject::new(ic_host::reject_code::SYS_FATAL, format!("HTTP {}: {}", e.status, String::from_utf8_lossy(&e.content)))
        }
        e => panic!("the network failed (not a rejection): {e}"),
    }
}

impl Http {
    fn agent(&mut self, caller: Principal) -> Agent {
        let url = self.net.url();
        let rt = &self.rt;
        self.agents
            .entry(caller)
            .or_insert_with(|| {
                let agent = Agent::builder().with_url(url).with_arc_identity(identity_of(caller)).build().unwrap();
                rt.block_on(agent.fetch_root_key()).unwrap();
                agent
            })
            .clone()
    }

    fn host<R: Send + 'static>(&self, f: impl FnOnce(&mut ic_host::Host) -> R + Send + 'static) -> R {
        self.net.exec().with_host(f).unwrap()
    }
}

impl Backend for Http {
    fn name(&self) -> &'static str {
        "http"
    }
    fn update(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject> {
        let agent = self.agent(caller);
        self.rt.block_on(agent.update(&self.cid, method).with_arg(arg).call_and_wait()).map_err(reject)
    }
    fn query(&mut self, caller: Principal, method: &str, arg: Vec<u8>) -> Result<Vec<u8>, Reject> {
        let agent = self.agent(caller);
        self.rt.block_on(agent.query(&self.cid, method).with_arg(arg).call()).map_err(reject)
    }
    fn upgrade(&mut self, wasm: &[u8]) -> Result<(), Reject> {
        let agent = self.agent(controller());
        let args = mgmt::InstallCodeArgs {
            mode: mgmt::CanisterInstallMode::Upgrade(None),
            canister_id: self.cid,
            wasm_module: wasm.to_vec(),
            arg: candid::encode_args(()).unwrap(),
            sender_canister_version: None,
        };
        let call = agent
            .update(&Principal::management_canister(), "install_code")
            .with_effective_canister_id(self.cid)
            .with_arg(candid::encode_one(args).unwrap());
        self.rt.block_on(call.call_and_wait()).map(drop).map_err(reject)
    }
    fn advance_time(&mut self, d: Duration) {
        self.host(move |h| {
            h.advance_time(d);
        });
    }
    fn set_update_limit(&mut self, limit: Option<u64>) -> bool {
        self.host(move |h| h.set_instruction_limit(ic_host::Limit::Update, limit.unwrap_or(40_000_000_000)));
        true
    }
    fn last_instructions(&self) -> Option<u64> {
        let last = self.net.exec().last_call().ok()?;
        last.first().map(|m| m.instructions)
    }
}
