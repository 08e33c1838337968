//! Upgrades against stored data: what `install_code` in upgrade mode costs (pre_upgrade +
//! compilation + post_upgrade, counted as the IC counts against its 300 B limit) with
//! nothing, 100 MB, 1 GB and 10 GB stored (1 GB files), in keepsake and in DFINITY's
//! asset canister holding the same bytes (not tried past a size where it already failed).
//! keepsake keeps everything in stable structures, so its upgrade does not read the data;
//! the asset canister serializes its whole state in pre_upgrade.

use std::fmt::Write as _;
use std::time::Instant;

use anyhow::Result;
use ic_host::UpgradeCost;

use crate::data::{self, File};
use crate::{assets, keepsake};

pub struct Row {
    pub stored: u64,
    pub keepsake: UpgradeCost,
    /// The asset canister's cost, or why the upgrade failed; `None`: not tried, it
    /// already failed with less stored.
    pub assets: Option<std::result::Result<UpgradeCost, String>>,
}

const GB: u64 = 1_000_000_000;

pub fn run(backend: &[u8], assets_wasm: &[u8], sizes: &[u64], chunk_size: u32) -> Result<Vec<Row>> {
    let init = candid::encode_args(())?;
    let mut rows = Vec::new();
    for (i, &size) in sizes.iter().enumerate() {
        let t = Instant::now();
        let mut c = keepsake::Canister::install(backend)?;
        let mut left = size;
        let mut part = 0;
        while left > 0 {
            let n = left.min(GB);
            keepsake::upload(&mut c, File::new(n, chunk_size, 4000 + 100 * i as u64 + part))?;
            left -= n;
            part += 1;
        }
        let k = c.host.upgrade(backend, &init).map_err(|e| anyhow::anyhow!("keepsake upgrade with {}: {e}", data::mb(size)))?;
        drop(c);
        let failed_before = rows.iter().any(|r: &Row| matches!(r.assets, Some(Err(_)) | None));
        let a = if failed_before {
            None
        } else if size == 0 {
            let mut host = ic_host::Host::new(assets_wasm, &init)?;
            Some(host.upgrade(assets_wasm, &init).map_err(|e| e.to_string()))
        } else {
            let mut batch = assets::stage(assets_wasm, File::new(size, chunk_size, 4000 + i as u64))?;
            let (r, _) = batch.commit(true)?;
            r.map_err(|e| anyhow::anyhow!("asset canister commit of {}: {e}", data::mb(size)))?;
            Some(batch.host.upgrade(assets_wasm, &init).map_err(|e| e.to_string()))
        };
        eprintln!("upgrade with {} stored: {:.1} s", data::mb(size), t.elapsed().as_secs_f64());
        rows.push(Row { stored: size, keepsake: k, assets: a });
    }
    Ok(rows)
}

fn b(i: u64) -> String {
    format!("{:.3} B", i as f64 / 1e9)
}

pub fn markdown(rows: &[Row]) -> String {
    let mut s = String::from(
        "## Upgrade cost against stored data (install_code, upgrade mode; limit 300 B)\n\n\
         | stored | keepsake: total (pre / compilation / post) | asset canister: total (pre / compilation / post) |\n|---:|---:|---:|\n",
    );
    let cost = |c: &UpgradeCost| format!("{} ({} / {} / {})", b(c.instructions), b(c.pre_upgrade), b(c.compilation), b(c.post_upgrade));
    for r in rows {
        let a = match &r.assets {
            Some(Ok(c)) => cost(c),
            None => "not tried (it failed with less stored)".to_string(),
            Some(Err(e)) => format!("**fails**: {}", e.chars().take(120).collect::<String>()),
        };
        let _ = writeln!(s, "| {} | {} | {a} |", data::mb(r.stored), cost(&r.keepsake));
    }
    // Where the asset canister stops being upgradable: measured, else extrapolated.
    let ok: Vec<(u64, u64)> = rows.iter().filter_map(|r| match &r.assets {
        Some(Ok(c)) => Some((r.stored, c.instructions)),
        _ => None,
    }).collect();
    let per_byte = match ok[..] {
        [.., (s0, i0), (s1, i1)] if s1 > s0 && i1 > i0 => Some((i1 - i0) as f64 / (s1 - s0) as f64),
        _ => None,
    };
    if let Some(failed) = rows.iter().find(|r| matches!(r.assets, Some(Err(_)))) {
        let _ = writeln!(
            s,
            "\nThe asset canister cannot be upgraded with {} stored: its pre_upgrade serializes every asset into a \
             buffer in the Wasm heap that already holds them, and traps.{} keepsake's upgrade does not read what is \
             stored.",
            data::mb(failed.stored),
            per_byte.map_or(String::new(), |p| format!(" Below that its upgrade grows by {p:.1} instructions per stored byte."))
        );
    } else if let (Some(p), Some(&(s1, i1))) = (per_byte, ok.last()) {
        let limit = (300e9 - i1 as f64) / p + s1 as f64;
        let _ = writeln!(
            s,
            "\nThe asset canister's upgrade grows by {p:.1} instructions per stored byte: at that rate it would reach the \
             300 B limit at about {} stored (by extrapolation; its 4 GiB Wasm heap ends it sooner). keepsake's does not \
             read what is stored.",
            data::mb(limit as u64)
        );
    }
    s
}
