//! `keepsake link` and `keepsake public`: what the canister serves, as the URL a browser
//! opens through the network's HTTP gateway (or `--gateway`).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, ValueEnum};
use keepsake::agent::{parse_canister_id, parse_network};
use keepsake::client::Client;
use keepsake::links::{self, canister_http_origin, parse_gateway};
use keepsake::ops;
use serde_json::json;
use url::Url;

use crate::{connect, open_embedded, Global};

#[derive(Args, Debug)]
pub struct GatewayArg {
    /// Base URL of an HTTP gateway serving this canister (default with --network:
    /// http://<canister-id>.localhost:<port> locally, https://<canister-id>.icp0.io on
    /// mainnet; embedded: none; `keepsake serve` is one).
    #[arg(long, env = "KEEPSAKE_GATEWAY")]
    gateway: Option<String>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnOff {
    On,
    Off,
}

/// Where a browser reaches the canister, if known.
fn origin(g: &Global, gw: &GatewayArg) -> anyhow::Result<Option<Url>> {
    if let Some(s) = &gw.gateway {
        return parse_gateway(s).map(Some);
    }
    match (&g.network, &g.canister) {
        (Some(net), Some(id)) => Ok(Some(canister_http_origin(
            &parse_network(net)?,
            parse_canister_id(id)?,
        ))),
        // Embedded (or no --canister, which `connect` explains).
        _ => Ok(None),
    }
}

const NO_GATEWAY: &str = "keepsake: embedded, there is no HTTP gateway: run `keepsake serve` on this state folder to open these paths in a browser (or pass --gateway URL)";

/// The client, with the canister's due timers run first when embedded: a replica runs
/// them between messages, the embedded host only when asked, and the link secret comes
/// from a timer (`raw_rand` after install). The caller checkpoints, so the secret is
/// kept and links stay valid across runs.
async fn connect_with_timers(g: &Global) -> anyhow::Result<Client> {
    if g.network.is_some() {
        return connect(g, false).await;
    }
    let t = open_embedded(g, false)?;
    t.advance_time(Duration::ZERO);
    Ok(Client::new(Box::new(t)))
}

pub async fn link(
    g: &Global,
    memory: u64,
    asset: &str,
    ttl: &str,
    gw: &GatewayArg,
) -> anyhow::Result<ExitCode> {
    let kind = ops::parse_asset_kind(asset)?;
    let ttl = links::parse_ttl(ttl)?;
    let origin = origin(g, gw)?;
    let client = connect_with_timers(g).await?;
    let r = links::create(&client, origin.as_ref(), memory, kind, ttl).await;
    client.checkpoint()?;
    let r = r?;
    if g.json {
        println!("{}", json!({ "ok": true, "link": r }));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", r.url.as_deref().unwrap_or(&r.path));
    eprintln!(
        "keepsake: the {} of memory {memory}, for anyone with this link until {} ({})",
        r.asset,
        r.expires_at,
        humantime::format_duration(ttl)
    );
    if r.url.is_none() {
        eprintln!("{NO_GATEWAY}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn public(
    g: &Global,
    memory: u64,
    state: OnOff,
    gw: &GatewayArg,
) -> anyhow::Result<ExitCode> {
    let origin = origin(g, gw)?;
    let client = connect(g, false).await?;
    let r = links::set_public(&client, origin.as_ref(), memory, state == OnOff::On).await;
    client.checkpoint()?;
    let r = r?;
    if g.json {
        println!("{}", json!({ "ok": true, "public": r }));
        return Ok(ExitCode::SUCCESS);
    }
    if r.public {
        println!("memory {memory} is public: anyone may open");
    } else {
        println!("memory {memory} is private: only members and holders of a live link may open");
    }
    for a in &r.assets {
        println!("  {:<11} {}", a.asset, a.url.as_deref().unwrap_or(&a.path));
    }
    if origin.is_none() {
        eprintln!("{NO_GATEWAY}");
    }
    Ok(ExitCode::SUCCESS)
}
