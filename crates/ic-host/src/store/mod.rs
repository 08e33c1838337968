//! The on-disk state of a persistent host: a directory of
//!
//! ```text
//! lock                          held (flock) while a host has the directory open
//! meta                          metadata as of the last checkpoint (see meta.rs)
//! wal                           transactions since that checkpoint (see wal.rs)
//! modules/<sha256>.wasm         installed Wasm modules
//! canisters/<id>/stable         stable memory, a sparse file (byte n = byte n)
//! canisters/<id>/heap           the Wasm heap between messages, likewise
//! ```
//!
//! A committed transaction is appended to the log (and fsynced, unless the host defers
//! syncing for group commit) before its pages are written to the page files. Page files
//! are fsynced and the metadata rewritten at a checkpoint, after which the log is
//! emptied. Opening replays the log onto the page files, so after `kill -9` (or power
//! loss, once the log was synced) every committed transaction is there; a torn append is
//! cut off. Opening reads the metadata and each canister's heap, never the stable memory.

pub(crate) mod meta;
pub(crate) mod pages;
pub(crate) mod wal;

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use candid::Principal;

use meta::Meta;
use pages::Pages;
use wal::{Mem, Txn, Wal};

/// When the host fsyncs the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// After every committed transaction, before its reply is handed out (default).
    #[default]
    EveryCommit,
    /// Only in [`crate::Host::sync`] (and at checkpoints): group commit. A `kill -9` loses
    /// nothing either way; a power loss can lose what was committed after the last sync,
    /// so replies must not be handed out before it.
    Deferred,
}

/// What the store has done since it was opened (durability figures).
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// Transactions logged.
    pub commits: u64,
    /// Bytes appended to the log (records: headers, page entries, metadata).
    pub log_bytes: u64,
    /// Bytes of the 4 KiB pages those records carried (stable memory and heap).
    pub page_bytes: u64,
    /// Bytes of metadata those records carried.
    pub meta_bytes: u64,
    pub syncs: u64,
    pub sync_time: Duration,
    /// Time spent encoding and appending records.
    pub log_time: Duration,
    pub checkpoints: u64,
    pub checkpoint_time: Duration,
}

/// Above this many bytes of log, the host checkpoints.
pub const DEFAULT_CHECKPOINT_BYTES: u64 = 256 << 20;

pub(crate) struct DirStore {
    pub dir: PathBuf,
    _lock: File,
    wal: Wal,
    /// Sequence number of the last logged transaction.
    pub seq: u64,
    pub durability: Durability,
    pub checkpoint_bytes: u64,
    pub stats: StoreStats,
    unsynced: bool,
    /// The metadata of the last logged transaction, with sequence number and time 0.
    pub last_meta: Vec<u8>,
}

