//! The management canister (`aaaaa-aa`): the subset a local network needs, with the
//! IC's Candid types (`ic-management-canister-types`) and its permission rules.
//!
//! `provisional_create_canister_with_cycles`, `create_canister` (canisters only; the
//! attached cycles become the new canister's balance), `install_code` (install,
//! reinstall, upgrade), `canister_status`, `update_settings` (controllers; other settings
//! are accepted and not enforced), `start_canister`, `stop_canister`, `delete_canister`,
//! `deposit_cycles`, `provisional_top_up_canister` and `raw_rand`. Everything that acts
//! on a canister is refused to callers that are not its controllers (`canister_status`
//! also answers the canister itself).

use candid::{CandidType, Nat, Principal};
use ic_management_canister_types as mgmt;
use serde::de::DeserializeOwned;

use crate::engine;
use crate::host::{reject, reject_code::*, ErrorCode, Host, Reject, DEFAULT_CYCLES};
use crate::network::CtxId;
use crate::state::CanisterStatus;

/// Most controllers a canister may have.
const MAX_CONTROLLERS: usize = 10;

pub(crate) fn empty_reply() -> Vec<u8> {
    candid::encode_args(()).unwrap_or_default()
}

fn decode<T: DeserializeOwned + CandidType>(method: &str, arg: &[u8]) -> Result<T, Reject> {
    candid::decode_one(arg).map_err(|e| reject(CANISTER_ERROR, format!("Error decoding the argument of ic00 method {method}: {e}")))
}

fn encode<T: CandidType>(v: &T) -> Result<Vec<u8>, Reject> {
    candid::encode_one(v).map_err(|e| reject(CANISTER_ERROR, format!("ic-host: encoding a management reply: {e}")))
}

fn nat_u128(n: &Nat, what: &str) -> Result<u128, Reject> {
    u128::try_from(n.0.clone()).map_err(|_| reject(CANISTER_ERROR, format!("{what} is too large")))
}

fn check_controllers(c: &[Principal]) -> Result<(), Reject> {
    if c.len() > MAX_CONTROLLERS {
        return Err(reject(CANISTER_ERROR, format!("Invalid settings: at most {MAX_CONTROLLERS} controllers are allowed")));
    }
    Ok(())
}

/// What a management call came to.
pub(crate) enum Outcome {
    Done(Result<Vec<u8>, Reject>),
    /// `stop_canister` of a canister that still has open calls: answered when it stops.
    Deferred,
}

impl Host {
    /// Handles a management call in context `ctx` (its attached cycles are the context's;
    /// whatever is not used goes back with the response) and closes the context unless
    /// the answer is deferred.
    pub(crate) fn management_call(&mut self, ctx: CtxId, caller: Principal, method: &str, arg: &[u8]) {
        let outcome = match self.management_method(ctx, caller, method, arg) {
            Ok(o) => o,
            Err(r) => Outcome::Done(Err(r)),
        };
        if let Outcome::Done(r) = outcome {
            self.respond(ctx, r);
            self.contexts.remove(&ctx);
        }
    }

    fn take_cycles(&mut self, ctx: CtxId) -> u128 {
        self.contexts.get_mut(&ctx).map_or(0, |c| std::mem::take(&mut c.cycles))
    }

    fn is_canister(&self, p: &Principal) -> bool {
        self.canisters.contains_key(p)
    }

    /// Refuses `caller` unless it controls `canister` (or, if `self_ok`, is it).
    pub(crate) fn require_controller(&self, canister: Principal, caller: Principal, method: &str, self_ok: bool) -> Result<(), Reject> {
        let Some(c) = self.canisters.get(&canister) else {
            return Err(reject(DESTINATION_INVALID, format!("Canister {canister} not found")).with(ErrorCode::CanisterNotFound));
        };
        if c.state().controllers.contains(&caller) || (self_ok && caller == canister) {
            return Ok(());
        }
        Err(reject(
            CANISTER_ERROR,
            format!(
                "Only the controllers of the canister {canister} can call ic00 method {method} (caller {caller}, controllers: {})",
                c.state().controllers.iter().map(|p| p.to_text()).collect::<Vec<_>>().join(" ")
            ),
        )
        .with(ErrorCode::CanisterInvalidController))
    }

