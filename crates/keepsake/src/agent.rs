//! A replica or mainnet through ic-agent: `--network URL --canister ID --identity PEM`.

use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, Context};
use candid::Principal;
use futures::future::LocalBoxFuture;
use ic_agent::agent::RejectCode;
use ic_agent::identity::{AnonymousIdentity, BasicIdentity, Secp256k1Identity};
use ic_agent::{Agent, AgentError, Identity};
use url::Url;

use crate::transport::{CallKind, Request, Transport, TransportError};

/// The mainnet boundary node URL.
pub const MAINNET_URL: &str = "https://icp-api.io";

/// True for a local replica (whose root key must be fetched). Never for mainnet: there the
/// hard-coded root key is the trust anchor, and fetching it would defeat verification.
pub fn needs_root_key(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost")
        }
        None => false,
    }
}

/// Parses a canister id in textual form (`rrkah-fqaaa-aaaaa-aaaaq-cai`), with a clear message.
pub fn parse_canister_id(s: &str) -> anyhow::Result<Principal> {
    let p =
        Principal::from_text(s.trim()).map_err(|e| anyhow!("invalid canister id '{s}': {e}"))?;
    if p == Principal::anonymous() || p == Principal::management_canister() {
        anyhow::bail!("invalid canister id '{s}': not a canister");
    }
    Ok(p)
}

/// Parses a network URL (`local` is a shorthand for `http://127.0.0.1:4943`, `ic` for mainnet).
pub fn parse_network(s: &str) -> anyhow::Result<Url> {
    let s = match s {
        "local" => "http://127.0.0.1:4943",
        "ic" | "mainnet" => MAINNET_URL,
        other => other,
    };
    let url = Url::parse(s).with_context(|| format!("invalid network URL '{s}'"))?;
    if !matches!(url.scheme(), "http" | "https") {
        anyhow::bail!("invalid network URL '{s}': use http:// or https://");
    }
    Ok(url)
}

/// Loads a PEM identity: Ed25519 (`dfx identity new`), else secp256k1.
pub fn load_identity(path: &Path) -> anyhow::Result<Box<dyn Identity>> {
    let pem =
        std::fs::read(path).with_context(|| format!("reading identity {}", path.display()))?;
    if let Ok(id) = BasicIdentity::from_pem(&pem[..]) {
        return Ok(Box::new(id));
    }
    match Secp256k1Identity::from_pem(&pem[..]) {
        Ok(id) => Ok(Box::new(id)),
        Err(e) => Err(anyhow!(
            "{}: not an Ed25519 or secp256k1 PEM identity ({e})",
            path.display()
        )),
    }
}

/// Maps an ic-agent error: transport trouble and `SYS_TRANSIENT` rejects are transient;
/// everything else (traps, unknown methods, bad destination) is not worth a retry.
pub fn classify(e: AgentError) -> TransportError {
    match e {
        AgentError::CertifiedReject { reject, .. }
        | AgentError::UncertifiedReject { reject, .. } => {
            // A stopped or stopping canister (an upgrade, say) runs again soon.
            let stopped = matches!(reject.error_code.as_deref(), Some("IC0508" | "IC0509"));
            if reject.reject_code == RejectCode::SysTransient || stopped {
                TransportError::Transient(reject.reject_message)
            } else {
                TransportError::Fatal {
                    code: Some(reject.reject_code as u32),
                    message: reject.reject_message,
                }
            }
        }
        AgentError::TimeoutWaitingForResponse() | AgentError::TransportError(_) => {
            TransportError::Transient(e.to_string())
        }
        AgentError::HttpError(ref p) if p.status == 429 || p.status >= 500 => {
            TransportError::Transient(e.to_string())
        }
        other => TransportError::Fatal {
            code: None,
            message: other.to_string(),
        },
    }
}

pub struct AgentTransport {
    agent: Agent,
    canister: Principal,
    caller: Principal,
    url: Url,
}

/// An agent for `url` as `identity` (anonymous without one); fetches the root key only
/// for a local replica. Returns it with its principal.
pub async fn build_agent(url: &Url, identity: Option<&Path>) -> anyhow::Result<(Agent, Principal)> {
    let identity: Arc<dyn Identity> = match identity {
        Some(p) => Arc::from(load_identity(p)?),
        None => Arc::new(AnonymousIdentity),
    };
    let caller = identity.sender().map_err(|e| anyhow!("identity: {e}"))?;
    let agent = Agent::builder()
        .with_url(url.as_str())
        .with_arc_identity(identity)
        .build()
        .with_context(|| format!("building an agent for {url}"))?;
    if needs_root_key(url) {
        agent
            .fetch_root_key()
            .await
            .with_context(|| format!("fetching the root key of the local replica at {url}"))?;
    }
    Ok((agent, caller))
}

