//! Creating, installing, upgrading and deleting canisters (for the management canister
//! and the host's own API). Each of these is one transaction of the canister.

use candid::Principal;

use crate::canister::{Canister, Delta, Entry, Exec};
use crate::engine::CompiledModule;
use crate::host::{canister_id_of, reject, reject_code::*, ErrorCode, Host, Limits, Reject, UpgradeCost};
use crate::stable::{StableDelta, StableMemory, DEFAULT_MAX_STABLE_PAGES};
use crate::state::{CanisterState, CanisterStatus, Message, MessageKind};
use crate::store::pages::Pages;
use crate::store::wal::Mem;

impl Host {
    /// Creates an empty canister (`id`, else the next free id).
    pub(crate) fn create(&mut self, id: Option<Principal>, controllers: Vec<Principal>, cycles: u128) -> Result<Principal, Reject> {
        let id = match id {
            Some(id) if self.canisters.contains_key(&id) || id == Principal::management_canister() => {
                return Err(reject(CANISTER_ERROR, format!("Canister {id} already exists")));
            }
            Some(id) => {
                // Ids are never handed out twice: not one taken explicitly either.
                let b = id.as_slice();
                if b.len() == 10 && b[8..] == [1, 1] {
                    let index = u64::from_be_bytes(b[..8].try_into().unwrap_or_default());
                    self.next_canister = self.next_canister.max(index.saturating_add(1));
                }
                id
            }
            None => loop {
                let id = canister_id_of(self.next_canister);
                self.next_canister += 1;
                if !self.canisters.contains_key(&id) {
                    break id;
                }
            },
        };
        let io = |e: anyhow::Error| reject(SYS_TRANSIENT, format!("ic-host: creating the canister's files: {e:#}"));
        let (stable, heap) = match &self.store {
            None => (Pages::default(), None),
            Some(s) => (s.pages(&id, Mem::Stable, true).map_err(io)?, Some(s.pages(&id, Mem::Heap, true).map_err(io)?)),
        };
        let state = CanisterState {
            canister_id: id,
            controllers,
            stable: StableMemory::new(DEFAULT_MAX_STABLE_PAGES, stable),
            cycle_balance: cycles,
            status: CanisterStatus::Running,
            ..Default::default()
        };
        self.canisters.insert(id, Canister::empty(state, heap));
        // A new canister starts from empty files, also when the log is replayed.
        let fresh = Delta { stable: StableDelta { clear: true, pages: Vec::new() }, heap_clear: true, ..Default::default() };
        self.step.push((id, fresh));
        Ok(id)
    }

    pub(crate) fn delete(&mut self, id: Principal) {
        self.canisters.remove(&id);
        self.pending_stops.remove(&id);
        self.step.retain(|(c, _)| *c != id);
        if self.default == Some(id) {
            self.default = None;
        }
    }

    /// Keeps `wasm` in the store (persistent hosts), so the canister can be restored.
    pub(crate) fn save_module(&self, hash: &[u8; 32], wasm: &[u8]) -> Result<(), Reject> {
        match &self.store {
            Some(s) => s
                .save_module(hash, wasm)
                .map_err(|e| reject(SYS_TRANSIENT, format!("ic-host: keeping the module: {e:#}"))),
            None => Ok(()),
        }
    }

    /// Install (or, `reinstall`: wipe and install): a fresh instance of `module`, then
    /// `canister_init(arg)` called by `caller`. Returns the instructions of the install:
    /// compiling the module plus `canister_init`, within [`crate::Limit::Install`].
    pub(crate) fn install_fresh(
        &mut self,
        id: Principal,
        module: &CompiledModule,
        arg: &[u8],
        caller: Principal,
        reinstall: bool,
    ) -> Result<u64, Reject> {
        let (time, limits) = (self.time, self.limits);
        let compilation = module.compilation_cost;
        let budget = install_budget(limits.install, compilation)?;
        let Some(c) = self.canisters.get_mut(&id) else {
            return Err(reject(DESTINATION_INVALID, format!("Canister {id} not found")).with(ErrorCode::CanisterNotFound));
        };
        c.begin();
        if reinstall {
            let s = c.state_mut();
            s.stable.clear();
            s.global_timer = 0;
            s.certified_data.clear();
        }
        if let Err(e) = c.install_module(module, budget) {
            c.rollback();
            return Err(reject(CANISTER_ERROR, format!("ic-host: cannot instantiate the module of {id}: {e:#}")));
        }
        let mut instructions = compilation;
        if c.has_func("canister_init") {
            let mut exec = run_hook(c, MessageKind::Init, "canister_init", caller.as_slice().to_vec(), arg, time, &limits, budget);
            instructions += exec.instructions;
            if let Some(t) = exec.trap.clone() {
                exec.heap_dirtied = c.rollback();
                self.record(id, &exec, Err(reject(CANISTER_ERROR, t.clone())));
                return Err(reject(CANISTER_ERROR, format!("canister_init trapped: {t}")));
            }
            c.state_mut().canister_version += 1;
            let delta = c.commit();
            exec.heap_dirtied = delta.heap_dirtied;
            self.step.push((id, delta));
            self.record(id, &exec, Ok(Vec::new()));
        } else {
            c.state_mut().canister_version += 1;
            let delta = c.commit();
            self.step.push((id, delta));
        }
        Ok(instructions)
    }

