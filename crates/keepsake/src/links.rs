//! Sharing over HTTP: an expiring link to one asset, public memories, and revoking a
//! capsule's links, as thin calls of the canister's own methods (its rules decide who
//! may). [`canister_http_origin`] and [`url_at`] are the one place that turns a path the
//! canister serves into the URL a browser opens through an HTTP gateway.

use std::time::{Duration, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use backend::api::AssetKind;
use backend::domain::http_cert::{kind_label, memory_path};
use backend::domain::links::{MAX_LINK_TTL_SECS, MIN_LINK_TTL_SECS};
use candid::Principal;
use serde::Serialize;
use url::Url;

use crate::client::{Client, ClientResult};

/// Where mainnet's HTTP gateways serve canisters: `https://<canister-id>.icp0.io`.
pub const MAINNET_HTTP_DOMAIN: &str = "icp0.io";

/// Hosts of mainnet's API (what `--network ic` and friends name).
const MAINNET_API_HOSTS: [&str; 3] = ["icp-api.io", "ic0.app", "icp0.io"];

/// The origin at which a browser reaches `canister`'s `http_request` through the HTTP
/// gateway of `network` (the API URL given to `--network`), in the canister-id
/// subdomain form gateways route by:
/// - a local network (loopback or `localhost`): `http://<id>.localhost:<port>`;
/// - mainnet (`icp-api.io`, `ic0.app`, `icp0.io`): `https://<id>.icp0.io`;
/// - any other host: `<scheme>://<id>.<host>[:<port>]`.
pub fn canister_http_origin(network: &Url, canister: Principal) -> Url {
    let host = network
        .host_str()
        .unwrap_or("localhost")
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let is_mainnet = MAINNET_API_HOSTS
        .iter()
        .any(|h| host == *h || host.ends_with(&format!(".{h}")));
    let port = network.port().map(|p| format!(":{p}")).unwrap_or_default();
    let origin = if is_mainnet {
        format!("https://{canister}.{MAINNET_HTTP_DOMAIN}")
    } else if crate::agent::needs_root_key(network) {
        format!("{}://{canister}.localhost{port}", network.scheme())
    } else {
        format!("{}://{canister}.{host}{port}", network.scheme())
    };
    Url::parse(&origin).expect("a canister id and a parsed host make a valid URL")
}

/// `path` (as the canister names it: `/m/…`, with any query) under `origin` (which may
/// carry a path prefix of its own).
pub fn url_at(origin: &Url, path: &str) -> String {
    format!("{}{path}", origin.as_str().trim_end_matches('/'))
}

/// Parses a gateway base URL (`--gateway`): http(s) only.
pub fn parse_gateway(s: &str) -> anyhow::Result<Url> {
    let url = Url::parse(s.trim()).map_err(|e| anyhow!("invalid gateway URL '{s}': {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        bail!("invalid gateway URL '{s}': use http(s)://host[:port]");
    }
    Ok(url)
}

/// Parses a link lifetime: `90s`, `30m`, `12h`, `7d`, `1h 30m`, or plain seconds;
/// from one minute to 30 days (what the canister accepts).
pub fn parse_ttl(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let d = match s.parse::<u64>() {
        Ok(secs) => Duration::from_secs(secs),
        Err(_) => humantime::parse_duration(s)
            .map_err(|e| anyhow!("invalid duration '{s}' ({e}); e.g. 90s, 30m, 12h, 7d"))?,
    };
    if !(MIN_LINK_TTL_SECS..=MAX_LINK_TTL_SECS).contains(&d.as_secs()) {
        bail!("a link lives from 1 minute to 30 days, not '{s}'");
    }
    Ok(d)
}

/// An RFC 3339 time (UTC, seconds) from nanoseconds since the epoch.
pub fn rfc3339(ns: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

/// An expiring link to one asset.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LinkReport {
    pub memory_id: u64,
    /// `original`, `thumbnail`, … (as in the path).
    pub asset: String,
    /// `/m/<memory>/<kind>?token=…`, what the canister serves.
    pub path: String,
    /// The full URL, when the gateway is known (`--network` or `--gateway`).
    pub url: Option<String>,
    pub token: String,
    pub expires_at_ns: u64,
    pub expires_at: String,
}

/// Mints a link to `memory`'s `kind` asset, valid for `ttl` (any reader of its capsule).
pub async fn create(
    client: &Client,
    origin: Option<&Url>,
    memory: u64,
    kind: AssetKind,
    ttl: Duration,
) -> ClientResult<LinkReport> {
    let l = client.links_create(memory, kind, ttl.as_secs()).await?;
    Ok(LinkReport {
        memory_id: memory,
        asset: kind_label(kind).to_string(),
        url: origin.map(|o| url_at(o, &l.path)),
        path: l.path,
        token: l.token,
        expires_at_ns: l.expires_at_ns,
        expires_at: rfc3339(l.expires_at_ns),
    })
}

/// One asset's address (no token: it works for anyone while the memory is public).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AssetAddress {
    pub asset: String,
    pub path: String,
    pub url: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PublicReport {
    pub memory_id: u64,
    pub public: bool,
    /// Every asset of the memory.
    pub assets: Vec<AssetAddress>,
}

/// Makes `memory` public (its URLs answer anyone) or private again (owners).
pub async fn set_public(
    client: &Client,
    origin: Option<&Url>,
    memory: u64,
    public: bool,
) -> ClientResult<PublicReport> {
    client.memories_set_public(memory, public).await?;
    let m = client.memories_get(memory).await?;
    let assets = m
        .assets
        .iter()
        .map(|a| {
            let path = memory_path(memory, a.kind);
            AssetAddress {
                asset: kind_label(a.kind).to_string(),
                url: origin.map(|o| url_at(o, &path)),
                path,
            }
        })
        .collect();
    Ok(PublicReport {
        memory_id: memory,
        public,
        assets,
    })
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RotateReport {
    pub capsule_id: u64,
    /// The capsule's new link key version: links minted before it answer 403.
    pub key_version: u32,
}

/// Revokes every link of `capsule` (owners).
pub async fn rotate_link_key(client: &Client, capsule: u64) -> ClientResult<RotateReport> {
    let key_version = client.capsules_rotate_link_key(capsule).await?;
    Ok(RotateReport {
        capsule_id: capsule,
        key_version,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(network: &str) -> String {
        let id = Principal::from_text("rrkah-fqaaa-aaaaa-aaaaq-cai").unwrap();
        canister_http_origin(&Url::parse(network).unwrap(), id).to_string()
    }

    #[test]
    fn origins_use_the_canister_id_subdomain() {
        let id = "rrkah-fqaaa-aaaaa-aaaaq-cai";
        for local in [
            "http://127.0.0.1:4943",
            "http://localhost:4943/",
            "http://[::1]:4943",
        ] {
            assert_eq!(
                origin(local),
                format!("http://{id}.localhost:4943/"),
                "{local}"
            );
        }
        assert_eq!(
            origin("http://localhost"),
            format!("http://{id}.localhost/")
        );
        for main in [
            "https://icp-api.io",
            "https://ic0.app",
            "https://icp0.io",
            "https://boundary.ic0.app",
        ] {
            assert_eq!(origin(main), format!("https://{id}.icp0.io/"), "{main}");
        }
        assert_eq!(
            origin("https://gw.example.org:8443"),
            format!("https://{id}.gw.example.org:8443/")
        );
        let mainnet = crate::agent::parse_network("ic").unwrap();
        assert_eq!(
            canister_http_origin(&mainnet, ic_host::DEFAULT_CANISTER_ID).to_string(),
            format!("https://{id}.icp0.io/")
        );
    }

    #[test]
    fn urls_join_paths_and_keep_queries_and_prefixes() {
        let o = Url::parse("http://x.localhost:4943").unwrap();
        assert_eq!(
            url_at(&o, "/m/1/original?token=9.ab"),
            "http://x.localhost:4943/m/1/original?token=9.ab"
        );
        let p = parse_gateway("https://photos.example.org/keep/").unwrap();
        assert_eq!(
            url_at(&p, "/m/2/thumbnail"),
            "https://photos.example.org/keep/m/2/thumbnail"
        );
        assert!(parse_gateway("ftp://x").is_err());
        assert!(parse_gateway("localhost:8080").is_err());
    }

    #[test]
    fn ttls_parse_within_the_canister_bounds() {
        assert_eq!(parse_ttl("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("120").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_ttl("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(7 * 86400));
        assert_eq!(parse_ttl("30d").unwrap().as_secs(), MAX_LINK_TTL_SECS);
        for bad in ["59s", "31d", "0", "soon", ""] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert_eq!(rfc3339(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
    }
}
