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
/// `bounded`: not a controller, so the per-owner limit and the sign-up policy apply.
/// Every refusal leaves the state as it was (the window, the sign-up count and the
/// invite code are given back).
pub async fn create_capsule(owner: Principal, name: String, invite: Option<String>, bounded: bool) -> Result<CapsuleLocation> {
    if owner == Principal::anonymous() {
        return Err(Error::Unauthorized("anonymous callers cannot create capsules".into()));
    }
    let name = name.trim().to_string();
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(Error::InvalidArgument(format!("capsule name must be 1 to {MAX_NAME_LEN} bytes")));
    }
    if invite.as_ref().is_some_and(|c| c.len() > MAX_INVITE_LEN) {
        return Err(Error::InvalidArgument(format!("an invite code is at most {MAX_INVITE_LEN} bytes")));
    }
    // Checks and reservations in one message (no await between them): two creates
    // cannot both take the last slot.
    // Meta is read once and written once (each read decodes its Candid).
    let (reserved, id) = with_store(|s| -> Result<(Reservation, u64)> {
        let mut meta = s.meta();
        let mut reserved = Reservation::default();
        if bounded {
            let max = meta.config.max_capsules_per_owner;
            if s.owned_by(owner) + s.pending.iter().filter(|e| e.value().0.owner == owner).count() >= max as usize {
                return Err(Error::NoRoom(format!("{owner} has created {max} capsules, the most one principal may (max_capsules_per_owner)")));
            }
            let code_hash = invite.as_deref().map(invite_hash);
            let expiry = code_hash.and_then(|h| s.invites.get(&h));
            let policy = meta.config.signup.clone().unwrap_or_else(crate::state::default_signup);
            let made = meta.signup_capsules.unwrap_or(s.capsules.len() + s.pending.len());
            match placement::signup(&policy, now(), meta.signup_window, made, invite.is_some(), expiry) {
                placement::Signup::Full(m) => return Err(Error::NoRoom(m)),
                placement::Signup::NoInvite(m) => return Err(Error::Unauthorized(m)),
                placement::Signup::Open { window_start, new_in_window } => {
                    meta.signup_window = Some((window_start, new_in_window));
                    meta.signup_capsules = Some(made + 1);
                    reserved = Reservation { window: Some(window_start), signup: true, invite: None };
                }
                placement::Signup::Invite => {
                    let h = code_hash.expect("a code was given");
                    let exp = s.invites.remove(&h).expect("checked above");
                    reserved = Reservation { window: None, signup: false, invite: Some((h, exp)) };
                }
            }
        }
        let id = meta.next_capsule_id;
        meta.next_capsule_id += 1;
        s.meta.set(crate::state::Candid(meta));
        Ok((reserved, id))
    })?;
    let _guard = InFlight::new(id);
    let refused = |e: Error| {
        with_store(|s| {
            s.pending.remove(&id);
            reserved.give_back(s);
        });
        Err(e)
    };
    let mut tried: Vec<Principal> = Vec::new();
    let mut refusals: Vec<String> = Vec::new();
    loop {
        let chosen = with_store(|s| placement::choose(&s.storage_list(), s.meta().config.min_free_bytes, &tried));
        let Some(c) = chosen else {
            let why = if refusals.is_empty() { String::new() } else { format!(" ({})", refusals.join("; ")) };
            return refused(Error::NoRoom(format!("no storage canister has room for a new capsule{why}; an operator adds one with admin_add_storage")));
        };
        tried.push(c);
        with_store(|s| {
            let p = Pending { canister: c, owner, name: name.clone(), signup: Some(reserved.signup) };
            s.pending.insert(id, crate::state::Candid(p))
        });
        match calls::stored_bytes(c).await {
            Ok((stored, held)) => {
                let full = with_store(|s| {
                    let min = s.meta().config.min_free_bytes;
                    let st = s.update_storage(c, |st| {
                        st.stored_bytes = stored;
                        st.capsules_held = Some(held);
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
                with_store(|s| s.mark_unreachable(c, e.clone()));
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
                with_store(|s| {
                    s.update_storage(c, |i| {
                        placement::after_quota_exceeded(i);
                        i.last_error = Some(m.clone());
                    })
                });
                refusals.push(format!("{c}: {m}"));
            }
            Ok(Err(e)) => {
                return refused(Error::Storage(format!("storage canister {c} refused the capsule: {e}")));
            }
            Err(e) => {
                with_store(|s| s.mark_unreachable(c, e.clone()));
                refusals.push(e);
            }
        }
    }
}

/// Longest invite code taken (minted ones are 32 hex digits).
pub const MAX_INVITE_LEN: usize = 64;
/// Most codes one `admin_mint_invites` makes.
pub const MAX_INVITES_PER_MINT: u32 = 1_000;
/// Most live (unused, unexpired) codes at once.
pub const MAX_LIVE_INVITES: u64 = 100_000;
const MAX_INVITE_TTL_SECS: u64 = 90 * 24 * 3600;

/// Only the hash of a code is stored: the codes themselves are shown once, to the
/// controller who minted them.
pub fn invite_hash(code: &str) -> [u8; 32] {
    Sha256::digest(code.trim().as_bytes()).into()
}

/// What a create took from the sign-up bounds before its awaits, given back on refusal.
#[derive(Default)]
struct Reservation {
    /// Open: the start of the window it took one from.
    window: Option<u64>,
    signup: bool,
    invite: Option<([u8; 32], u64)>,
}

impl Reservation {
    fn give_back(&self, s: &mut crate::state::Store) {
        if let Some(taken) = self.window {
            // One back to the window, if it is still the window this create took from.
            s.update_meta(|m| {
                if let Some((start, n)) = m.signup_window.filter(|w| w.0 == taken) {
                    m.signup_window = Some((start, n.saturating_sub(1)));
                }
            });
        }
        if self.signup {
            s.add_signup_capsules(-1);
        }
        if let Some((h, exp)) = self.invite {
            s.invites.insert(h, exp);
        }
    }
}

/// Controllers: `count` single-use invite codes valid for `ttl_secs`. Returned once;
/// only their SHA-256 is kept. Expired codes are removed first.
pub async fn mint_invites(args: MintInvitesArgs) -> Result<Vec<String>> {
    if args.count == 0 || args.count > MAX_INVITES_PER_MINT {
        return Err(Error::InvalidArgument(format!("count must be 1 to {MAX_INVITES_PER_MINT}")));
    }
    if args.ttl_secs == 0 || args.ttl_secs > MAX_INVITE_TTL_SECS {
        return Err(Error::InvalidArgument(format!("ttl_secs must be 1 to {MAX_INVITE_TTL_SECS} (90 days)")));
    }
    let seed = calls::raw_rand().await.map_err(Error::Storage)?;
    // After the await: the live count as it is now.
    with_store(|s| {
        let t = now();
        let expired: Vec<[u8; 32]> = s.invites.iter().filter(|e| e.value() <= t).map(|e| *e.key()).collect();
        for h in expired {
            s.invites.remove(&h);
        }
        if s.invites.len() + args.count as u64 > MAX_LIVE_INVITES {
            return Err(Error::NoRoom(format!("{} invite codes are live; at most {MAX_LIVE_INVITES}", s.invites.len())));
        }
        let expiry = t.saturating_add(args.ttl_secs.saturating_mul(1_000_000_000));
        let mut codes = Vec::with_capacity(args.count as usize);
        for i in 0..args.count {
            let mut h = Sha256::new();
            h.update(&seed);
            h.update(t.to_be_bytes());
            h.update(i.to_be_bytes());
            let d = h.finalize();
            let code: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
            s.invites.insert(invite_hash(&code), expiry);
            codes.push(code);
        }
        Ok(codes)
    })
}

/// Live invite codes (unused, not expired).
pub fn invites_live(s: &crate::state::Store) -> u64 {
    let t = now();
    s.invites.iter().filter(|e| e.value() > t).count() as u64
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
        capsules_held: Some(0),
        max_capsules: None,
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
    let ids: Vec<Principal> = with_store(|s| s.storage_list().iter().map(|i| i.canister_id).collect());
    for id in ids {
        // Read now, not from a list taken before the awaits of the canisters before it:
        // a rolling upgrade may have taken this one meanwhile.
        if with_store(|s| s.storage_get(id).is_none_or(|i| i.state == StorageState::Upgrading)) {
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
                    Ok(room) => with_store(|s| {
                        let min = s.meta().config.min_free_bytes;
                        s.update_storage(id, |i| {
                            i.stored_bytes = room.stored;
                            i.capacity_bytes = room.capacity;
                            i.capsules_held = Some(room.capsules);
                            // An older storage canister that does not say keeps what a
                            // QuotaExceeded taught.
                            if room.max_capsules.is_some() {
                                i.max_capsules = room.max_capsules;
                            }
                            i.refreshed_at_ns = now();
                            i.state = placement::state_for_room(i, min);
                            i.last_error = None;
                        });
                    }),
                    Err(e) => with_store(|s| s.mark_unreachable(id, e)),
                }
                // After the room (which clears the last error): a failed top-up stays reported.
                top_up(id, st.cycles).await;
            }
            Ok(_) => with_store(|s| s.mark_unreachable(id, format!("{id} is stopped"))),
            Err(e) => with_store(|s| s.mark_unreachable(id, e)),
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

/// Finishes or drops placements that a reject or a trap left pending. Each placement is
/// read afresh before its call and again after it: a create that moved it to another
/// canister and finished meanwhile is neither created again where it was nor placed
/// there.
async fn reconcile() {
    let ids: Vec<u64> = with_store(|s| s.pending.iter().map(|e| *e.key()).collect());
    for id in ids {
        let current = with_store(|s| s.pending.get(&id).map(|p| p.0));
        let in_flight = IN_FLIGHT.with_borrow(|f| f.contains(&id));
        let Some(c) = placement::reconcile_target(current.as_ref(), in_flight) else { continue };
        let p = current.expect("a target comes from a pending placement");
        let _guard = InFlight::new(id);
        let answer = calls::create_capsule(c, id, p.owner, &p.name).await;
        with_store(|s| {
            let now_pending = s.pending.get(&id).map(|p| p.0);
            if !placement::still_placed_on(now_pending.as_ref(), c) {
                return;
            }
            match answer {
                Ok(Ok(cap)) => s.place(id, Placed { canister: c, owner: p.owner, created_at_ns: cap.created_at_ns }),
                // A typed refusal: the capsule does not exist there; forget the placement.
                Ok(Err(e)) => {
                    if let StorageError::QuotaExceeded(m) = e {
                        s.update_storage(c, |i| {
                            placement::after_quota_exceeded(i);
                            i.last_error = Some(m);
                        });
                    }
                    s.drop_pending(id);
                }
                Err(_) => {} // unreachable now: the next refresh tries again
            }
        });
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
            restore: None,
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
/// The state it goes back to is kept in the run (`restore`), read again after the
/// awaits: an operator's `admin_set_accepting` during the upgrade sets it, and a run
/// interrupted here and resumed still knows it.
async fn upgrade_one(id: Principal, target: &ByteBuf) -> std::result::Result<(), String> {
    let listed = with_store(|s| {
        let Some(info) = s.storage_get(id) else { return false };
        let saved = s.meta().upgrade.and_then(|u| u.restore);
        let restore = match (info.state, saved) {
            (StorageState::Upgrading, Some(r)) => r,
            (StorageState::Upgrading, None) => StorageState::Active,
            (other, _) => other,
        };
        s.update_meta(|m| {
            if let Some(u) = m.upgrade.as_mut() {
                u.restore = Some(restore);
            }
        });
        s.set_state(id, StorageState::Upgrading, None);
        true
    });
    if !listed {
        return Ok(()); // no longer listed
    }
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
        let restore = s.meta().upgrade.and_then(|u| u.restore).unwrap_or(StorageState::Active);
        s.update_storage(id, |i| {
            if i.state == StorageState::Upgrading {
                i.state = restore;
            }
            match &result {
                Ok(()) => i.module_sha256 = Some(target.clone()),
                Err(e) => i.last_error = Some(e.clone()),
            }
        });
        s.update_meta(|m| {
            if let Some(u) = m.upgrade.as_mut() {
                u.restore = None;
            }
        });
    });
    result
}

/// Controllers: open (Active) or close a storage canister for new capsules. While a
/// rolling upgrade holds it (Upgrading), the choice is kept for when its upgrade ends.
pub fn set_accepting(canister: Principal, accepting: bool) -> Result<StorageInfo> {
    let state = if accepting { StorageState::Active } else { StorageState::Closed };
    with_store(|s| {
        let info = s
            .storage_get(canister)
            .ok_or_else(|| Error::NotFound(format!("{canister} is not a storage canister of this directory")))?;
        let held_by_upgrade = info.state == StorageState::Upgrading
            && s.meta().upgrade.is_some_and(|u| u.status.current == Some(canister) && u.restore.is_some());
        if held_by_upgrade {
            s.update_meta(|m| {
                if let Some(u) = m.upgrade.as_mut() {
                    u.restore = Some(state);
                }
            });
            return Ok(info);
        }
        Ok(s.update_storage(canister, |i| i.state = state).expect("listed"))
    })
}
