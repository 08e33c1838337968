//! keepsake `backend`: verified, chunked, resumable uploads of photos and videos into
//! stable memory.
//!
//! Layers: this file is the endpoint layer (Candid, caller, time); [`domain`] holds the
//! logic, testable natively over `VectorMemory`; [`storage`] owns the stable layout.

pub mod api;
pub mod domain;
pub mod inspect;
pub mod storage;

use std::cell::RefCell;
use std::time::Duration;

use candid::Principal;
use ic_cdk::{init, post_upgrade, query, update};
use ic_stable_structures::DefaultMemoryImpl;
use serde_bytes::ByteBuf;

use api::*;
use domain::{Ctx, State};

thread_local! {
    static STATE: RefCell<Option<State<DefaultMemoryImpl>>> = const { RefCell::new(None) };
}

fn with_state<R>(f: impl FnOnce(&mut State<DefaultMemoryImpl>) -> R) -> R {
    STATE.with_borrow_mut(|s| {
        let state = s.get_or_insert_with(|| {
            State::open(DefaultMemoryImpl::default()).unwrap_or_else(|e| ic_cdk::trap(e))
        });
        let r = f(state);
        // Only updates change the HTTP certification tree: certify its new root.
        if state.http_take_dirty() {
            ic_cdk::api::certified_data_set(state.http_root_hash());
        }
        r
    })
}

fn ctx() -> Ctx {
    let caller = ic_cdk::api::msg_caller();
    Ctx { caller, now: ic_cdk::api::time(), is_controller: is_controller(&caller) }
}

fn is_controller(p: &Principal) -> bool {
    *p != Principal::anonymous() && ic_cdk::api::is_controller(p)
}

#[init]
fn init() {
    with_state(|_| ());
    start_housekeeping();
    start_http();
}

/// Everything lives in stable memory: opening the layout (and migrating it, if the
/// version is older) is the whole upgrade. A newer layout than this build knows traps,
/// which leaves the canister as it was. Timers do not survive upgrades: restart them.
#[post_upgrade]
fn post_upgrade() {
    with_state(|_| ());
    start_housekeeping();
    start_http();
}

/// HTTP serving after install or upgrade. The certification tree is in stable memory,
/// so its root is certified again as the state opens (nothing to rebuild); what waits
/// for certification (the layout-4 backlog, memories waiting for digests or for the
/// secret) is worked off by bounded passes. The link secret is fetched from `raw_rand`
/// once.
fn start_http() {
    start_certify_passes();
    if !with_state(|s| s.has_link_secret()) {
        ic_cdk_timers::set_timer(Duration::ZERO, async {
            let reply = ic_cdk::call::Call::unbounded_wait(Principal::management_canister(), "raw_rand").await;
            if let Ok(bytes) = reply.map_err(|_| ()).and_then(|r| r.candid::<ByteBuf>().map_err(|_| ())) {
                with_state(|s| s.set_link_secret(&bytes));
                // Memories created before the secret get their ETags now, in this
                // message as far as it goes (a bounded pass), then on the interval.
                start_certify_passes();
                http_certify_pass();
            }
        });
    }
}

/// A certification pass stops before a step whose predicted cost would take the
/// message past this many instructions (half the 40 B limit of a message; no single
/// step is predicted above ~13 B).
const HTTP_PASS_INSTRUCTIONS: u64 = 20_000_000_000;

thread_local! {
    static CERTIFY_TIMER: RefCell<Option<ic_cdk_timers::TimerId>> = const { RefCell::new(None) };
}

/// Passes run on an interval timer until one finds nothing left: a pass that traps
/// is rolled back and the interval runs it again (a one-shot timer that traps is gone).
/// With nothing waiting (the usual case) no timer is set at all.
fn start_certify_passes() {
    if CERTIFY_TIMER.with_borrow(|t| t.is_some()) || !with_state(|s| s.http_has_work()) {
        return;
    }
    let id = ic_cdk_timers::set_timer_interval(Duration::from_secs(1), || async { http_certify_pass() });
    CERTIFY_TIMER.with_borrow_mut(|t| *t = Some(id));
}

fn http_certify_pass() {
    let fits = |cost: u64| ic_cdk::api::performance_counter(0).saturating_add(cost) <= HTTP_PASS_INSTRUCTIONS;
    if !with_state(|s| s.http_rebuild_step_while(fits)).more {
        if let Some(id) = CERTIFY_TIMER.with_borrow_mut(|t| t.take()) {
            ic_cdk_timers::clear_timer(id);
        }
    }
}

