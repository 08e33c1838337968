//! `keepsake rm` (a memory, or one asset of it) and `keepsake gc`, with the space they
//! free read from the canister's `stats`.
//!
//! Freeing is asynchronous on the canister: deleting drops references at once (a blob
//! nobody references leaves `blob_bytes` and its chunks join the freeing queue,
//! `gc_pending_bytes`); housekeeping (a timer every 10 minutes, or `admin_gc` on
//! demand, controllers only) then returns the chunks to the arena's free space
//! (`free_bytes`), which later uploads reuse. Inline assets are freed at once. The
//! reports say which of these happened, from the figures before and after.

use backend::api::{AssetKind, Memory, Stats};
use serde::Serialize;

use crate::client::{Client, ClientError, ClientResult};

/// The figures, or why there are none (a canister may keep `stats` to controllers).
pub async fn space(client: &Client) -> Result<Stats, String> {
    client.stats().await.map_err(|e| e.to_string())
}

#[derive(Clone, Debug, Serialize)]
pub struct RemovedAsset {
    pub kind: AssetKind,
    pub size: u64,
    pub blob_id: Option<u64>,
    pub inline: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RemoveReport {
    pub memory_id: u64,
    /// `None`: the whole memory was deleted.
    pub asset: Option<AssetKind>,
    pub removed: Vec<RemovedAsset>,
    pub before: Option<Stats>,
    pub after: Option<Stats>,
    /// Why there are no figures, if there are none.
    pub stats_error: Option<String>,
    /// Blob bytes no memory references any more (`blob_bytes` before − after).
    pub released_bytes: Option<u64>,
    /// Of those, bytes now waiting for housekeeping (`gc_pending_bytes` after − before).
    pub queued_bytes: Option<u64>,
    /// Arena bytes given back at once (inline assets): the drop of `arena_bytes −
    /// free_bytes` (the arena shrinks instead when the freed bytes were at its end).
    pub freed_now_bytes: Option<u64>,
}

/// Deletes memory `id` (or only its `asset`) and reports the space it released.
pub async fn remove(
    client: &Client,
    id: u64,
    asset: Option<AssetKind>,
) -> ClientResult<RemoveReport> {
    let memory: Memory = client.memories_get(id).await?;
    let removed: Vec<RemovedAsset> = memory
        .assets
        .iter()
        .filter(|a| asset.is_none_or(|k| k == a.kind))
        .map(|a| RemovedAsset {
            kind: a.kind,
            size: a.size,
            blob_id: a.blob_id,
            inline: a.inline.is_some(),
        })
        .collect();
    let before = space(client).await;
    match asset {
        Some(kind) => {
            client.memories_remove_asset(id, kind).await?;
        }
        None => client.memories_delete(id).await?,
    }
    let after = space(client).await;
    let (before, after, stats_error) = match (before, after) {
        (Ok(b), Ok(a)) => (Some(b), Some(a), None),
        (Err(e), _) | (_, Err(e)) => (None, None, Some(e)),
    };
    let delta = |f: fn(&Stats) -> u64, grows: bool| {
        let (b, a) = (before.as_ref()?, after.as_ref()?);
        Some(if grows {
            f(a).saturating_sub(f(b))
        } else {
            f(b).saturating_sub(f(a))
        })
    };
    Ok(RemoveReport {
        memory_id: id,
        asset,
        removed,
        released_bytes: delta(|s| s.blob_bytes, false),
        queued_bytes: delta(|s| s.gc_pending_bytes, true),
        freed_now_bytes: delta(|s| s.arena_bytes.saturating_sub(s.free_bytes), false),
        before,
        after,
        stats_error,
    })
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GcSummary {
    pub passes: u32,
    pub sessions_expired: u64,
    pub records_removed: u64,
    pub chunks_freed: u64,
    pub bytes_freed: u64,
    /// Work was left when `max_passes` ran out.
    pub more: bool,
    pub after: Option<Stats>,
}

/// Runs housekeeping passes (`admin_gc`, controllers only) until nothing is left or
/// `max_passes` ran.
pub async fn gc(client: &Client, max_passes: u32) -> Result<GcSummary, ClientError> {
    let mut s = GcSummary::default();
    loop {
        let r = client.admin_gc().await?;
        s.passes += 1;
        s.sessions_expired += u64::from(r.sessions_expired);
        s.records_removed += u64::from(r.records_removed);
        s.chunks_freed += u64::from(r.chunks_freed);
        s.bytes_freed += r.bytes_freed;
        s.more = r.more;
        if !r.more || s.passes >= max_passes {
            break;
        }
    }
    s.after = space(client).await.ok();
    Ok(s)
}
