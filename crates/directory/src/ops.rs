//! The directory's work across canisters. Between two awaits the state is consistent:
//! a placement is first written as pending (never visible as a location), and becomes a
//! map entry only in the message that handles the storage canister's confirmation. A
//! reject or a trap in a callback therefore leaves a pending entry at worst, which the
//! next refresh finishes (the storage canister's create is idempotent by id) or drops.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;

use candid::Principal;
use ic_management_canister_types::CanisterInstallMode;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::api::*;
use crate::calls::{self, StorageConfigUpdate, StorageError};
use crate::placement;
use crate::state::{Pending, Placed, UpgradeRun};
use crate::{with_store, MAX_NAME_LEN};

thread_local! {
    /// Placements whose create call is awaited now (a refresh leaves them alone).
    static IN_FLIGHT: RefCell<BTreeSet<u64>> = const { RefCell::new(BTreeSet::new()) };
    static UPGRADE_LIVE: Cell<bool> = const { Cell::new(false) };
    static REFRESH_LIVE: Cell<bool> = const { Cell::new(false) };
}

/// Clears a "task is running" flag when the task ends, also when a trap in one of its
/// callbacks cancels it (the cleanup callback drops the future).
struct Live(&'static std::thread::LocalKey<Cell<bool>>);
impl Live {
    /// None if the task already runs.
    fn take(flag: &'static std::thread::LocalKey<Cell<bool>>) -> Option<Live> {
        if flag.replace(true) {
            None
        } else {
            Some(Live(flag))
        }
    }
}
impl Drop for Live {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// Removes `id` from IN_FLIGHT when the future ends, a trap's cleanup included.
struct InFlight(u64);
impl InFlight {
    fn new(id: u64) -> Self {
        IN_FLIGHT.with_borrow_mut(|s| s.insert(id));
        InFlight(id)
    }
}
impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.with_borrow_mut(|s| s.remove(&self.0));
    }
}

fn now() -> u64 {
    ic_cdk::api::time()
}

pub fn location(id: u64, p: &Placed) -> CapsuleLocation {
    CapsuleLocation { capsule_id: id, canister_id: p.canister, owner: p.owner, created_at_ns: p.created_at_ns }
}

/// Places a new capsule of `owner` on the storage canister with the most room, and
/// creates it there. Two calls per capsule: the candidate's fresh room, then the create.
pub async fn create_capsule(owner: Principal, name: String, bounded: bool) -> Result<CapsuleLocation> {
    if owner == Principal::anonymous() {
        return Err(Error::Unauthorized("anonymous callers cannot create capsules".into()));
    }
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidArgument(format!("capsule name must be 1 to {MAX_NAME_LEN} bytes")));
    }
    let max = with_store(|s| s.meta().config.max_capsules_per_owner);
    if bounded && with_store(|s| s.owned_by(owner) + s.pending.iter().filter(|e| e.value().0.owner == owner).count()) >= max as usize {
        return Err(Error::NoRoom(format!("{owner} has created {max} capsules, the most one principal may (max_capsules_per_owner)")));
    }
    let id = with_store(|s| {
        let id = s.meta().next_capsule_id;
        s.update_meta(|m| m.next_capsule_id += 1);
        id
    });
    let _guard = InFlight::new(id);
    let mut tried: Vec<Principal> = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    loop {
        let chosen = with_store(|s| placement::choose(&s.storage_list(), s.meta().config.min_free_bytes, &tried));
        let Some(c) = chosen else {
            with_store(|s| s.pending.remove(&id));
            let why = if refusals.is_empty() { String::new() } else { format!(" ({})", refusals.join("; ")) };
            return Err(Error::NoRoom(format!("no storage canister has room for a new capsule{why}; an operator adds one with admin_add_storage")));
        };
        tried.push(c);
        with_store(|s| {
            s.pending.insert(id, crate::state::Candid(Pending { canister: c, owner, name: name.clone() }))
        });
        match calls::stored_bytes(c).await {
            Ok(stored) => {
                let full = with_store(|s| {
                    let min = s.meta().config.min_free_bytes;
                    let st = s.update_storage(c, |st| {
                        st.stored_bytes = stored;
                        st.refreshed_at_ns = now();
                        st.state = placement::state_for_room(st, min);
                    });
                    st.is_none_or(|st| st.state != StorageState::Active)
                });
                if full {
                    refusals.push(format!("{c} is full"));
                    continue;
                }
            }
            Err(e) => {
                with_store(|s| s.set_state(c, StorageState::Unreachable, Some(e.clone())));
                refusals.push(e);
                continue;
            }
        }
        match calls::create_capsule(c, id, owner, &name).await {
            Ok(Ok(cap)) => {
                let placed = Placed { canister: c, owner, created_at_ns: cap.created_at_ns };
                with_store(|s| s.place(id, placed.clone()));
                return Ok(location(id, &placed));
            }
            Ok(Err(StorageError::QuotaExceeded(m))) => {
                with_store(|s| s.set_state(c, StorageState::Full, Some(m.clone())));
                refusals.push(format!("{c}: {m}"));
            }
            Ok(Err(e)) => {
                with_store(|s| s.pending.remove(&id));
                return Err(Error::Storage(format!("storage canister {c} refused the capsule: {e}")));
            }
            Err(e) => {
                with_store(|s| s.set_state(c, StorageState::Unreachable, Some(e.clone())));
                refusals.push(e);
            }
        }
    }
}

