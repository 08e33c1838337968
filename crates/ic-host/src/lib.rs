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

pub mod certify;
mod engine;
mod host;
mod imports;
mod management;
pub mod metering;
mod persist;
mod rewrite;
mod state;

pub use candid::Principal;
pub use engine::{module_cache_dir, set_module_cache_dir};
pub use host::{
    reject_code, CallResult, Host, HostConfig, Limit, Reject, UpgradeCost, DEFAULT_CANISTER_ID, DEFAULT_CONTROLLER,
    DEFAULT_TIME_NS, MAX_INGRESS_ARG, MAX_MESSAGES_PER_DRAIN,
};
pub use state::{MessageKind, DEFAULT_MAX_STABLE_PAGES, PAGE_SIZE};