fn open_rw(path: &Path, truncate: bool) -> io::Result<File> {
    File::options().read(true).write(true).create(true).truncate(truncate).open(path)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl DirStore {
    /// Opens (creating) `dir`, replays the log, and returns the metadata (`None` for a
    /// new directory).
    pub fn open(dir: &Path) -> Result<(DirStore, Option<Meta>)> {
        std::fs::create_dir_all(dir.join("canisters")).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::create_dir_all(dir.join("modules"))?;
        let lock = open_rw(&dir.join("lock"), false)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(anyhow!("{} is in use by another process", dir.display()))
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e).context("locking the state directory"),
        }
        let mut meta = meta::read_file(dir)?;
        let base = meta.as_ref().map_or(0, |m| m.seq);
        let mut files: HashMap<(Principal, Mem), File> = HashMap::new();
        let mut last_meta: Option<Vec<u8>> = None;
        let wal_file = open_rw(&dir.join("wal"), false)?;
        let (wal, last) = Wal::open(wal_file, base, |_seq, body| {
            wal::entries(body, |e| {
                match e {
                    wal::Entry::Page { canister, mem, index, page } => {
                        let f = Self::replay_file(dir, &mut files, canister, mem)?;
                        std::os::unix::fs::FileExt::write_all_at(f, page, index * pages::PAGE as u64)?;
                    }
                    wal::Entry::Clear { canister, mem } => Self::replay_file(dir, &mut files, canister, mem)?.set_len(0)?,
                    wal::Entry::Meta(m) => last_meta = Some(m.to_vec()),
                }
                Ok(())
            })
        })
        .with_context(|| format!("replaying the log of {}", dir.display()))?;
        let mut store = DirStore {
            dir: dir.to_path_buf(),
            _lock: lock,
            wal,
            seq: last,
            durability: Durability::default(),
            checkpoint_bytes: DEFAULT_CHECKPOINT_BYTES,
            stats: StoreStats::default(),
            unsynced: false,
            last_meta: Vec::new(),
        };
        if let Some(m) = last_meta {
            // Replayed: make it a checkpoint, so the log starts empty.
            for f in files.values() {
                f.sync_data()?;
            }
            let mut decoded = meta::decode(&m)?;
            decoded.seq = last;
            meta::write_file(dir, &m)?;
            store.wal.reset()?;
            meta = Some(decoded);
        }
        Ok((store, meta))
    }

    fn replay_file<'f>(
        dir: &Path,
        files: &'f mut HashMap<(Principal, Mem), File>,
        canister: Principal,
        mem: Mem,
    ) -> Result<&'f File> {
        if let std::collections::hash_map::Entry::Vacant(v) = files.entry((canister, mem)) {
            let d = Self::canister_dir_in(dir, &canister);
            std::fs::create_dir_all(&d)?;
            v.insert(open_rw(&d.join(mem.file_name()), false)?);
        }
        Ok(&files[&(canister, mem)])
    }

    fn canister_dir_in(dir: &Path, id: &Principal) -> PathBuf {
        dir.join("canisters").join(id.to_text())
    }

    /// The page file of a canister's memory (`fresh`: emptied, for a new canister).
    pub fn pages(&self, id: &Principal, mem: Mem, fresh: bool) -> Result<Pages> {
        let d = Self::canister_dir_in(&self.dir, id);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(Pages::File(open_rw(&d.join(mem.file_name()), fresh)?))
    }

    fn module_path(&self, hash: &[u8]) -> PathBuf {
        self.dir.join("modules").join(format!("{}.wasm", crate::engine::hex(hash)))
    }

    /// Keeps `wasm` (durably) so the canisters running it can be restored.
    pub fn save_module(&self, hash: &[u8; 32], wasm: &[u8]) -> Result<()> {
        let path = self.module_path(hash);
        if !path.exists() {
            crate::engine::write_atomically(&self.dir.join("modules"), &path, wasm)?;
            sync_dir(&self.dir.join("modules"))?;
        }
        Ok(())
    }

    pub fn load_module(&self, hash: &[u8]) -> Result<Vec<u8>> {
        let path = self.module_path(hash);
        std::fs::read(&path).with_context(|| format!("reading the installed module {}", path.display()))
    }

    /// Logs a transaction (with the next sequence number, already in its metadata).
    pub fn log(&mut self, txn: &Txn) -> io::Result<()> {
        let t0 = Instant::now();
        let record = wal::encode(self.seq + 1, txn);
        self.wal.append(&record)?;
        self.seq += 1;
        self.stats.commits += 1;
        self.stats.log_bytes += record.len() as u64;
        self.stats.page_bytes += txn.page_bytes();
        self.stats.meta_bytes += txn.meta.len() as u64;
        self.stats.log_time += t0.elapsed();
        self.unsynced = true;
        if self.durability == Durability::EveryCommit {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes every logged transaction durable.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            let t0 = Instant::now();
            self.wal.sync()?;
            self.stats.syncs += 1;
            self.stats.sync_time += t0.elapsed();
            self.unsynced = false;
        }
        Ok(())
    }

    pub fn needs_checkpoint(&self) -> bool {
        self.wal.len() >= self.checkpoint_bytes
    }

    pub fn wal_len(&self) -> u64 {
        self.wal.len()
    }

    /// The second half of a checkpoint (the page files are synced): metadata, then an
    /// empty log, then files nobody uses any more are removed.
    pub fn finish_checkpoint(&mut self, meta_payload: &[u8], live: &[Principal], modules: &[[u8; 32]]) -> Result<()> {
        meta::write_file(&self.dir, meta_payload)?;
        self.wal.reset()?;
        self.unsynced = false;
        self.remove_garbage(live, modules);
        self.stats.checkpoints += 1;
        Ok(())
    }

    /// Removes directories of canisters that are gone and modules nobody runs.
    fn remove_garbage(&self, live: &[Principal], modules: &[[u8; 32]]) {
        let keep: Vec<String> = live.iter().map(|p| p.to_text()).collect();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("canisters")) {
            for e in entries.flatten() {
                if !keep.iter().any(|k| e.file_name().to_str() == Some(k)) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let keep: Vec<String> = modules.iter().map(|h| format!("{}.wasm", crate::engine::hex(h))).collect();
        if let Ok(entries) = std::fs::read_dir(self.dir.join("modules")) {
            for e in entries.flatten() {
                if !keep.iter().any(|k| e.file_name().to_str() == Some(k)) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}