/// Creates a storage canister, installs the stored `backend` Wasm in directory mode and
/// adds it to the placement list. It is listed (Closed) as soon as it exists, so a
/// failure after creation never loses it.
pub async fn add_storage(args: AddStorageArgs, caller: Principal) -> Result<StorageInfo> {
    let (wasm, cfg) = with_store(|s| (s.wasm.get().0.clone().into_vec(), s.meta().config));
    if wasm.is_empty() {
        return Err(Error::InvalidArgument("no storage Wasm yet: call admin_set_storage_wasm first".into()));
    }
    let cycles = args.cycles.unwrap_or(cfg.new_storage_cycles);
    let capacity = args.capacity_bytes.unwrap_or(cfg.storage_capacity_bytes);
    let balance = ic_cdk::api::canister_cycle_balance();
    if balance < cycles as u128 {
        return Err(Error::NoRoom(format!("the directory holds {balance} cycles; a new storage canister takes {cycles}")));
    }
    let me = ic_cdk::api::canister_self();
    let mut controllers = vec![me];
    for p in args.controllers.unwrap_or_else(|| vec![caller]) {
        if !controllers.contains(&p) {
            controllers.push(p);
        }
    }
    let id = calls::create_canister(controllers, cycles).await.map_err(Error::Storage)?;
    let info = StorageInfo {
        canister_id: id,
        state: StorageState::Closed,
        capsules: 0,
        stored_bytes: 0,
        capacity_bytes: capacity,
        cycles,
        module_sha256: None,
        refreshed_at_ns: now(),
        last_error: Some("being set up".into()),
    };
    with_store(|s| s.add_storage(info));
    let setup = async {
        calls::install(id, CanisterInstallMode::Install, wasm).await?;
        let update = StorageConfigUpdate { max_stored_bytes: Some(capacity), directory: Some(me) };
        calls::configure(id, update).await?.map_err(|e| e.to_string())?;
        calls::status(id).await
    };
    match setup.await {
        Ok(st) => {
            let info = with_store(|s| {
                s.update_storage(id, |i| {
                    i.state = StorageState::Active;
                    i.module_sha256 = st.module_sha256.map(ByteBuf::from);
                    i.cycles = st.cycles;
                    i.last_error = None;
                })
            });
            Ok(info.expect("listed when it was created"))
        }
        Err(e) => {
            with_store(|s| s.set_state(id, StorageState::Closed, Some(format!("setup failed: {e}"))));
            Err(Error::Storage(format!("storage canister {id} was created but not set up (left Closed): {e}")))
        }
    }
}

/// Stores the storage canisters' Wasm (what `admin_add_storage` installs and
/// `admin_upgrade_storage` rolls out); returns its SHA-256.
pub fn set_wasm(wasm: Vec<u8>) -> Result<ByteBuf> {
    let is_wasm = wasm.starts_with(b"\0asm") || wasm.starts_with(&[0x1f, 0x8b]);
    if !is_wasm {
        return Err(Error::InvalidArgument("not a Wasm module (nor a gzipped one)".into()));
    }
    if with_store(|s| s.meta().upgrade.is_some_and(|u| u.status.state == UpgradeState::Running)) {
        return Err(Error::Conflict("a rolling upgrade is running; let it finish first".into()));
    }
    let hash = ByteBuf::from(Sha256::digest(&wasm).to_vec());
    with_store(|s| {
        s.wasm.set(crate::state::Candid(ByteBuf::from(wasm)));
        s.update_meta(|m| m.wasm_sha256 = Some(hash.clone()));
    });
    Ok(hash)
}

