//! One canister's runtime: its Wasm instance (in a wasmtime store of its own), the
//! committed copy of its heap and globals, and transactions over all of it.
//!
//! A transaction (one message, or `pre_upgrade` + `post_upgrade`) either commits, handing
//! out the 4 KiB pages of stable memory and heap it changed, or rolls back. The heap's
//! dirty pages are found by comparing the instance's memory with the committed copy. A
//! rollback restores the pages that differ; if the Wasm memory grew (or the transaction
//! installed another module), the committed module is instantiated afresh, so the
//! memory's size is what it was: a query or a trap never leaves the instance bigger.

use anyhow::{anyhow, Result};
use wasmtime::{ExternType, Global, Instance, Memory, Ref, Store, Table, Trap, Val};

use crate::engine::{self, CompiledModule};
use crate::rewrite::{GLOBAL_EXPORT_PREFIX, MEMORY_EXPORT, TABLE_EXPORT};
use crate::stable::StableDelta;
use crate::state::{CanisterState, Message, SmallState, StoreData, PAGE_SIZE};
use crate::store::pages::{Page, Pages, PAGE};

/// What a message runs.
pub(crate) enum Entry {
    Export(String),
    /// Function-table index + env argument.
    Callback(u32, u32),
}

/// The outcome of one executed message (before commit or rollback).
pub(crate) struct Exec {
    pub trap: Option<String>,
    pub instructions: u64,
    pub msg: Message,
    /// 4 KiB stable pages written / touched by the message.
    pub stable_dirtied: u64,
    pub stable_accessed: u64,
    /// 4 KiB heap pages that differ from the committed heap after the message.
    pub heap_dirtied: u64,
}

/// Pages a committed transaction changed, to be logged and then stored.
#[derive(Default)]
pub(crate) struct Delta {
    pub stable: StableDelta,
    pub heap_clear: bool,
    /// Sorted by index (only kept when the heap is persisted).
    pub heap_pages: Vec<(u64, Box<Page>)>,
    /// How many heap pages changed.
    pub heap_dirtied: u64,
}

struct Inst {
    instance: Instance,
    module: CompiledModule,
    memory: Option<Memory>,
    table: Option<Table>,
    globals: Vec<Global>,
}

struct Txn {
    small: SmallState,
    /// The live instance runs another module than the committed one (install / upgrade).
    new_module: bool,
}

pub(crate) struct Canister {
    store: Store<StoreData>,
    inst: Option<Inst>,
    committed_module: Option<CompiledModule>,
    /// The committed heap.
    heap: Vec<u8>,
    /// The committed values of the mutable globals.
    globals: Vec<Val>,
    /// Where the committed heap is kept (a file for persistent hosts).
    heap_store: Option<Pages>,
    txn: Option<Txn>,
}

/// A fresh store holding `data` and an instance of `module`; on failure, `data` back.
type Instantiated = Result<(Store<StoreData>, Inst), Box<(anyhow::Error, StoreData)>>;

fn instantiate(module: &CompiledModule, data: StoreData, fuel: u64) -> Instantiated {
    let mut store = Store::new(engine::engine(), data);
    if let Err(e) = store.set_fuel(fuel) {
        return Err(Box::new((e.into(), store.into_data())));
    }
    let instance = match module.pre.instantiate(&mut store) {
        Ok(i) => i,
        Err(e) => return Err(Box::new((anyhow!("instantiating canister: {e:#}"), store.into_data()))),
    };
    let memory = instance.get_memory(&mut store, MEMORY_EXPORT);
    let table = instance.get_table(&mut store, TABLE_EXPORT);
    let names: Vec<String> = module
        .module
        .exports()
        .filter(|e| e.name().starts_with(GLOBAL_EXPORT_PREFIX))
        .map(|e| e.name().to_string())
        .collect();
    let globals = names.iter().filter_map(|n| instance.get_global(&mut store, n)).collect();
    Ok((store, Inst { instance, module: module.clone(), memory, table, globals }))
}

/// Pages (4 KiB) where `live` differs from `committed` (beyond its end: from zero).
fn dirty_pages(live: &[u8], committed: &[u8]) -> Vec<u64> {
    let mut out = Vec::new();
    for (i, page) in live.chunks(PAGE).enumerate() {
        let start = i * PAGE;
        let same = if start + page.len() <= committed.len() {
            page == &committed[start..start + page.len()]
        } else {
            crate::store::pages::is_zero(page)
        };
        if !same {
            out.push(i as u64);
        }
    }
    out
}

impl Canister {
    /// A canister without a module.
    pub fn empty(state: CanisterState, heap_store: Option<Pages>) -> Canister {
        let data = StoreData { canister: state, ..Default::default() };
        Canister {
            store: Store::new(engine::engine(), data),
            inst: None,
            committed_module: None,
            heap: Vec::new(),
            globals: Vec::new(),
            heap_store,
            txn: None,
        }
    }