/// How often housekeeping looks for expired sessions and chunks to free.
const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(600);

fn start_housekeeping() {
    ic_cdk_timers::set_timer_interval(HOUSEKEEPING_INTERVAL, || async { housekeeping_pass() });
}

/// One bounded pass; while work is left, the next pass follows right away (each pass
/// is its own message, so none comes near the instruction limit).
fn housekeeping_pass() {
    let now = ic_cdk::api::time();
    let report = with_state(|s| s.gc_pass(now));
    if report.more {
        ic_cdk_timers::set_timer(Duration::ZERO, async { housekeeping_pass() });
    }
}

#[query]
fn upload_config() -> UploadConfig {
    with_state(|s| s.upload_config())
}

#[update]
fn uploads_begin(args: BeginArgs) -> Result<Session> {
    let ctx = ctx();
    with_state(|s| s.uploads_begin(&ctx, args))
}

#[update]
fn uploads_put_chunk(session_id: u64, idx: u32, bytes: ByteBuf) -> Result<PutChunkOk> {
    let ctx = ctx();
    with_state(|s| s.uploads_put_chunk(&ctx, session_id, idx, &bytes))
}

#[update]
fn uploads_finish(session_id: u64, sha256: ByteBuf, total_len: u64) -> Result<BlobMeta> {
    let ctx = ctx();
    with_state(|s| s.uploads_finish(&ctx, session_id, &sha256, total_len))
}

#[update]
fn uploads_abort(session_id: u64) -> Result<()> {
    let ctx = ctx();
    with_state(|s| s.uploads_abort(&ctx, session_id))
}

#[query]
fn uploads_status(session_id: u64) -> Result<Session> {
    let ctx = ctx();
    with_state(|s| s.uploads_status(&ctx, session_id))
}

/// The first page of the caller's open sessions (`uploads_page` has them all).
#[query]
fn uploads_list() -> Vec<Session> {
    let ctx = ctx();
    with_state(|s| s.uploads_list(&ctx))
}

#[query]
fn uploads_page(args: UploadsPageArgs) -> Result<SessionPage> {
    let ctx = ctx();
    with_state(|s| s.uploads_page(&ctx, args))
}

#[query]
fn blobs_meta(blob_id: u64) -> Result<BlobMeta> {
    let ctx = ctx();
    with_state(|s| s.blobs_meta(&ctx, blob_id))
}

#[query]
fn blobs_read_chunk(blob_id: u64, idx: u32) -> Result<ByteBuf> {
    let ctx = ctx();
    with_state(|s| s.blobs_read_chunk(&ctx, blob_id, idx).map(ByteBuf::from))
}

#[query]
fn blobs_read_range(blob_id: u64, offset: u64, len: u64) -> Result<ByteBuf> {
    let ctx = ctx();
    with_state(|s| s.blobs_read_range(&ctx, blob_id, offset, len).map(ByteBuf::from))
}

#[query]
fn blobs_list(capsule_id: u64, cursor: Option<u64>, limit: u32) -> Result<BlobPage> {
    let ctx = ctx();
    with_state(|s| s.blobs_list(&ctx, capsule_id, cursor, limit))
}

#[update]
fn blobs_delete(blob_id: u64) -> Result<()> {
    let ctx = ctx();
    with_state(|s| s.blobs_delete(&ctx, blob_id))
}

/// Endpoints for controllers only whose reply type has no error: others get a reject.
/// (A module of its own: ic-cdk's guard code names `Result`, which must be std's.)
mod controllers_only {
    use super::{is_controller, with_state};
    use crate::api::Stats;
    use ic_cdk::query;

    /// Figures of the whole canister.
    #[query(guard = "caller_is_controller")]
    fn stats() -> Stats {
        with_state(|s| s.stats())
    }

    fn caller_is_controller() -> Result<(), String> {
        if is_controller(&ic_cdk::api::msg_caller()) {
            Ok(())
        } else {
            Err("Unauthorized: stats are for the canister's controllers".into())
        }
    }
}

#[update]
fn capsules_create(args: CapsuleCreateArgs) -> Result<Capsule> {
    let ctx = ctx();
    with_state(|s| s.capsules_create(&ctx, args))
}

/// Directory mode: the directory creates a user's capsule here (see `admin_set_config`).
#[update]
fn directory_capsules_create(args: DirectoryCapsuleArgs) -> Result<Capsule> {
    let ctx = ctx();
    with_state(|s| s.directory_capsules_create(&ctx, args))
}

