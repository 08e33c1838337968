//! A host kept in a directory: opening (replaying the log), committing each step as one
//! logged transaction, checkpoints, closing, and importing the old single-file state.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, ensure, Context, Result};
use candid::Principal;
use serde_bytes::ByteBuf;

use crate::canister::{Canister, Entry};
use crate::engine;
use crate::host::{Host, Limit};
use crate::legacy;
use crate::stable::StableMemory;
use crate::state::{CanisterState, Message, MessageKind};
use crate::store::meta::{self, CanisterMeta, GlobalValue, MetaRef};
use crate::store::pages::{is_zero, Page, PAGE};
use crate::store::wal::{Mem, MemWrite, Txn};
use crate::certify::SubnetKey;
use crate::store::{DirStore, Durability, StoreStats};

impl Host {
    /// Opens the host kept in `dir` (creating an empty one if `dir` has none). Replays
    /// the log of transactions since the last checkpoint, restores every canister
    /// (module, heap, globals; stable memory stays on disk and is read on demand) and
    /// delivers messages that were still queued. Fails if another process has it open.
    pub fn open(dir: &Path) -> Result<Host> {
        let (store, meta) = DirStore::open(dir)?;
        let mut host = Host::in_memory();
        host.subnet = subnet_key(dir)?;
        if let Some(m) = meta {
            host.time = m.time;
            host.next_canister = m.next_canister;
            host.next_ctx = m.next_ctx;
            host.default = m.default_canister;
            host.contexts = m.contexts;
            host.queue = m.queue;
            host.pending_stops = m.pending_stops;
            for cm in m.canisters {
                let id = cm.id;
                let c = restore_canister(&store, cm).with_context(|| format!("restoring canister {id} from {}", dir.display()))?;
                host.canisters.insert(id, c);
            }
        }
        host.store = Some(store);
        // Drops files of canisters deleted before a crash; the log starts empty.
        host.checkpoint()?;
        if !host.queue.is_empty() {
            host.drain();
            host.ingress_results.clear(); // their callers are gone
        }
        if let Some(why) = &host.failed {
            return Err(anyhow!("{why}"));
        }
        Ok(host)
    }

    /// The directory this host is kept in (`None`: in memory).
    pub fn dir(&self) -> Option<&Path> {
        self.store.as_ref().map(|s| s.dir.as_path())
    }

    /// When the log is fsynced (see [`Durability`]).
    pub fn set_durability(&mut self, d: Durability) {
        if let Some(s) = self.store.as_mut() {
            s.durability = d;
        }
    }

    /// Log size above which the host checkpoints (default 256 MiB).
    pub fn set_checkpoint_bytes(&mut self, n: u64) {
        if let Some(s) = self.store.as_mut() {
            s.checkpoint_bytes = n;
        }
    }

