//! `keepsake rm` and `keepsake gc`: what was deleted and what `stats` says it freed.

use std::process::ExitCode;

use keepsake::client::Client;
use keepsake::ops;
use keepsake::remove::{self, GcSummary, RemoveReport};
use serde_json::json;

use super::bytes;
use crate::{connect, Global};

/// The client housekeeping runs as: the local controller embedded, else `--identity`
/// (which must be a controller of the canister).
async fn admin(g: &Global, client: Option<Client>) -> anyhow::Result<Client> {
    match client {
        Some(c) if g.network.is_some() => Ok(c),
        other => {
            if let Some(c) = other {
                c.checkpoint()?; // the embedded state, before it is opened as controller
            }
            connect(g, g.network.is_none()).await
        }
    }
}

pub async fn rm(
    g: &Global,
    memory: u64,
    asset: Option<&str>,
    run_gc: bool,
) -> anyhow::Result<ExitCode> {
    let kind = asset.map(ops::parse_asset_kind).transpose()?;
    let client = connect(g, false).await?;
    let r = remove::remove(&client, memory, kind).await?;
    client.checkpoint()?;
    let gc = if run_gc {
        let admin = admin(g, Some(client)).await?;
        let s = remove::gc(&admin, 10_000).await?;
        admin.checkpoint()?;
        Some(s)
    } else {
        None
    };
    if g.json {
        println!("{}", json!({ "ok": true, "removed": r, "gc": gc }));
        return Ok(ExitCode::SUCCESS);
    }
    print_removed(g, &r);
    if let Some(s) = &gc {
        print_gc(s);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_removed(g: &Global, r: &RemoveReport) {
    let kinds: Vec<String> = r
        .removed
        .iter()
        .map(|a| format!("{:?}", a.kind).to_lowercase())
        .collect();
    let size: u64 = r.removed.iter().map(|a| a.size).sum();
    match r.asset {
        Some(k) => println!(
            "removed the {} of memory {} ({})",
            format!("{k:?}").to_lowercase(),
            r.memory_id,
            bytes(size)
        ),
        None => println!(
            "deleted memory {} ({}: {})",
            r.memory_id,
            kinds.join(", "),
            bytes(size)
        ),
    }
    let (Some(released), Some(queued), Some(now)) =
        (r.released_bytes, r.queued_bytes, r.freed_now_bytes)
    else {
        println!(
            "space: no figures ({})",
            r.stats_error.as_deref().unwrap_or("stats unavailable")
        );
        return;
    };
    let blob_size: u64 = r.removed.iter().filter(|a| !a.inline).map(|a| a.size).sum();
    println!(
        "released {} of blobs no memory uses any more",
        bytes(released)
    );
    if released < blob_size {
        println!(
            "  ({} stay: other memories use the same bytes)",
            bytes(blob_size - released)
        );
    }
    if now > 0 {
        println!("freed {} at once (inline assets)", bytes(now));
    }
    if queued > 0 {
        let when = if g.network.is_some() {
            "the canister's housekeeping frees it within 10 minutes; `keepsake gc` (controllers) now"
        } else {
            "`keepsake gc` (or `rm --gc`) frees it now"
        };
        println!("queued {} for housekeeping: {when}", bytes(queued));
    }
}

fn print_gc(s: &GcSummary) {
    println!(
        "housekeeping: {} pass(es), {} chunks and {} freed{}",
        s.passes,
        s.chunks_freed,
        bytes(s.bytes_freed),
        if s.more {
            " (more left: run again)"
        } else {
            ""
        }
    );
    if let Some(a) = &s.after {
        println!(
            "arena {} of which {} free for reuse; {} still queued",
            bytes(a.arena_bytes),
            bytes(a.free_bytes),
            bytes(a.gc_pending_bytes)
        );
    }
}

pub async fn gc(g: &Global, passes: u32) -> anyhow::Result<ExitCode> {
    let admin = admin(g, None).await?;
    let s = remove::gc(&admin, passes.max(1)).await?;
    admin.checkpoint()?;
    if g.json {
        println!("{}", json!({ "ok": true, "gc": s }));
    } else {
        print_gc(&s);
    }
    Ok(ExitCode::SUCCESS)
}
