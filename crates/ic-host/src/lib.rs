//! `ic-host`: run real Internet Computer canister Wasm in-process.
//!
//! The host implements the `ic0` system API on top of wasmtime and the IC's message
//! semantics for several canisters: update calls commit or roll back atomically (heap,
//! globals, stable memory, and the Wasm memory's size), queries never commit, upgrades
//! keep only stable memory, global timers fire when time advances, and calls between
//! canisters (and to themselves, which is how `ic-cdk-timers` runs timers) are delivered
//! as separate messages in the order each pair sent them, with cycles attached and
//! refunded. A management canister subset creates, installs, upgrades, stops and
//! deletes canisters for their controllers. Instructions are counted deterministically
//! as the IC counts them: wasmtime fuel with the replica's weight of each Wasm operator,
//! plus its charges for system API calls and newly dirtied stable pages, and its
//! per-message limits (instructions, dirtied and accessed stable pages, compilation at
//! install and upgrade); see [`metering`].
//!
//! A host lives in RAM ([`Host::new`], [`Host::in_memory`]) or in a directory
//! ([`Host::open`]): there each canister's stable memory and heap are page files read on
//! demand, and each committed message is logged (and fsynced) before its reply is handed
//! out, then written as the 4 KiB pages it changed; see the `store` module. Execution
//! only: no network front here.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use ic_host::{Host, HostConfig, Principal};
//! let wasm = std::fs::read("canister.wasm")?;
//! let mut host = Host::new(&wasm, &candid::encode_args(())?)?;
//! let r = host.update(Principal::anonymous(), "greet", &candid::encode_args(("x",))?);
//! println!("{} instructions: {:?}", r.instructions, r.reply);
//!
//! // Kept on disk: reopening finds everything that was committed.
//! let mut host = Host::open(std::path::Path::new("state"))?;
//! if host.default_canister().is_none() {
//!     host.install_default(&wasm, &candid::encode_args(())?, HostConfig::default())?;
//! }
//! # Ok(()) }
//! ```

mod canister;
pub mod certify;
mod engine;
mod host;
mod imports;
mod ingress;
mod legacy;
mod lifecycle;
mod management;
pub mod metering;
mod network;
mod persistence;
mod rewrite;
mod stable;
mod state;
mod store;

pub use candid::Principal;
pub use engine::{module_cache_dir, set_module_cache_dir};
pub use host::{
    canister_id_of, reject_code, CallResult, ErrorCode, Host, HostConfig, Limit, Reject, UpgradeCost, DEFAULT_CANISTER_ID,
    DEFAULT_CONTROLLER, DEFAULT_CYCLES, DEFAULT_TIME_NS, MAX_INGRESS_ARG, MAX_MESSAGES_PER_DRAIN,
};
pub use ic_management_canister_types as management_types;
pub use stable::DEFAULT_MAX_STABLE_PAGES;
pub use state::{CanisterStatus, MessageKind, PAGE_SIZE};
pub use store::pages::PAGE as DIRTY_PAGE_SIZE;
pub use store::{Durability, StoreStats, DEFAULT_CHECKPOINT_BYTES};