    /// Brings back a committed canister: `module` instantiated over `heap` and `globals`
    /// (`None`: the module's initial value).
    pub fn restore(&mut self, module: CompiledModule, heap: Vec<u8>, globals: Vec<Option<Val>>) -> Result<()> {
        self.committed_module = Some(module);
        self.heap = heap;
        self.globals = Vec::new();
        self.reinstantiate()?;
        if let Some(inst) = &self.inst {
            for (g, v) in inst.globals.iter().zip(globals) {
                if let Some(v) = v {
                    g.set(&mut self.store, v).map_err(|e| anyhow!("restoring a global: {e:#}"))?;
                }
            }
            self.globals = inst.globals.iter().map(|g| g.get(&mut self.store)).collect();
        }
        Ok(())
    }

    pub fn data(&self) -> &StoreData {
        self.store.data()
    }

    pub fn data_mut(&mut self) -> &mut StoreData {
        self.store.data_mut()
    }

    pub fn state(&self) -> &CanisterState {
        &self.store.data().canister
    }

    pub fn state_mut(&mut self) -> &mut CanisterState {
        &mut self.store.data_mut().canister
    }

    pub fn module(&self) -> Option<&CompiledModule> {
        self.inst.as_ref().map(|i| &i.module)
    }

    pub fn has_func(&self, name: &str) -> bool {
        self.inst.as_ref().is_some_and(|i| matches!(i.module.module.get_export(name), Some(ExternType::Func(_))))
    }

    /// Size of the live instance's Wasm memory in bytes (between messages: the committed size).
    pub fn memory_size(&self) -> usize {
        self.live_heap().len()
    }

    /// Size of the committed heap in bytes.
    pub fn heap_len(&self) -> usize {
        self.heap.len()
    }

    pub fn committed_globals(&self) -> &[Val] {
        &self.globals
    }

    pub fn heap_store(&self) -> Option<&Pages> {
        self.heap_store.as_ref()
    }

    /// Opens a transaction (if none is open).
    pub fn begin(&mut self) {
        if self.txn.is_none() {
            let small = self.state().small();
            self.txn = Some(Txn { small, new_module: false });
        }
    }

    /// Replaces the live instance by a fresh one of `module` (its initial heap), inside
    /// the open transaction. Commit keeps it; rollback brings the committed one back.
    pub fn install_module(&mut self, module: &CompiledModule, fuel: u64) -> Result<()> {
        self.begin();
        let data = std::mem::take(self.store.data_mut());
        match instantiate(module, data, fuel) {
            Ok((store, inst)) => {
                self.store = store;
                self.inst = Some(inst);
                if let Some(t) = self.txn.as_mut() {
                    t.new_module = true;
                }
                Ok(())
            }
            Err(failed) => {
                let (e, data) = *failed;
                *self.store.data_mut() = data;
                Err(e)
            }
        }
    }

    /// Runs one entry point; does not commit or roll back.
    pub fn execute(&mut self, entry: &Entry, mut msg: Message, limit: u64) -> Exec {
        self.begin();
        msg.fuel_limit = limit;
        self.store.data_mut().canister.stable.start_message();
        self.store.data_mut().msg = msg;
        let result = match &self.inst {
            None => Err(wasmtime::Error::msg("the canister has no Wasm module")),
            Some(inst) => {
                let (instance, table) = (inst.instance, inst.table);
                self.store.set_fuel(limit).and_then(|_| match entry {
                    Entry::Export(name) => instance
                        .get_typed_func::<(), ()>(&mut self.store, name)
                        .and_then(|f| f.call(&mut self.store, ())),
                    Entry::Callback(fun, env) => {
                        let func = match table.map(|t| t.get(&mut self.store, u64::from(*fun))) {
                            Some(Some(Ref::Func(Some(f)))) => Ok(f),
                            _ => Err(wasmtime::Error::msg(format!("callback function {fun} not found in table 0"))),
                        };
                        func.and_then(|f| f.typed::<u32, ()>(&self.store)).and_then(|f| f.call(&mut self.store, *env))
                    }
                })
            }
        };
        let instructions = limit.saturating_sub(self.store.get_fuel().unwrap_or(0));
        let msg = std::mem::take(&mut self.store.data_mut().msg);
        let trap = result.err().map(|e| describe_trap(&e, msg.host_trap.clone(), limit));
        if let Some(t) = &trap {
            self.store.data_mut().log(format!("[TRAP]: {t}"));
        }
        let (stable_dirtied, stable_accessed) = self.state().stable.message_pages();
        Exec { trap, instructions, msg, stable_dirtied, stable_accessed, heap_dirtied: 0 }
    }

    fn live_heap(&self) -> &[u8] {
        match self.inst.as_ref().and_then(|i| i.memory) {
            Some(m) => m.data(&self.store),
            None => &[],
        }
    }