    fn management_method(&mut self, ctx: CtxId, caller: Principal, method: &str, arg: &[u8]) -> Result<Outcome, Reject> {
        let done = |r: Vec<u8>| Ok(Outcome::Done(Ok(r)));
        match method {
            "provisional_create_canister_with_cycles" => {
                let a: mgmt::ProvisionalCreateCanisterWithCyclesArgs = decode(method, arg)?;
                let cycles = match &a.amount {
                    Some(n) => nat_u128(n, "amount")?,
                    None => DEFAULT_CYCLES,
                };
                let controllers = a.settings.and_then(|s| s.controllers).unwrap_or_else(|| vec![caller]);
                check_controllers(&controllers)?;
                let id = self.create(a.specified_id, controllers, cycles)?;
                done(encode(&mgmt::CanisterIdRecord { canister_id: id })?)
            }
            "create_canister" => {
                if !self.is_canister(&caller) {
                    return Err(reject(
                        CANISTER_REJECT,
                        "create_canister can only be called by canisters; use provisional_create_canister_with_cycles",
                    ));
                }
                let a: mgmt::CreateCanisterArgs = decode(method, arg)?;
                let controllers = a.settings.and_then(|s| s.controllers).unwrap_or_else(|| vec![caller]);
                check_controllers(&controllers)?;
                let cycles = self.take_cycles(ctx);
                let id = self.create(None, controllers, cycles)?;
                done(encode(&mgmt::CanisterIdRecord { canister_id: id })?)
            }
            "install_code" => {
                let a: mgmt::InstallCodeArgs = decode(method, arg)?;
                self.require_controller(a.canister_id, caller, method, false)?;
                self.install_code(a.canister_id, a.mode, &a.wasm_module, &a.arg, caller)?;
                done(empty_reply())
            }
            "canister_status" => {
                let a: mgmt::CanisterIdRecord = decode(method, arg)?;
                self.require_controller(a.canister_id, caller, method, true)?;
                done(encode(&self.status_of(a.canister_id))?)
            }
            "update_settings" => {
                let a: mgmt::UpdateSettingsArgs = decode(method, arg)?;
                self.require_controller(a.canister_id, caller, method, false)?;
                if let Some(controllers) = a.settings.controllers {
                    check_controllers(&controllers)?;
                    if let Some(c) = self.canisters.get_mut(&a.canister_id) {
                        let s = c.state_mut();
                        s.controllers = controllers;
                        s.canister_version += 1;
                    }
                }
                done(empty_reply())
            }
            "start_canister" => {
                let a: mgmt::CanisterIdRecord = decode(method, arg)?;
                self.require_controller(a.canister_id, caller, method, false)?;
                if let Some(c) = self.canisters.get_mut(&a.canister_id) {
                    c.state_mut().status = CanisterStatus::Running;
                }
                for stop in self.pending_stops.remove(&a.canister_id).unwrap_or_default() {
                    let r = reject(CANISTER_ERROR, format!("Canister {} was started before it stopped", a.canister_id));
                    self.respond(stop, Err(r));
                    self.contexts.remove(&stop);
                }
                done(empty_reply())
            }
            "stop_canister" => {
                let a: mgmt::CanisterIdRecord = decode(method, arg)?;
                self.require_controller(a.canister_id, caller, method, false)?;
                let id = a.canister_id;
                if self.canisters[&id].state().status == CanisterStatus::Stopped {
                    return done(empty_reply());
                }
                if let Some(c) = self.canisters.get_mut(&id) {
                    c.state_mut().status = CanisterStatus::Stopping;
                }
                self.pending_stops.entry(id).or_default().push(ctx);
                self.settle_stopping();
                Ok(Outcome::Deferred)
            }
            "delete_canister" => {
                let a: mgmt::CanisterIdRecord = decode(method, arg)?;
                self.require_controller(a.canister_id, caller, method, false)?;
                if self.canisters[&a.canister_id].state().status != CanisterStatus::Stopped {
                    return Err(reject(CANISTER_ERROR, format!("Canister {} must be stopped before it is deleted", a.canister_id)));
                }
                self.delete(a.canister_id);
                done(empty_reply())
            }
            "deposit_cycles" => {
                let a: mgmt::CanisterIdRecord = decode(method, arg)?;
                if !self.is_canister(&a.canister_id) {
                    return Err(reject(DESTINATION_INVALID, format!("Canister {} not found", a.canister_id)).with(ErrorCode::CanisterNotFound));
                }
                let cycles = self.take_cycles(ctx);
                if let Some(c) = self.canisters.get_mut(&a.canister_id) {
                    c.state_mut().cycle_balance += cycles;
                }
                done(empty_reply())
            }
            "provisional_top_up_canister" => {
                let a: mgmt::ProvisionalTopUpCanisterArgs = decode(method, arg)?;
                let amount = nat_u128(&a.amount, "amount")?;
                let Some(c) = self.canisters.get_mut(&a.canister_id) else {
                    return Err(reject(DESTINATION_INVALID, format!("Canister {} not found", a.canister_id)).with(ErrorCode::CanisterNotFound));
                };
                let s = c.state_mut();
                s.cycle_balance = s.cycle_balance.saturating_add(amount);
                done(empty_reply())
            }
            "raw_rand" => {
                let seed = [self.time.to_le_bytes(), ctx.to_le_bytes()].concat();
                done(encode(&serde_bytes::ByteBuf::from(engine::sha256(&seed).to_vec()))?)
            }
            _ => Err(reject(DESTINATION_INVALID, format!("ic-host: the management canister has no method '{method}'")).with(ErrorCode::CanisterMethodNotFound)),
        }
    }

