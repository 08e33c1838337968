//! keepsake `directory`: one canister that places capsules on many `backend` storage
//! canisters. It creates them (management canister), installs and upgrades them (a
//! rolling upgrade, one canister at a time, resumable), tops up their cycles, and tells
//! clients where a capsule lives. Users then upload and read on the storage canister
//! directly; in directory mode a storage canister takes new capsules only from here.
//!
//! Layers: this file is the endpoint layer (Candid, caller); [`ops`] the work across
//! canisters, [`placement`] the pure choice, [`state`] the stable layout, [`calls`]
//! the typed calls.

pub mod api;
mod calls;
mod inspect;
mod ops;
pub mod placement;
mod state;

use std::cell::RefCell;
use std::time::Duration;

use candid::Principal;
use ic_cdk::{init, post_upgrade, query, update};
use serde_bytes::ByteBuf;

use api::*;
use state::Store;

/// Longest capsule name (the storage canister's limit too).
pub const MAX_NAME_LEN: usize = 256;
/// Most locations in one `capsules_list` page.
const MAX_PAGE: usize = 1000;

thread_local! {
    static STORE: RefCell<Option<Store>> = const { RefCell::new(None) };
}

pub(crate) fn with_store<R>(f: impl FnOnce(&mut Store) -> R) -> R {
    STORE.with_borrow_mut(|s| f(s.get_or_insert_with(Store::open)))
}

fn caller() -> Principal {
    ic_cdk::api::msg_caller()
}

fn require_controller() -> Result<()> {
    let c = caller();
    if c != Principal::anonymous() && ic_cdk::api::is_controller(&c) {
        Ok(())
    } else {
        Err(Error::Unauthorized("only the directory's controllers may do this".into()))
    }
}

#[init]
fn init() {
    with_store(|_| ());
    start_timers();
}

/// Everything is in stable memory: the map, the storage list and a rolling upgrade in
/// progress, which carries on from the canister it was at.
#[post_upgrade]
fn post_upgrade() {
    with_store(|_| ());
    start_timers();
}

fn start_timers() {
    let every = with_store(|s| s.meta().config.refresh_interval_s).max(1);
    ic_cdk_timers::set_timer_interval(Duration::from_secs(every), || async {
        ops::refresh().await;
    });
    ic_cdk_timers::set_timer(Duration::ZERO, async { ops::ensure_upgrade_task() });
}

/// Creates a capsule owned by the caller on the storage canister with the most room
/// (at most `max_capsules_per_owner` per caller), if the sign-up policy lets it
/// (`InviteOnly`: `invite` is a code from `admin_mint_invites`, spent by the create).
/// Controllers are bounded by neither.
#[update]
async fn capsules_create(args: CapsuleCreateArgs) -> Result<CapsuleLocation> {
    let me = caller();
    let bounded = !ic_cdk::api::is_controller(&me);
    ops::create_capsule(me, args.name, args.invite, bounded).await
}

/// Where capsule `id` lives, with its owner and creation time: only to its owner (and
/// the directory's controllers); anyone else gets NotFound, as for an id that does not
/// exist. To route to a capsule, use `capsules_route`.
#[query]
fn capsules_locate(id: u64) -> Result<CapsuleLocation> {
    let me = caller();
    let not_found = || Error::NotFound(format!("capsule {id} is not in this directory, or not yours"));
    let p = with_store(|s| s.capsules.get(&id).map(|p| p.0)).ok_or_else(not_found)?;
    if p.owner == me || (me != Principal::anonymous() && ic_cdk::api::is_controller(&me)) {
        Ok(ops::location(id, &p))
    } else {
        Err(not_found())
    }
}

/// The storage canister of capsule `id`: all a client needs to route to it, and all it
/// tells (not who owns it, not when it was made). Anyone may ask: the directory does
/// not know a capsule's members, and the storage canister decides what the caller may
/// see there.
#[query]
fn capsules_route(id: u64) -> Result<Principal> {
    with_store(|s| s.capsules.get(&id).map(|p| p.0.canister))
        .ok_or_else(|| Error::NotFound(format!("capsule {id} is not in this directory")))
}

/// The capsules the caller owns (created through the directory), across all storage
/// canisters, by id. Capsules shared with the caller are listed by each storage
/// canister's `capsules_page` (see `storage_list`).
#[query]
fn capsules_list(cursor: Option<u64>, limit: Option<u32>) -> LocationPage {
    let me = caller();
    let limit = limit.map_or(MAX_PAGE, |l| (l as usize).clamp(1, MAX_PAGE));
    with_store(|s| {
        let from = state::OwnerKey::new(me, cursor.map_or(0, |c| c.saturating_add(1)));
        let to = state::OwnerKey::new(me, u64::MAX);
        let mut capsules = Vec::new();
        let mut next_cursor = None;
        for e in s.owners.range(from..=to) {
            let id = e.key().id();
            if capsules.len() == limit {
                next_cursor = capsules.last().map(|c: &CapsuleLocation| c.capsule_id);
                break;
            }
            if let Some(p) = s.capsules.get(&id) {
                capsules.push(ops::location(id, &p.0));
            }
        }
        LocationPage { capsules, next_cursor }
    })
}

