//! What durability costs per committed message in ic-host's page store: the backend's
//! `uploads_put_chunk` (1.8 MB chunks) and a small update (`capsules_create`), on a host
//! in RAM (no durability), on a directory host that fsyncs its log at every commit, and
//! on one that groups commits (one fsync per 8 messages).
//!
//! Bytes: the 4 KiB pages a message dirtied (stable memory and heap) go to the log once
//! and to the page files once; the log adds record headers and the host's metadata.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use backend::api::{Capsule, CapsuleCreateArgs, ConfigUpdate, Error, UploadConfig};
use ic_host::{Durability, Host, HostConfig, DEFAULT_CONTROLLER, DIRTY_PAGE_SIZE};

use crate::data::File;
use crate::keepsake::{Canister, USER};
use crate::meter::ok;

#[derive(Clone, Copy)]
enum Mode {
    Ram,
    EveryCommit,
    Group(u32),
}

impl Mode {
    fn name(self) -> String {
        match self {
            Mode::Ram => "in RAM (not durable)".into(),
            Mode::EveryCommit => "directory, fsync per commit".into(),
            Mode::Group(k) => format!("directory, group commit (fsync per {k})"),
        }
    }
}

#[derive(Default)]
struct Row {
    messages: u64,
    wall: Duration,
    dirty_pages: u64,
    stats: ic_host::StoreStats,
}

impl Row {
    fn line(&self, mode: Mode, what: &str) -> String {
        let n = self.messages.max(1) as f64;
        let ms = |d: Duration| d.as_secs_f64() * 1e3 / n;
        let dirty = self.dirty_pages as f64 * DIRTY_PAGE_SIZE as f64 / n;
        let log = self.stats.log_bytes as f64 / n;
        let (beyond, files) = if self.stats.commits == 0 { ("-".into(), "-".into()) } else {
            (format!("{:.0}", log - self.stats.page_bytes as f64 / n), format!("{:.0}", self.stats.page_bytes as f64 / n / 1024.0))
        };
        format!(
            "| {what} | {} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {beyond} | {files} |",
            mode.name(),
            ms(self.wall),
            ms(self.stats.log_time),
            ms(self.stats.sync_time),
            dirty / 1024.0,
            log / 1024.0,
        )
    }
}

fn diff(a: &ic_host::StoreStats, b: &ic_host::StoreStats) -> ic_host::StoreStats {
    ic_host::StoreStats {
        commits: b.commits - a.commits,
        log_bytes: b.log_bytes - a.log_bytes,
        page_bytes: b.page_bytes - a.page_bytes,
        meta_bytes: b.meta_bytes - a.meta_bytes,
        syncs: b.syncs - a.syncs,
        sync_time: b.sync_time - a.sync_time,
        log_time: b.log_time - a.log_time,
        checkpoints: b.checkpoints - a.checkpoints,
        checkpoint_time: b.checkpoint_time - a.checkpoint_time,
    }
}

fn dirty(host: &Host) -> u64 {
    host.last_messages().iter().map(|m| m.stable_pages_dirtied + m.heap_pages_dirtied).sum()
}

pub fn run(backend: &[u8], dir: &Path, smoke: bool) -> Result<String> {
    let chunks = if smoke { 8 } else { 64 };
    let file = File::new(u64::from(chunks) * 1_800_000, 1_800_000, 7);
    let mut out = vec![
        format!("Durability per committed message ({chunks} chunks of 1.8 MB, then 50 small updates); ms are wall time per message.\n"),
        "| message | host | ms | of which log write | of which fsync | dirty pages (KiB) | log record (KiB) | log bytes beyond the dirty pages | page-file writes (KiB) |".into(),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|".into(),
    ];
    for (i, mode) in [Mode::Ram, Mode::EveryCommit, Mode::Group(8)].into_iter().enumerate() {
        let mut host = match mode {
            Mode::Ram => Host::in_memory(),
            _ => {
                let d = dir.join(format!("store-{i}"));
                let _ = std::fs::remove_dir_all(&d);
                Host::open(&d)?
            }
        };
        host.install_default(backend, &candid::encode_args(())?, HostConfig::default())?;
        if let Mode::Group(_) = mode {
            host.set_durability(Durability::Deferred);
        }
        let mut c = Canister::on(host)?;
        let (session, _) = c.begin(&file, "durability")?;
        let mut put = Row::default();
        let s0 = c.host.store_stats();
        for idx in 0..chunks {
            let bytes = file.chunk(idx);
            let t = Instant::now();
            c.put(session, idx, bytes)?;
            if let Mode::Group(k) = mode {
                if (idx + 1) % k == 0 {
                    c.host.sync()?;
                }
            }
            put.wall += t.elapsed();
            put.dirty_pages += dirty(&c.host);
            put.messages += 1;
        }
        put.stats = diff(&s0, &c.host.store_stats());
        out.push(put.line(mode, "uploads_put_chunk"));

        // 50 capsules from one caller: past the canister's default bound per principal.
        let raise = ConfigUpdate { max_capsules_per_caller: Some(64), ..Default::default() };
        let (r, _): (std::result::Result<UploadConfig, Error>, _) =
            ok(&mut c.host, true, DEFAULT_CONTROLLER, "admin_set_config", (raise,), 0)?;
        r.map_err(|e| anyhow::anyhow!("admin_set_config: {e:?}"))?;
        let mut small = Row::default();
        let s0 = c.host.store_stats();
        for i in 0..50u32 {
            let t = Instant::now();
            let args = CapsuleCreateArgs { name: format!("c{i}") };
            let (r, _): (std::result::Result<Capsule, Error>, _) = ok(&mut c.host, true, USER, "capsules_create", (args,), 0)?;
            r.map_err(|e| anyhow::anyhow!("capsules_create: {e:?}"))?;
            if let Mode::Group(k) = mode {
                if (i + 1) % k == 0 {
                    c.host.sync()?;
                }
            }
            small.wall += t.elapsed();
            small.dirty_pages += dirty(&c.host);
            small.messages += 1;
        }
        small.stats = diff(&s0, &c.host.store_stats());
        out.push(small.line(mode, "capsules_create"));
        let t = Instant::now();
        let checkpoints = c.host.store_stats();
        drop(c); // closes: a checkpoint
        if checkpoints.commits > 0 {
            eprintln!("{}: close (checkpoint) {:.0} ms", mode.name(), t.elapsed().as_secs_f64() * 1e3);
        }
    }
    out.push(String::new());
    out.push(
        "A committed message's pages are written twice: to the log (fsynced before the reply) and to the page files \
         (fsynced at checkpoints, every 256 MiB of log). The log adds per record a 24-byte header, 21 bytes per page \
         (entry tag, canister id, memory, index) and the host's metadata (a few hundred bytes)."
            .into(),
    );
    Ok(out.join("\n"))
}