/// One look at every storage canister: reachability, room, cycles (topped up below the
/// threshold), then the placements left pending by a failure are finished or dropped.
pub async fn refresh() -> Vec<StorageInfo> {
    let Some(_live) = Live::take(&REFRESH_LIVE) else {
        return with_store(|s| s.storage_list());
    };
    let list = with_store(|s| s.storage_list());
    for info in list {
        let id = info.canister_id;
        if info.state == StorageState::Upgrading {
            continue;
        }
        match calls::status(id).await {
            Ok(st) if st.running => {
                with_store(|s| {
                    s.update_storage(id, |i| {
                        i.cycles = st.cycles;
                        i.module_sha256 = st.module_sha256.map(ByteBuf::from);
                    })
                });
                match calls::room(id).await {
                    Ok((stored, capacity)) => with_store(|s| {
                        let min = s.meta().config.min_free_bytes;
                        s.update_storage(id, |i| {
                            i.stored_bytes = stored;
                            i.capacity_bytes = capacity;
                            i.refreshed_at_ns = now();
                            i.state = placement::state_for_room(i, min);
                            i.last_error = None;
                        });
                    }),
                    Err(e) => with_store(|s| s.set_state(id, StorageState::Unreachable, Some(e))),
                }
                // After the room (which clears the last error): a failed top-up stays reported.
                top_up(id, st.cycles).await;
            }
            Ok(_) => with_store(|s| s.set_state(id, StorageState::Unreachable, Some(format!("{id} is stopped")))),
            Err(e) => with_store(|s| s.set_state(id, StorageState::Unreachable, Some(e))),
        }
    }
    reconcile().await;
    with_store(|s| s.storage_list())
}

async fn top_up(id: Principal, cycles: u64) {
    let cfg = with_store(|s| s.meta().config);
    if cycles >= cfg.top_up_below {
        return;
    }
    // Keep enough to create one more storage canister.
    let spare = ic_cdk::api::canister_cycle_balance().saturating_sub(cfg.new_storage_cycles as u128);
    if spare < cfg.top_up_cycles as u128 {
        with_store(|s| s.update_storage(id, |i| i.last_error = Some(format!("needs cycles; the directory has {spare} to spare"))));
        return;
    }
    match calls::deposit_cycles(id, cfg.top_up_cycles).await {
        Ok(()) => with_store(|s| s.update_storage(id, |i| i.cycles = cycles.saturating_add(cfg.top_up_cycles))),
        Err(e) => with_store(|s| s.update_storage(id, |i| i.last_error = Some(e))),
    };
}

/// Finishes or drops placements that a reject or a trap left pending.
async fn reconcile() {
    let pending: Vec<(u64, Pending)> = with_store(|s| s.pending.iter().map(|e| (*e.key(), e.value().0)).collect());
    for (id, p) in pending {
        if IN_FLIGHT.with_borrow(|f| f.contains(&id)) {
            continue;
        }
        let _guard = InFlight::new(id);
        match calls::create_capsule(p.canister, id, p.owner, &p.name).await {
            Ok(Ok(cap)) => with_store(|s| {
                if s.pending.contains_key(&id) {
                    s.place(id, Placed { canister: p.canister, owner: p.owner, created_at_ns: cap.created_at_ns })
                }
            }),
            // A typed refusal: the capsule does not exist there; forget the placement.
            Ok(Err(_)) => with_store(|s| {
                s.pending.remove(&id);
            }),
            Err(_) => {} // unreachable now: the next refresh tries again
        }
    }
}