/// The first page of the caller's capsules (`capsules_page` has them all).
#[query]
fn capsules_list() -> Vec<Capsule> {
    let ctx = ctx();
    with_state(|s| s.capsules_list(&ctx))
}

#[query]
fn capsules_page(cursor: Option<u64>, limit: u32) -> CapsulePage {
    let ctx = ctx();
    with_state(|s| s.capsules_page(&ctx, cursor, limit))
}

#[query]
fn capsules_invitations(cursor: Option<u64>, limit: u32) -> InvitationPage {
    let ctx = ctx();
    with_state(|s| s.capsules_invitations(&ctx, cursor, limit))
}

#[update]
fn capsules_accept(capsule_id: u64) -> Result<Capsule> {
    let ctx = ctx();
    with_state(|s| s.capsules_accept(&ctx, capsule_id))
}

#[query]
fn capsules_get(capsule_id: u64) -> Result<Capsule> {
    let ctx = ctx();
    with_state(|s| s.capsules_get(&ctx, capsule_id))
}

#[update]
fn capsules_set_member(capsule_id: u64, member: Principal, role: Role) -> Result<Capsule> {
    let ctx = ctx();
    with_state(|s| s.capsules_set_member(&ctx, capsule_id, member, role))
}

#[update]
fn capsules_remove_member(capsule_id: u64, member: Principal) -> Result<Capsule> {
    let ctx = ctx();
    with_state(|s| s.capsules_remove_member(&ctx, capsule_id, member))
}

#[update]
fn memories_create(args: MemoryCreateArgs) -> Result<Memory> {
    let ctx = ctx();
    let r = with_state(|s| s.memories_create(&ctx, args));
    // A memory over a blob from before layout 3 may wait for its digests: passes take it.
    start_certify_passes();
    r
}

#[query]
fn memories_get(memory_id: u64) -> Result<Memory> {
    let ctx = ctx();
    with_state(|s| s.memories_get(&ctx, memory_id))
}

#[query]
fn memories_list(capsule_id: u64, cursor: Option<u64>, limit: u32) -> Result<MemoryPage> {
    let ctx = ctx();
    with_state(|s| s.memories_list(&ctx, capsule_id, cursor, limit))
}

#[update]
fn memories_update(memory_id: u64, meta: MemoryMeta) -> Result<Memory> {
    let ctx = ctx();
    with_state(|s| s.memories_update(&ctx, memory_id, meta))
}

#[update]
fn memories_add_asset(memory_id: u64, asset: AssetInput) -> Result<Memory> {
    let ctx = ctx();
    let r = with_state(|s| s.memories_add_asset(&ctx, memory_id, asset));
    start_certify_passes();
    r
}

#[update]
fn memories_remove_asset(memory_id: u64, kind: AssetKind) -> Result<Memory> {
    let ctx = ctx();
    with_state(|s| s.memories_remove_asset(&ctx, memory_id, kind))
}

#[update]
fn memories_delete(memory_id: u64) -> Result<()> {
    let ctx = ctx();
    with_state(|s| s.memories_delete(&ctx, memory_id))
}

#[update]
fn admin_set_config(update: ConfigUpdate) -> Result<UploadConfig> {
    let ctx = ctx();
    with_state(|s| s.admin_set_config(&ctx, update))
}

#[update]
fn admin_gc() -> Result<GcReport> {
    let ctx = ctx();
    with_state(|s| s.admin_gc(&ctx))
}

/// Serves memories over HTTP, certified (see README "Photos and videos over HTTP").
#[query]
fn http_request(req: HttpRequest) -> HttpResponse {
    let ctx = ctx();
    let cert = ic_cdk::api::data_certificate();
    with_state(|s| s.http_request(&ctx, &req, cert.as_deref()))
}

#[query]
fn links_create(memory_id: u64, kind: AssetKind, ttl_secs: u64) -> Result<Link> {
    let ctx = ctx();
    with_state(|s| s.links_create(&ctx, memory_id, kind, ttl_secs))
}

#[update]
fn capsules_rotate_link_key(capsule_id: u64) -> Result<u32> {
    let ctx = ctx();
    with_state(|s| s.capsules_rotate_link_key(&ctx, capsule_id))
}

#[update]
fn memories_set_public(memory_id: u64, public: bool) -> Result<()> {
    let ctx = ctx();
    let r = with_state(|s| s.memories_set_public(&ctx, memory_id, public));
    start_certify_passes();
    r
}

candid::export_service!();

/// The Candid interface generated from the endpoints above (`backend.did` is this text).
pub fn candid_interface() -> String {
    __export_service()
}