impl AgentTransport {
    /// Builds the agent (see [`build_agent`]).
    pub async fn connect(
        url: Url,
        canister: Principal,
        identity: Option<&Path>,
    ) -> anyhow::Result<Self> {
        let (agent, caller) = build_agent(&url, identity).await?;
        Ok(Self {
            agent,
            canister,
            caller,
            url,
        })
    }
}

impl Transport for AgentTransport {
    fn call(&self, req: Request) -> LocalBoxFuture<'_, Result<Vec<u8>, TransportError>> {
        Box::pin(async move {
            let r = match req.kind {
                CallKind::Query => {
                    self.agent
                        .query(&self.canister, req.method)
                        .with_arg(req.arg)
                        .call()
                        .await
                }
                CallKind::Update => {
                    self.agent
                        .update(&self.canister, req.method)
                        .with_arg(req.arg)
                        .call_and_wait()
                        .await
                }
            };
            r.map_err(classify)
        })
    }
    fn caller(&self) -> Principal {
        self.caller
    }
    fn target(&self) -> String {
        format!("{}@{}", self.canister, self.url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_key_is_fetched_only_for_local_urls() {
        for local in [
            "http://127.0.0.1:4943",
            "http://localhost:8080",
            "http://[::1]:4943",
            "http://0.0.0.0:4943",
            "http://foo.localhost:4943",
        ] {
            assert!(needs_root_key(&Url::parse(local).unwrap()), "{local}");
        }
        for remote in [
            "https://icp-api.io",
            "https://ic0.app",
            "https://localhost.example.com",
            "http://10.0.0.5:4943",
        ] {
            assert!(!needs_root_key(&Url::parse(remote).unwrap()), "{remote}");
        }
        assert!(needs_root_key(&parse_network("local").unwrap()));
        assert!(!needs_root_key(&parse_network("ic").unwrap()));
    }

    #[test]
    fn canister_ids_parse_or_explain() {
        let p = parse_canister_id("rrkah-fqaaa-aaaaa-aaaaq-cai").unwrap();
        assert_eq!(p, ic_host::DEFAULT_CANISTER_ID);
        assert_eq!(
            parse_canister_id(" ryjl3-tyaaa-aaaaa-aaaba-cai ")
                .unwrap()
                .to_text(),
            "ryjl3-tyaaa-aaaaa-aaaba-cai"
        );
        for bad in [
            "",
            "not-a-principal",
            "rrkah-fqaaa-aaaaa-aaaaq-caj",
            "2vxsx-fae",
            "aaaaa-aa",
        ] {
            let e = parse_canister_id(bad).unwrap_err().to_string();
            assert!(e.contains("invalid canister id"), "{bad}: {e}");
        }
        assert!(parse_network("ftp://x").is_err());
        assert!(parse_network("not a url").is_err());
    }

    #[test]
    fn rejects_are_classified() {
        use ic_agent::agent::RejectResponse;
        let rej = |code| AgentError::UncertifiedReject {
            reject: RejectResponse {
                reject_code: code,
                reject_message: "m".into(),
                error_code: None,
            },
            operation: None,
        };
        assert!(classify(rej(RejectCode::SysTransient)).is_transient());
        assert_eq!(
            classify(rej(RejectCode::CanisterError)),
            TransportError::Fatal {
                code: Some(5),
                message: "m".into()
            }
        );
        assert!(!classify(rej(RejectCode::DestinationInvalid)).is_transient());
        // A stopped or stopping canister (IC0508/IC0509, e.g. mid-upgrade) is retried;
        // other canister errors are not.
        let stopped = |code: &str| AgentError::CertifiedReject {
            reject: RejectResponse { reject_code: RejectCode::CanisterError, reject_message: "m".into(), error_code: Some(code.into()) },
            operation: None,
        };
        assert!(classify(stopped("IC0508")).is_transient());
        assert!(classify(stopped("IC0509")).is_transient());
        assert!(!classify(stopped("IC0503")).is_transient());
        assert!(classify(AgentError::TimeoutWaitingForResponse()).is_transient());
        assert!(!classify(AgentError::MessageError("x".into())).is_transient());
    }

    #[test]
    fn pem_identities_load() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("identity.pem");
        crate::identity::write_new_ed25519_pem(&p).unwrap();
        let id = load_identity(&p).unwrap();
        let sender = id.sender().unwrap();
        assert_eq!(
            sender,
            crate::identity::load_or_create(dir.path())
                .unwrap()
                .sender()
                .unwrap()
        );
        std::fs::write(&p, "garbage").unwrap();
        assert!(load_identity(&p).is_err());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn connecting_to_mainnet_does_not_fetch_the_root_key() {
        // No network is needed: building the agent for a non-local URL makes no request.
        let t = AgentTransport::connect(
            parse_network("ic").unwrap(),
            ic_host::DEFAULT_CANISTER_ID,
            None,
        )
        .await
        .unwrap();
        assert_eq!(t.caller(), Principal::anonymous());
        assert!(t
            .target()
            .starts_with("rrkah-fqaaa-aaaaa-aaaaq-cai@https://icp-api.io"));
    }
}
