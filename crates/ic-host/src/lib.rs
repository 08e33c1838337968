//! `ic-host`: run a real Internet Computer canister Wasm in-process.
//!
//! The host implements the `ic0` system API on top of wasmtime and the IC's
//! message semantics for one canister: update calls commit or roll back
//! atomically (heap, globals, stable memory), queries never commit, upgrades
//! keep only stable memory, the global timer fires when time is advanced, and
//! calls the canister makes to itself are delivered as separate messages
//! (which is how `ic-cdk-timers` runs timers). Instructions are counted
//! deterministically with wasmtime fuel; optionally
//! ([`Host::set_system_api_metering`]) system API calls are charged too, roughly as
//! the IC charges them (see [`metering`]).
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use ic_host::{Host, Principal};
//! let wasm = std::fs::read("canister.wasm")?;
//! let mut host = Host::new(&wasm, &candid::encode_args(())?)?;
//! let r = host.update(Principal::anonymous(), "greet", &candid::encode_args(("x",))?);
//! println!("{} instructions: {:?}", r.instructions, r.reply);
//! # Ok(()) }
//! ```

mod canister;
mod engine;
mod host;
mod imports;
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
    canister_id_of, reject_code, CallResult, Host, HostConfig, Limit, Reject, UpgradeCost, DEFAULT_CANISTER_ID,
    DEFAULT_CONTROLLER, DEFAULT_CYCLES, DEFAULT_TIME_NS, MAX_INGRESS_ARG, MAX_MESSAGES_PER_DRAIN,
};
pub use ic_management_canister_types as management_types;
pub use stable::DEFAULT_MAX_STABLE_PAGES;
pub use state::{CanisterStatus, MessageKind, PAGE_SIZE};
pub use store::pages::PAGE as DIRTY_PAGE_SIZE;
pub use store::{Durability, StoreStats, DEFAULT_CHECKPOINT_BYTES};