/// Every storage canister as last seen.
#[query]
fn storage_list() -> Vec<StorageInfo> {
    with_store(|s| s.storage_list())
}

#[query]
fn status() -> Status {
    with_store(|s| {
        let meta = s.meta();
        Status {
            storage: s.storage_list(),
            capsules: s.capsules.len(),
            pending: s.pending.len(),
            storage_wasm_sha256: meta.wasm_sha256,
            config: meta.config,
            upgrade: meta.upgrade.map(|u| u.status),
            cycles: u64::try_from(ic_cdk::api::canister_cycle_balance()).unwrap_or(u64::MAX),
            signup: Some(SignupStatus {
                policy: s.signup_policy(),
                new_in_window: meta.signup_window.map_or(0, |w| w.1),
                window_started_at_ns: meta.signup_window.map_or(0, |w| w.0),
                signup_capsules: s.signup_capsules(),
                invites_live: ops::invites_live(s),
            }),
        }
    })
}

/// Controllers: `count` single-use invite codes that expire after `ttl_secs` (for the
/// `InviteOnly` sign-up policy). Shown once: the directory keeps only their hashes.
#[update]
async fn admin_mint_invites(args: MintInvitesArgs) -> Result<Vec<String>> {
    require_controller()?;
    ops::mint_invites(args).await
}

/// Controllers: the `backend` Wasm (gzipped or not) that new storage canisters get and
/// `admin_upgrade_storage` rolls out. Returns its SHA-256.
#[update]
fn admin_set_storage_wasm(wasm: ByteBuf) -> Result<ByteBuf> {
    require_controller()?;
    ops::set_wasm(wasm.into_vec())
}

/// Controllers: creates a storage canister, installs it in directory mode and lists it.
#[update]
async fn admin_add_storage(args: AddStorageArgs) -> Result<StorageInfo> {
    require_controller()?;
    ops::add_storage(args, caller()).await
}

/// Controllers: upgrades every storage canister to the stored Wasm, one at a time
/// (stop, upgrade, start); resumes a run that failed or was interrupted. Progress is
/// in `status().upgrade`.
#[update]
fn admin_upgrade_storage() -> Result<UpgradeStatus> {
    require_controller()?;
    ops::start_upgrade()
}

/// Controllers: a refresh now (room, reachability, cycle top-ups, unfinished
/// placements), as the timer does every `refresh_interval_s`.
#[update]
async fn admin_refresh() -> Result<Vec<StorageInfo>> {
    require_controller()?;
    Ok(ops::refresh().await)
}

/// Controllers: stop (false) or resume (true) placing new capsules on a storage canister
/// (during its rolling upgrade: from when the upgrade ends).
#[update]
fn admin_set_accepting(canister: Principal, accepting: bool) -> Result<StorageInfo> {
    require_controller()?;
    ops::set_accepting(canister, accepting)
}

#[update]
fn admin_set_config(u: ConfigUpdate) -> Result<DirectoryConfig> {
    require_controller()?;
    if u.refresh_interval_s == Some(0) {
        return Err(Error::InvalidArgument("refresh_interval_s must be at least 1".into()));
    }
    if let Some(SignupPolicy::Open { window_secs, .. }) = &u.signup {
        if *window_secs == 0 || *window_secs > 366 * 24 * 3600 {
            return Err(Error::InvalidArgument("window_secs must be 1 to 31,622,400 (a year)".into()));
        }
    }
    with_store(|s| {
        s.update_meta(|m| {
            let c = &mut m.config;
            let ConfigUpdate {
                min_free_bytes,
                storage_capacity_bytes,
                new_storage_cycles,
                top_up_below,
                top_up_cycles,
                refresh_interval_s,
                max_capsules_per_owner,
                signup,
            } = u;
            if let Some(v) = signup {
                c.signup = Some(v);
            }
            if let Some(v) = max_capsules_per_owner {
                c.max_capsules_per_owner = v;
            }
            if let Some(v) = min_free_bytes {
                c.min_free_bytes = v;
            }
            if let Some(v) = storage_capacity_bytes {
                c.storage_capacity_bytes = v;
            }
            if let Some(v) = new_storage_cycles {
                c.new_storage_cycles = v;
            }
            if let Some(v) = top_up_below {
                c.top_up_below = v;
            }
            if let Some(v) = top_up_cycles {
                c.top_up_cycles = v;
            }
            if let Some(v) = refresh_interval_s {
                c.refresh_interval_s = v;
            }
        });
        Ok(s.meta().config)
    })
}

ic_cdk::export_candid!();

/// The Candid interface (`directory.did` is this, checked in).
pub fn candid_interface() -> String {
    __export_service()
}