/// Starts (or resumes) a rolling upgrade of every storage canister to the stored Wasm.
pub fn start_upgrade() -> Result<UpgradeStatus> {
    let status = with_store(|s| {
        let meta = s.meta();
        let Some(hash) = meta.wasm_sha256.clone() else {
            return Err(Error::InvalidArgument("no storage Wasm yet: call admin_set_storage_wasm first".into()));
        };
        if let Some(run) = meta.upgrade.as_ref().filter(|u| u.status.wasm_sha256 == hash && u.status.state != UpgradeState::Done) {
            // Same Wasm: resume where it stopped (a failed canister is tried again).
            let mut run = run.clone();
            run.status.state = UpgradeState::Running;
            run.status.finished_at_ns = None;
            s.update_meta(|m| m.upgrade = Some(run.clone()));
            return Ok(run.status);
        }
        if meta.upgrade.as_ref().is_some_and(|u| u.status.state == UpgradeState::Running) {
            return Err(Error::Conflict("a rolling upgrade to another Wasm is running".into()));
        }
        let order: Vec<Principal> = s.storage_list().iter().map(|i| i.canister_id).collect();
        let run = UpgradeRun {
            status: UpgradeStatus {
                wasm_sha256: hash,
                state: UpgradeState::Running,
                total: order.len() as u32,
                done: 0,
                current: order.first().copied(),
                started_at_ns: now(),
                finished_at_ns: None,
            },
            order,
        };
        s.update_meta(|m| m.upgrade = Some(run.clone()));
        Ok(run.status)
    })?;
    ensure_upgrade_task();
    Ok(status)
}

/// Runs the upgrade task if a run is Running and no task is (after an upgrade of the
/// directory itself, too).
pub fn ensure_upgrade_task() {
    let running = with_store(|s| s.meta().upgrade.is_some_and(|u| u.status.state == UpgradeState::Running));
    if !running {
        return;
    }
    if let Some(live) = Live::take(&UPGRADE_LIVE) {
        ic_cdk::futures::spawn(async move {
            let _live = live;
            run_upgrade().await;
        });
    }
}

async fn run_upgrade() {
    loop {
        let Some(run) = with_store(|s| s.meta().upgrade) else { return };
        if run.status.state != UpgradeState::Running {
            return;
        }
        let Some(&target) = run.order.get(run.status.done as usize) else {
            with_store(|s| {
                s.update_meta(|m| {
                    if let Some(u) = m.upgrade.as_mut() {
                        u.status.state = UpgradeState::Done;
                        u.status.current = None;
                        u.status.finished_at_ns = Some(now());
                    }
                })
            });
            return;
        };
        with_store(|s| s.update_meta(|m| m.upgrade.as_mut().expect("run").status.current = Some(target)));
        let outcome = upgrade_one(target, &run.status.wasm_sha256).await;
        with_store(|s| {
            s.update_meta(|m| {
                let u = m.upgrade.as_mut().expect("run");
                match outcome {
                    Ok(()) => {
                        u.status.done += 1;
                        u.status.current = u.order.get(u.status.done as usize).copied();
                    }
                    Err(e) => {
                        u.status.state = UpgradeState::Failed(format!("{target}: {e}"));
                        u.status.finished_at_ns = Some(now());
                    }
                }
            })
        });
    }
}

/// Stop, upgrade, start one storage canister; no new capsules go to it meanwhile. A
/// canister already running the target module is left alone (resuming is idempotent).
async fn upgrade_one(id: Principal, target: &ByteBuf) -> std::result::Result<(), String> {
    let prior = with_store(|s| s.storage_get(id).map(|i| i.state));
    let Some(prior) = prior else { return Ok(()) }; // no longer listed
    let restore = if prior == StorageState::Upgrading { StorageState::Active } else { prior };
    with_store(|s| s.set_state(id, StorageState::Upgrading, None));
    let result = async {
        let st = calls::status(id).await?;
        if st.running && st.module_sha256.as_deref() == Some(target.as_slice()) {
            return Ok(());
        }
        calls::stop(id).await?;
        let wasm = with_store(|s| s.wasm.get().0.clone().into_vec());
        let installed = calls::install(id, CanisterInstallMode::Upgrade(None), wasm).await;
        let started = calls::start(id).await;
        installed?;
        started?;
        let after = calls::status(id).await?;
        if after.module_sha256.as_deref() != Some(target.as_slice()) {
            return Err("its module hash after the upgrade is not the target's".to_string());
        }
        Ok(())
    }
    .await;
    with_store(|s| {
        s.update_storage(id, |i| {
            i.state = restore;
            match &result {
                Ok(()) => i.module_sha256 = Some(target.clone()),
                Err(e) => i.last_error = Some(e.clone()),
            }
        })
    });
    result
}
