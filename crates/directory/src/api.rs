//! The directory's Candid types (what `directory.did` is generated from).

use candid::{CandidType, Principal};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// Every refusal of the directory: a kind a client can match on and a message a human
/// can read. A refused call leaves the directory's map as it was.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub enum Error {
    Unauthorized(String),
    InvalidArgument(String),
    NotFound(String),
    /// No storage canister has room (or none is reachable): add one, or try later.
    NoRoom(String),
    /// A storage canister refused or failed; the message says which and why.
    Storage(String),
    Conflict(String),
}

pub type Result<T> = std::result::Result<T, Error>;

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct CapsuleCreateArgs {
    pub name: String,
    /// An invite code (from `admin_mint_invites`): needed when the sign-up policy is
    /// `InviteOnly`; one code makes one capsule and is gone once used.
    pub invite: Option<String>,
}

/// Who may create capsules (controllers always may, unbounded). A refusal by the policy
/// is `NoRoom` (a limit reached: try later) or `Unauthorized` (no valid invite code),
/// and changes nothing.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum SignupPolicy {
    /// Anyone may create, within global bounds: at most `max_new_per_window` new
    /// capsules per `window_secs` (a fixed window, all callers together), and at most
    /// `max_empty_capsules` capsules made by sign-up that may still be empty. The
    /// directory cannot see into capsules, so it counts every capsule made by sign-up
    /// (placed or pending) as possibly empty: the cap bounds what a flood of fresh
    /// principals can take; the operator raises it as real use grows, or switches to
    /// `InviteOnly`.
    Open { max_new_per_window: u32, window_secs: u64, max_empty_capsules: u64 },
    /// Only with a code a controller minted (`admin_mint_invites`): single-use, expiring.
    InviteOnly,
}

/// The sign-up policy and how much of its bounds is used (in `status`).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SignupStatus {
    pub policy: SignupPolicy,
    /// New capsules begun by sign-up in the current window (Open).
    pub new_in_window: u32,
    pub window_started_at_ns: u64,
    /// Capsules made by sign-up, placed or pending: what `max_empty_capsules` bounds.
    pub signup_capsules: u64,
    /// Invite codes minted, not used and not expired yet.
    pub invites_live: u64,
}

/// Where a capsule lives (`capsules_create`, `capsules_list`, and `capsules_locate` for
/// its owner): upload to and read from `canister_id` with the same
/// `capsule_id` (ids are unique across all storage canisters of the directory).
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CapsuleLocation {
    pub capsule_id: u64,
    pub canister_id: Principal,
    pub owner: Principal,
    pub created_at_ns: u64,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LocationPage {
    pub capsules: Vec<CapsuleLocation>,
    /// Pass back as `cursor` for the next page; `null` at the end.
    pub next_cursor: Option<u64>,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StorageState {
    /// Takes new capsules.
    Active,
    /// Its free room fell below `min_free_bytes`: no new capsules (its capsules keep
    /// growing and being read); back to Active when room is freed.
    Full,
    /// Being upgraded by a rolling upgrade (stopped for a moment): no new capsules.
    Upgrading,
    /// Its last call was rejected (stopped, out of cycles, …): no new capsules until a
    /// refresh reaches it again.
    Unreachable,
    /// Closed by an operator (`admin_set_accepting`): no new capsules.
    Closed,
}

/// One storage canister as the directory last saw it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct StorageInfo {
    pub canister_id: Principal,
    pub state: StorageState,
    /// Capsules the directory placed there.
    pub capsules: u64,
    /// Bytes it counts against its capacity (stored + reserved by open uploads).
    pub stored_bytes: u64,
    pub capacity_bytes: u64,
    pub cycles: u64,
    pub module_sha256: Option<ByteBuf>,
    pub refreshed_at_ns: u64,
    pub last_error: Option<String>,
    /// Capsules it holds in all (its `stats`, at the last look; the directory's own
    /// placements since then are added).
    pub capsules_held: Option<u64>,
    /// The most capsules it takes (its `max_capsules`): at that count it is Full, and
    /// stays Full until a look at it finds room again.
    pub max_capsules: Option<u64>,
}

/// Controllers: what `admin_add_storage` creates.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct AddStorageArgs {
    /// `max_stored_bytes` of the new canister (default: the config's `storage_capacity_bytes`).
    pub capacity_bytes: Option<u64>,
    /// Cycles it starts with (default: the config's `new_storage_cycles`).
    pub cycles: Option<u64>,
    /// Controllers besides the directory (default: the caller).
    pub controllers: Option<Vec<Principal>>,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// A storage canister with less free room than this takes no new capsules.
    pub min_free_bytes: u64,
    /// Default capacity (`max_stored_bytes`) of a new storage canister.
    pub storage_capacity_bytes: u64,
    /// Cycles a new storage canister starts with.
    pub new_storage_cycles: u64,
    /// A storage canister below this balance gets `top_up_cycles` at the next refresh.
    pub top_up_below: u64,
    pub top_up_cycles: u64,
    /// Seconds between refreshes (room, cycles, reachability, unfinished placements).
    pub refresh_interval_s: u64,
    /// Capsules one principal may create through the directory (controllers are not
    /// bounded).
    pub max_capsules_per_owner: u32,
    /// Who may create capsules (`null`: the default `Open` bounds, see `status`).
    pub signup: Option<SignupPolicy>,
}

/// Controllers change the configuration; `null` keeps a value.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ConfigUpdate {
    pub min_free_bytes: Option<u64>,
    pub storage_capacity_bytes: Option<u64>,
    pub new_storage_cycles: Option<u64>,
    pub top_up_below: Option<u64>,
    pub top_up_cycles: Option<u64>,
    pub refresh_interval_s: Option<u64>,
    pub max_capsules_per_owner: Option<u32>,
    pub signup: Option<SignupPolicy>,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub enum UpgradeState {
    Running,
    Done,
    /// Stopped at the canister named: it was started again with its old module.
    Failed(String),
}

/// A rolling upgrade of every storage canister, one at a time.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeStatus {
    pub wasm_sha256: ByteBuf,
    pub state: UpgradeState,
    pub total: u32,
    /// Canisters upgraded so far (in `storage_list` order).
    pub done: u32,
    pub current: Option<Principal>,
    pub started_at_ns: u64,
    pub finished_at_ns: Option<u64>,
}

#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub storage: Vec<StorageInfo>,
    pub capsules: u64,
    /// Placements begun whose storage canister has not confirmed yet (a refresh finishes
    /// or drops them; they are never in the map).
    pub pending: u64,
    pub storage_wasm_sha256: Option<ByteBuf>,
    pub config: DirectoryConfig,
    pub upgrade: Option<UpgradeStatus>,
    pub cycles: u64,
    pub signup: Option<SignupStatus>,
}

/// Controllers: `admin_mint_invites`.
#[derive(CandidType, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MintInvitesArgs {
    /// 1 to `MAX_INVITES_PER_MINT`.
    pub count: u32,
    /// Seconds until the codes expire (1 to 90 days).
    pub ttl_secs: u64,
}
