//! keepsake `backend`: verified, chunked, resumable uploads of photos and videos into
//! stable memory.
//!
//! Layers: this file is the endpoint layer (Candid, caller, time); [`domain`] holds the
//! logic, testable natively over `VectorMemory`; [`storage`] owns the stable layout.

pub mod api;
pub mod domain;
pub mod storage;

use std::cell::RefCell;

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
        f(state)
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
}

/// Everything lives in stable memory: opening the layout (and migrating it, if the
/// version is older) is the whole upgrade. A newer layout than this build knows traps,
/// which leaves the canister as it was.
#[post_upgrade]
fn post_upgrade() {
    with_state(|_| ());
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

#[query]
fn uploads_list() -> Vec<Session> {
    let ctx = ctx();
    with_state(|s| s.uploads_list(&ctx))
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
fn stats() -> Stats {
    with_state(|s| s.stats())
}

#[update]
fn capsules_create(args: CapsuleCreateArgs) -> Result<Capsule> {
    let ctx = ctx();
    with_state(|s| s.capsules_create(&ctx, args))
}

#[query]
fn capsules_list() -> Vec<Capsule> {
    let ctx = ctx();
    with_state(|s| s.capsules_list(&ctx))
}

candid::export_service!();

/// The Candid interface generated from the endpoints above (`backend.did` is this text).
pub fn candid_interface() -> String {
    __export_service()
}