    /// Commits the open transaction: the live instance becomes the committed state.
    /// Returns the pages it changed (heap pages only if the heap is persisted).
    pub fn commit(&mut self) -> Delta {
        let Some(txn) = self.txn.take() else { return Delta::default() };
        let mut delta = Delta { stable: self.state_mut().stable.take_commit(), ..Default::default() };
        if txn.new_module {
            self.heap.clear();
            delta.heap_clear = true;
            self.committed_module = self.inst.as_ref().map(|i| i.module.clone());
        }
        let live = match self.inst.as_ref().and_then(|i| i.memory) {
            Some(m) => m.data(&self.store),
            None => &[][..],
        };
        let dirty = dirty_pages(live, &self.heap);
        delta.heap_dirtied = dirty.len() as u64;
        self.heap.resize(live.len(), 0);
        let keep = self.heap_store.is_some();
        for &p in &dirty {
            let r = p as usize * PAGE..(p as usize * PAGE + PAGE).min(live.len());
            self.heap[r.clone()].copy_from_slice(&live[r.clone()]);
            if keep {
                let mut page = crate::store::pages::zero_page();
                page[..r.len()].copy_from_slice(&live[r]);
                delta.heap_pages.push((p, page));
            }
        }
        let globals: Vec<Val> = match &self.inst {
            Some(i) => i.globals.iter().map(|g| g.get(&mut self.store)).collect(),
            None => Vec::new(),
        };
        self.globals = globals;
        delta
    }

    /// Stores committed stable pages (after they were logged).
    pub fn apply_stable(&mut self, delta: StableDelta) -> std::io::Result<()> {
        self.state_mut().stable.apply(delta)
    }

    /// Stores committed heap pages (after they were logged).
    pub fn apply_heap(&mut self, clear: bool, pages: Vec<(u64, Box<Page>)>) -> std::io::Result<()> {
        if let Some(store) = self.heap_store.as_mut() {
            if clear {
                store.clear()?;
            }
            store.put_pages(pages)?;
        }
        Ok(())
    }

    /// Rolls the open transaction back: heap, globals, stable memory, timer, certified
    /// data, cycles and the module are what they were when it began. Returns how many
    /// heap pages the transaction had changed.
    pub fn rollback(&mut self) -> u64 {
        let Some(txn) = self.txn.take() else { return 0 };
        let c = self.state_mut();
        c.restore_small(txn.small);
        c.stable.rollback();
        let committed: &[u8] = if txn.new_module { &[] } else { &self.heap };
        let dirty = dirty_pages(self.live_heap(), committed);
        let grown = self.live_heap().len() > self.heap.len();
        if txn.new_module || grown {
            if let Err(e) = self.reinstantiate() {
                self.store.data_mut().log(format!("ic-host: cannot bring the committed instance back: {e:#}"));
            }
            return dirty.len() as u64;
        }
        if let Some(mem) = self.inst.as_ref().and_then(|i| i.memory) {
            let data = mem.data_mut(&mut self.store);
            for &p in &dirty {
                let r = p as usize * PAGE..(p as usize * PAGE + PAGE).min(data.len());
                data[r.clone()].copy_from_slice(&self.heap[r]);
            }
        }
        if let Some(inst) = &self.inst {
            for (g, v) in inst.globals.iter().zip(self.globals.iter()) {
                let _ = g.set(&mut self.store, *v);
            }
        }
        dirty.len() as u64
    }

    /// A fresh store and instance of the committed module over the committed heap and
    /// globals (the old store, and the memory it held, is freed).
    fn reinstantiate(&mut self) -> Result<()> {
        let data = std::mem::take(self.store.data_mut());
        let Some(module) = self.committed_module.clone() else {
            self.store = Store::new(engine::engine(), data);
            self.inst = None;
            return Ok(());
        };
        let (mut store, inst) = match instantiate(&module, data, u64::MAX / 2) {
            Ok(x) => x,
            Err(failed) => {
                let (e, data) = *failed;
                self.store = Store::new(engine::engine(), data);
                self.inst = None;
                return Err(e);
            }
        };
        if let Some(mem) = inst.memory {
            let want = self.heap.len() as u64 / PAGE_SIZE;
            let have = mem.size(&store);
            if want > have {
                mem.grow(&mut store, want - have).map_err(|e| anyhow!("growing the restored heap: {e:#}"))?;
            }
            let data = mem.data_mut(&mut store);
            let n = self.heap.len().min(data.len());
            data[..n].copy_from_slice(&self.heap[..n]);
            data[n..].fill(0);
        }
        for (g, v) in inst.globals.iter().zip(self.globals.iter()) {
            g.set(&mut store, *v).map_err(|e| anyhow!("restoring a global: {e:#}"))?;
        }
        self.store = store;
        self.inst = Some(inst);
        Ok(())
    }
}

/// How the description of a message that ran out of instructions starts.
pub(crate) const INSTRUCTION_LIMIT_TRAP: &str = "instruction limit exceeded";

fn describe_trap(e: &wasmtime::Error, host_trap: Option<String>, limit: u64) -> String {
    if let Some(t) = host_trap {
        return t;
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!(
            "{INSTRUCTION_LIMIT_TRAP}: Canister exceeded the limit of {limit} instructions for single message execution."
        ),
        Some(trap) => format!("Canister trapped: {trap}"),
        None => format!("Canister trapped: {e:#}"),
    }
}