    /// `install_code` on `id` by `caller` (already checked to be a controller).
    pub(crate) fn install_code(
        &mut self,
        id: Principal,
        mode: mgmt::CanisterInstallMode,
        wasm: &[u8],
        arg: &[u8],
        caller: Principal,
    ) -> Result<(), Reject> {
        let module = engine::load_module(wasm)
            .map_err(|e| reject(CANISTER_ERROR, format!("Wasm module of canister {id} is not valid: {e:#}")).with(ErrorCode::CanisterInvalidWasm))?;
        self.save_module(&module.wasm_hash, wasm)?;
        let installed = self.canisters.get(&id).and_then(|c| c.module()).is_some();
        match mode {
            mgmt::CanisterInstallMode::Install if installed => Err(reject(
                CANISTER_ERROR,
                format!("Canister {id} cannot be installed because the canister is not empty. Try installing with mode='reinstall' instead."),
            )),
            mgmt::CanisterInstallMode::Install => self.install_fresh(id, &module, arg, caller, false).map(|_| ()),
            mgmt::CanisterInstallMode::Reinstall => self.install_fresh(id, &module, arg, caller, true).map(|_| ()),
            mgmt::CanisterInstallMode::Upgrade(_) if !installed => {
                Err(reject(CANISTER_ERROR, format!("Canister {id} is empty: there is nothing to upgrade")).with(ErrorCode::CanisterWasmModuleNotFound))
            }
            mgmt::CanisterInstallMode::Upgrade(flags) => {
                let flags = flags.unwrap_or_default();
                if flags.wasm_memory_persistence == Some(mgmt::WasmMemoryPersistence::Keep) {
                    return Err(reject(CANISTER_ERROR, "ic-host does not support wasm_memory_persistence = keep"));
                }
                self.upgrade_canister(id, &module, arg, caller, flags.skip_pre_upgrade.unwrap_or(false)).map(|_| ())
            }
        }
    }

    /// The `canister_status` record of `id` (which exists).
    pub(crate) fn status_of(&self, id: Principal) -> mgmt::CanisterStatusResult {
        let c = &self.canisters[&id];
        let s = c.state();
        let n = |v: u64| Nat::from(v);
        let (wasm_len, hash) = c.module().map_or((0, None), |m| (m.wasm_len, Some(m.wasm_hash.to_vec())));
        let (heap, stable) = (c.heap_len() as u64, s.stable.size_bytes());
        mgmt::CanisterStatusResult {
            status: match s.status {
                CanisterStatus::Running => mgmt::CanisterStatusType::Running,
                CanisterStatus::Stopping => mgmt::CanisterStatusType::Stopping,
                CanisterStatus::Stopped => mgmt::CanisterStatusType::Stopped,
            },
            ready_for_migration: false,
            version: s.canister_version,
            settings: mgmt::DefiniteCanisterSettings {
                controllers: s.controllers.clone(),
                compute_allocation: n(0),
                memory_allocation: n(0),
                freezing_threshold: n(2_592_000),
                reserved_cycles_limit: n(5_000_000_000_000),
                minimum_incoming_canister_call_cycles: n(0),
                log_visibility: mgmt::LogVisibility::Controllers,
                log_memory_limit: n(4096),
                snapshot_visibility: mgmt::SnapshotVisibility::Controllers,
                status_visibility: mgmt::StatusVisibility::Controllers,
                wasm_memory_limit: n(3 << 30),
                wasm_memory_threshold: n(0),
                environment_variables: Vec::new(),
            },
            module_hash: hash,
            memory_size: n(heap + stable + wasm_len as u64),
            memory_metrics: mgmt::MemoryMetrics {
                wasm_memory_size: n(heap),
                stable_memory_size: n(stable),
                global_memory_size: n(0),
                wasm_binary_size: n(wasm_len as u64),
                custom_sections_size: n(0),
                canister_history_size: n(0),
                wasm_chunk_store_size: n(0),
                snapshots_size: n(0),
                log_memory_store_size: n(0),
            },
            cycles: Nat::from(s.cycle_balance),
            reserved_cycles: n(0),
            idle_cycles_burned_per_day: n(0),
            query_stats: mgmt::QueryStats {
                num_calls_total: n(0),
                num_instructions_total: n(0),
                request_payload_bytes_total: n(0),
                response_payload_bytes_total: n(0),
            },
        }
    }
}