    /// Makes everything committed so far durable (with [`Durability::Deferred`]: hand
    /// out the replies of the messages run since the last sync after this returns).
    pub fn sync(&mut self) -> Result<()> {
        self.check_failed().map_err(|r| anyhow!("{}", r.message))?;
        if let Some(s) = self.store.as_mut() {
            if let Err(e) = s.sync() {
                self.failed = Some(format!("fsync of the log failed: {e}"));
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// What the store did since it was opened.
    pub fn store_stats(&self) -> StoreStats {
        self.store.as_ref().map(|s| s.stats.clone()).unwrap_or_default()
    }

    /// Bytes in the log now.
    pub fn log_bytes(&self) -> u64 {
        self.store.as_ref().map_or(0, |s| s.wal_len())
    }

    /// Checkpoints and releases the directory (dropping the host does the same, but
    /// cannot report an error).
    pub fn close(mut self) -> Result<()> {
        let r = self.checkpoint();
        self.store = None; // nothing left for Drop to do
        r
    }

    /// The metadata (with `seq` and `time`). `next_ctx` is derived from the live contexts,
    /// so a message that changed nothing leaves the metadata as it was.
    fn encode_meta(&self, seq: u64, time: u64) -> Vec<u8> {
        let canisters = self
            .canisters
            .values()
            .map(|c| {
                let s = c.state();
                CanisterMeta {
                    id: s.canister_id,
                    controllers: s.controllers.clone(),
                    module_hash: c.module().map(|m| ByteBuf::from(m.wasm_hash.to_vec())),
                    status: s.status,
                    stable_pages: s.stable.pages(),
                    max_stable_pages: s.stable.max_pages,
                    heap_bytes: c.heap_len() as u64,
                    globals: c.committed_globals().iter().map(GlobalValue::of).collect(),
                    global_timer: s.global_timer,
                    certified_data: ByteBuf::from(s.certified_data.clone()),
                    canister_version: s.canister_version,
                    cycles: s.cycle_balance,
                }
            })
            .collect();
        meta::encode(&MetaRef {
            seq,
            time,
            next_canister: self.next_canister,
            next_ctx: self.contexts.keys().next_back().map_or(0, |c| c + 1),
            default_canister: self.default,
            canisters,
            contexts: &self.contexts,
            queue: &self.queue,
            pending_stops: &self.pending_stops,
        })
    }

    /// Ends a step: in RAM, stores the committed pages; in a directory, logs them with
    /// the metadata as one transaction (synced unless deferred), then writes them to the
    /// page files, and checkpoints when the log has grown large.
    pub(crate) fn commit_step(&mut self) {
        self.settle_stopping();
        let deltas = std::mem::take(&mut self.step);
        if self.store.is_none() {
            for (id, d) in deltas {
                if let Some(c) = self.canisters.get_mut(&id) {
                    // RAM pages: nothing can fail.
                    let _ = c.apply_stable(d.stable);
                    let _ = c.apply_heap(d.heap_clear, d.heap_pages);
                }
            }
            return;
        }
        if self.failed.is_some() {
            return;
        }
        let mut writes = Vec::new();
        for (id, d) in deltas {
            writes.push(MemWrite { canister: id, mem: Mem::Stable, clear: d.stable.clear, pages: d.stable.pages });
            writes.push(MemWrite { canister: id, mem: Mem::Heap, clear: d.heap_clear, pages: d.heap_pages });
        }
        writes.retain(|w| w.clear || !w.pages.is_empty());
        // A step that changed nothing (a rolled-back message) writes nothing.
        let unchanged = self.encode_meta(0, 0);
        if writes.is_empty() && self.store.as_ref().is_some_and(|s| s.last_meta == unchanged) {
            return;
        }
        let seq = self.store.as_ref().map_or(0, |s| s.seq) + 1;
        let txn = Txn { writes, meta: self.encode_meta(seq, self.time) };
        if let Some(s) = self.store.as_mut() {
            if let Err(e) = s.log(&txn) {
                self.failed = Some(format!("writing the log failed: {e}"));
                return;
            }
            s.last_meta = unchanged;
        }
        for w in txn.writes {
            let Some(c) = self.canisters.get_mut(&w.canister) else { continue };
            let r = match w.mem {
                Mem::Stable => c.apply_stable(crate::stable::StableDelta { clear: w.clear, pages: w.pages }),
                Mem::Heap => c.apply_heap(w.clear, w.pages),
            };
            if let Err(e) = r {
                self.failed = Some(format!("writing the page files failed: {e}"));
                return;
            }
        }
        if self.store.as_ref().is_some_and(|s| s.needs_checkpoint()) {
            if let Err(e) = self.checkpoint() {
                self.failed = Some(format!("checkpoint failed: {e:#}"));
            }
        }
    }

    /// Commits a step with no message (a change of system state made through the API).
    pub(crate) fn commit_meta(&mut self) {
        self.commit_step();
    }

    /// Page files synced, metadata rewritten, log emptied, garbage removed.
    pub(crate) fn checkpoint(&mut self) -> Result<()> {
        if self.store.is_none() || self.failed.is_some() {
            return Ok(());
        }
        let t0 = Instant::now();
        for c in self.canisters.values() {
            c.state().stable.backing().sync()?;
            if let Some(h) = c.heap_store() {
                h.sync()?;
            }
        }
        let seq = self.store.as_ref().map_or(0, |s| s.seq);
        let payload = self.encode_meta(seq, self.time);
        let unchanged = self.encode_meta(0, 0);
        let live: Vec<Principal> = self.canisters.keys().copied().collect();
        let modules: Vec<[u8; 32]> = self.canisters.values().filter_map(|c| c.module().map(|m| m.wasm_hash)).collect();
        if let Some(s) = self.store.as_mut() {
            s.finish_checkpoint(&payload, &live, &modules)?;
            s.last_meta = unchanged;
            s.stats.checkpoint_time += t0.elapsed();
        }
        Ok(())
    }

    /// Imports a state file of the old single-file format (version 1, written by
    /// `save_state` of earlier versions) as a new canister of this host, upgraded onto
    /// `wasm`: its stable memory (streamed, never held whole in memory), controllers,
    /// cycles, timer and certified data are kept, the heap is not (it was never saved),
    /// so `canister_post_upgrade` runs with an empty argument. The host's time becomes
    /// the file's. The canister becomes the default one if there is none.
    pub fn import_legacy_state(&mut self, path: &Path, wasm: &[u8]) -> Result<Principal> {
        self.check_failed().map_err(|r| anyhow!("{}", r.message))?;
        let module = engine::load_module(wasm)?;
        let mut import = Import { host: self, created: None };
        let read = legacy::read(path, &mut import);
        let created = import.created;
        let r = (|| -> Result<Principal> {
            let header = read?;
            let id = header.canister_id;
            self.time = header.time;
            let c = self.canisters.get_mut(&id).ok_or_else(|| anyhow!("imported canister vanished"))?;
            {
                let s = c.state_mut();
                s.stable.set_committed_pages(header.pages);
                s.stable.max_pages = header.max_pages.max(header.pages);
                s.global_timer = header.global_timer;
                s.certified_data = header.certified_data.clone();
                s.canister_version = header.canister_version;
            }
            self.save_module(&module.wasm_hash, wasm).map_err(|r| anyhow!("{}", r.message))?;
            let (budget, time) = (self.instruction_limit(Limit::Install), self.time);
            let c = self.canisters.get_mut(&id).ok_or_else(|| anyhow!("imported canister vanished"))?;
            c.install_module(&module, budget)?;
            if c.has_func("canister_post_upgrade") {
                let installer = header.controllers.first().map(|p| p.as_slice().to_vec()).unwrap_or_default();
                let mut msg = Message::new(MessageKind::PostUpgrade, "canister_post_upgrade", installer, Vec::new());
                msg.time = time;
                let exec = c.execute(&Entry::Export("canister_post_upgrade".into()), msg, budget);
                if let Some(t) = exec.trap {
                    c.rollback();
                    return Err(anyhow!("canister_post_upgrade trapped while importing {}: {t}", path.display()));
                }
            }
            let delta = c.commit();
            self.step.push((id, delta));
            if self.default.is_none() {
                self.default = Some(id);
            }
            Ok(id)
        })();
        match r {
            Ok(id) => {
                // The stable pages went straight to the page file, not through the log:
                // synced before the transaction that names the canister is logged.
                if let Some(c) = self.canisters.get(&id) {
                    c.state().stable.backing().sync()?;
                }
                self.commit_step();
                self.checkpoint()?;
                self.check_failed().map_err(|r| anyhow!("{}", r.message))?;
                Ok(id)
            }
            Err(e) => {
                self.step.clear();
                if let Some(id) = created {
                    self.delete(id);
                }
                Err(e)
            }
        }
    }

}

/// A legacy state file being imported into a host.
struct Import<'a> {
    host: &'a mut Host,
    created: Option<Principal>,
}

impl legacy::Sink for Import<'_> {
    fn header(&mut self, h: &legacy::Header) -> Result<()> {
        let id = self
            .host
            .create(Some(h.canister_id), h.controllers.clone(), h.cycle_balance)
            .map_err(|r| anyhow!("{}", r.message))?;
        // Its files were just created empty; the stable bytes go straight into them.
        self.host.step.retain(|(c, _)| *c != id);
        self.created = Some(id);
        Ok(())
    }

    /// Writes imported stable bytes at `offset` straight to the canister's page store
    /// (zero pages are left out: the file stays sparse).
    fn stable(&mut self, offset: u64, bytes: &[u8]) -> Result<()> {
        let id = self.created.ok_or_else(|| anyhow!("no canister to import into"))?;
        let c = self.host.canisters.get_mut(&id).ok_or_else(|| anyhow!("no canister to import into"))?;
        ensure!(offset.is_multiple_of(PAGE as u64), "import chunks are page aligned");
        let mut pages: Vec<(u64, Box<Page>)> = Vec::new();
        for (i, chunk) in bytes.chunks(PAGE).enumerate() {
            if is_zero(chunk) {
                continue;
            }
            let mut p = crate::store::pages::zero_page();
            p[..chunk.len()].copy_from_slice(chunk);
            pages.push((offset / PAGE as u64 + i as u64, p));
        }
        c.state_mut().stable.backing_mut().put_pages(pages)?;
        Ok(())
    }
}

impl Host {
    /// Reads a state file of the old single-file format into a new in-memory host
    /// (see [`Host::import_legacy_state`]).
    pub fn load_state(path: &Path, wasm: &[u8]) -> Result<Host> {
        let mut host = Host::in_memory();
        host.import_legacy_state(path, wasm)?;
        Ok(host)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.store.is_some() {
            let _ = self.checkpoint();
        }
    }
}

/// Brings one canister back from the store.
fn restore_canister(store: &DirStore, cm: CanisterMeta) -> Result<Canister> {
    let stable = store.pages(&cm.id, Mem::Stable, false)?;
    let heap_store = store.pages(&cm.id, Mem::Heap, false)?;
    let state = CanisterState {
        canister_id: cm.id,
        controllers: cm.controllers,
        stable: StableMemory::restore(stable, cm.stable_pages, cm.max_stable_pages),
        global_timer: cm.global_timer,
        certified_data: cm.certified_data.into_vec(),
        canister_version: cm.canister_version,
        cycle_balance: cm.cycles,
        status: cm.status,
    };
    let mut heap = vec![0u8; usize::try_from(cm.heap_bytes)?];
    heap_store.read(0, &mut heap)?;
    let mut c = Canister::empty(state, Some(heap_store));
    if let Some(hash) = cm.module_hash {
        let wasm = store.load_module(&hash)?;
        ensure!(engine::sha256(&wasm)[..] == hash[..], "the installed module's file does not match its hash");
        let module = engine::load_module(&wasm)?;
        let globals = cm.globals.iter().map(GlobalValue::val).collect();
        c.restore(module, heap, globals)?;
    }
    Ok(c)
}

/// File of the subnet's secret key: generated once, so the network's root key (which
/// clients pin) survives restarts.
const SUBNET_KEY_FILE: &str = "subnet.key";

fn subnet_key(dir: &Path) -> Result<SubnetKey> {
    let path = dir.join(SUBNET_KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => SubnetKey::from_secret(&bytes)
            .ok_or_else(|| anyhow!("{} does not hold a BLS12-381 secret key: the state is corrupt", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SubnetKey::generate();
            crate::engine::write_atomically(dir, &path, &key.secret())?;
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}