    /// `canister_pre_upgrade` on the old instance, a fresh instance of `module` (heap
    /// gone, stable memory kept), `canister_post_upgrade(arg)`; all or nothing.
    pub(crate) fn upgrade_canister(
        &mut self,
        id: Principal,
        module: &CompiledModule,
        arg: &[u8],
        caller: Principal,
        skip_pre_upgrade: bool,
    ) -> Result<UpgradeCost, Reject> {
        let (time, limits) = (self.time, self.limits);
        let compilation = module.compilation_cost;
        let budget = install_budget(limits.install, compilation)?;
        let caller = caller.as_slice().to_vec();
        let Some(c) = self.canisters.get_mut(&id) else {
            return Err(reject(DESTINATION_INVALID, format!("Canister {id} not found")).with(ErrorCode::CanisterNotFound));
        };
        c.begin();
        let mut records = Vec::new();
        let mut pre = 0;
        if !skip_pre_upgrade && c.has_func("canister_pre_upgrade") {
            let exec = run_hook(c, MessageKind::PreUpgrade, "canister_pre_upgrade", caller.clone(), &[], time, &limits, budget);
            pre = exec.instructions;
            let trap = exec.trap.clone();
            records.push(exec);
            if let Some(t) = trap {
                c.rollback();
                self.record_all(id, records);
                return Err(reject(CANISTER_ERROR, format!("pre_upgrade trapped: {t}")));
            }
        }
        let s = c.state_mut();
        s.global_timer = 0; // the IC deactivates the timer on upgrade
        s.canister_version += 1;
        if let Err(e) = c.install_module(module, budget.saturating_sub(pre)) {
            c.rollback();
            self.record_all(id, records);
            return Err(reject(CANISTER_ERROR, format!("ic-host: cannot instantiate the new module: {e:#}")));
        }
        let mut post = 0;
        if c.has_func("canister_post_upgrade") {
            let exec = run_hook(c, MessageKind::PostUpgrade, "canister_post_upgrade", caller, arg, time, &limits, budget.saturating_sub(pre));
            post = exec.instructions;
            let trap = exec.trap.clone();
            records.push(exec);
            if let Some(t) = trap {
                c.rollback();
                self.record_all(id, records);
                return Err(reject(CANISTER_ERROR, format!("post_upgrade trapped: {t}")));
            }
        }
        let delta = c.commit();
        self.step.push((id, delta));
        self.record_all(id, records);
        Ok(UpgradeCost { instructions: pre + compilation + post, pre_upgrade: pre, compilation, post_upgrade: post })
    }

    fn record_all(&mut self, id: Principal, execs: Vec<crate::canister::Exec>) {
        for e in execs {
            let r = match &e.trap {
                Some(t) => Err(reject(CANISTER_ERROR, t.clone())),
                None => Ok(Vec::new()),
            };
            self.record(id, &e, r);
        }
    }
}

/// Runs one lifecycle hook (`canister_init`, `canister_pre_upgrade`, …) of `c`, which has it.
#[allow(clippy::too_many_arguments)]
fn run_hook(c: &mut Canister, kind: MessageKind, name: &str, caller: Vec<u8>, arg: &[u8], time: u64, limits: &Limits, budget: u64) -> Exec {
    let mut msg = Message::new(kind, name, caller, arg.to_vec());
    msg.time = time;
    limits.apply_pages(&mut msg);
    c.execute(&Entry::Export(name.into()), msg, budget)
}

/// The instructions an install or upgrade leaves for Wasm execution once its module is
/// compiled (the IC counts compilation against the same limit).
fn install_budget(limit: u64, compilation: u64) -> Result<u64, Reject> {
    limit.checked_sub(compilation).filter(|&b| b > 0).ok_or_else(|| {
        reject(
            CANISTER_ERROR,
            format!("compiling the module costs {compilation} instructions, more than the limit of {limit} for install_code"),
        )
    })
}
