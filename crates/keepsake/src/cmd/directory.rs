//! `--directory ID`: finds the storage canister of the command's capsule through the
//! directory (cached in the state folder), then the command runs against it as with
//! `--canister`. `capsule create` and `capsule list` are answered by the directory.

use std::process::ExitCode;

use anyhow::bail;
use keepsake::agent;
use keepsake::directory::DirectoryClient;
use serde_json::json;

use crate::{CapsuleCmd, Cmd, Global};

/// The capsule a command names, if any.
fn capsule_of(cmd: &Cmd) -> Option<u64> {
    match cmd {
        Cmd::Upload { capsule, .. } | Cmd::Ls { capsule } | Cmd::Export { capsule, .. } | Cmd::Import { capsule, .. } => *capsule,
        Cmd::Capsule { cmd } => match cmd {
            CapsuleCmd::Members { capsule, .. } | CapsuleCmd::RotateLinkKey { capsule } | CapsuleCmd::Accept { capsule } => Some(*capsule),
            _ => None,
        },
        _ => None,
    }
}

/// Gives the commands that default to "your capsule" the directory's default one.
fn fill_capsule(cmd: &mut Cmd, id: u64) {
    if let Cmd::Upload { capsule, .. } | Cmd::Ls { capsule } | Cmd::Export { capsule, .. } | Cmd::Import { capsule, .. } = cmd {
        capsule.get_or_insert(id);
    }
}

/// Sets `g.canister` to the capsule's storage canister; returns an exit code when the
/// directory answered the command itself.
pub async fn resolve(g: &mut Global, cmd: &mut Cmd) -> anyhow::Result<Option<ExitCode>> {
    let Some(id) = g.directory.as_deref() else { return Ok(None) };
    let Some(net) = &g.network else { bail!("--directory needs --network") };
    if matches!(cmd, Cmd::Serve { .. } | Cmd::SamplePhoto { .. } | Cmd::Completions { .. } | Cmd::Whoami) {
        return Ok(None);
    }
    let url = agent::parse_network(net)?;
    let (ag, _) = agent::build_agent(&url, g.identity.as_deref()).await?;
    let dir = DirectoryClient::new(ag, agent::parse_canister_id(id)?, &g.state, crate::retry_policy(g));
    match cmd {
        Cmd::Capsule { cmd: CapsuleCmd::Create { name } } => {
            let loc = dir.create(name).await?;
            if g.json {
                println!("{}", json!({ "ok": true, "capsule": { "id": loc.capsule_id, "name": name.trim(), "canister": loc.canister_id.to_text() } }));
            } else {
                println!("created capsule {} \"{}\" on storage canister {}", loc.capsule_id, name.trim(), loc.canister_id);
            }
            return Ok(Some(ExitCode::SUCCESS));
        }
        Cmd::Capsule { cmd: CapsuleCmd::List } => {
            let mine = dir.mine().await?;
            if g.json {
                let v: Vec<_> = mine.iter().map(|l| json!({ "id": l.capsule_id, "canister": l.canister_id.to_text() })).collect();
                println!("{}", json!({ "ok": true, "capsules": v }));
            } else if mine.is_empty() {
                println!("no capsules (upload creates one named \"default\")");
            } else {
                println!("{:>6}  storage canister", "id");
                for l in &mine {
                    println!("{:>6}  {}", l.capsule_id, l.canister_id);
                }
            }
            return Ok(Some(ExitCode::SUCCESS));
        }
        _ => {}
    }
    let capsule = match capsule_of(cmd) {
        Some(c) => c,
        None => {
            let d = dir.default_capsule().await?;
            fill_capsule(cmd, d.capsule_id);
            d.capsule_id
        }
    };
    let canister = dir.locate(capsule).await?;
    g.canister = Some(canister.to_text());
    Ok(None)
}
