//! Calls the directory makes: the management canister and its storage canisters. Every
//! failure comes back as a message naming the canister (never a trap).

use candid::utils::ArgumentEncoder;
use candid::{CandidType, Nat, Principal};
use ic_cdk::call::Call;
use ic_management_canister_types as mgmt;
use serde::Deserialize;

pub type CallResult<T> = std::result::Result<T, String>;

async fn call<A: ArgumentEncoder, R: for<'de> Deserialize<'de> + CandidType>(
    to: Principal,
    method: &str,
    args: A,
    cycles: u128,
) -> CallResult<R> {
    let reply = call_raw(to, method, args, cycles).await?;
    reply.candid::<R>().map_err(|e| format!("{method} on {}: unexpected reply: {e}", who(to)))
}

/// A call whose reply carries no value.
async fn call_unit<A: ArgumentEncoder>(to: Principal, method: &str, args: A, cycles: u128) -> CallResult<()> {
    call_raw(to, method, args, cycles).await.map(|_| ())
}

async fn call_raw<A: ArgumentEncoder>(to: Principal, method: &str, args: A, cycles: u128) -> CallResult<ic_cdk::call::Response> {
    Call::unbounded_wait(to, method)
        .with_args(&args)
        .with_cycles(cycles)
        .await
        .map_err(|e| format!("{method} on {} failed: {e}", who(to)))
}

fn who(to: Principal) -> String {
    if to == Principal::management_canister() {
        "the management canister".to_string()
    } else {
        format!("canister {to}")
    }
}

fn nat_u64(n: &Nat) -> u64 {
    u64::try_from(n.0.clone()).unwrap_or(u64::MAX)
}

pub async fn create_canister(controllers: Vec<Principal>, cycles: u64) -> CallResult<Principal> {
    let arg = mgmt::CreateCanisterArgs {
        settings: Some(mgmt::CanisterSettings { controllers: Some(controllers), ..Default::default() }),
        sender_canister_version: Some(ic_cdk::api::canister_version()),
    };
    let r: mgmt::CanisterIdRecord = call(Principal::management_canister(), "create_canister", (arg,), cycles as u128).await?;
    Ok(r.canister_id)
}

pub async fn install(id: Principal, mode: mgmt::CanisterInstallMode, wasm: Vec<u8>) -> CallResult<()> {
    let arg = mgmt::InstallCodeArgs {
        mode,
        canister_id: id,
        wasm_module: wasm,
        arg: candid::encode_args(()).expect("empty args"),
        sender_canister_version: Some(ic_cdk::api::canister_version()),
    };
    call_unit(Principal::management_canister(), "install_code", (arg,), 0).await
}

pub async fn stop(id: Principal) -> CallResult<()> {
    call_unit(Principal::management_canister(), "stop_canister", (mgmt::CanisterIdRecord { canister_id: id },), 0).await
}

pub async fn start(id: Principal) -> CallResult<()> {
    call_unit(Principal::management_canister(), "start_canister", (mgmt::CanisterIdRecord { canister_id: id },), 0).await
}

pub struct CanisterStatus {
    pub running: bool,
    pub cycles: u64,
    pub module_sha256: Option<Vec<u8>>,
}

pub async fn status(id: Principal) -> CallResult<CanisterStatus> {
    let r: mgmt::CanisterStatusResult =
        call(Principal::management_canister(), "canister_status", (mgmt::CanisterIdRecord { canister_id: id },), 0).await?;
    Ok(CanisterStatus {
        running: r.status == mgmt::CanisterStatusType::Running,
        cycles: nat_u64(&r.cycles),
        module_sha256: r.module_hash,
    })
}

pub async fn deposit_cycles(id: Principal, cycles: u64) -> CallResult<()> {
    call_unit(Principal::management_canister(), "deposit_cycles", (mgmt::CanisterIdRecord { canister_id: id },), cycles as u128).await
}

// ---- the storage canister (`backend.did`): only the fields the directory reads ----

/// `backend.did`'s `Error` (every variant, so any refusal decodes).
#[derive(CandidType, Deserialize, Debug, Clone)]
pub enum StorageError {
    NotFound(String),
    Unauthorized(String),
    InvalidArgument(String),
    ChecksumMismatch(String),
    InProgress(String),
    Expired(String),
    QuotaExceeded(String),
    Conflict(String),
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (k, m) = match self {
            StorageError::NotFound(m) => ("NotFound", m),
            StorageError::Unauthorized(m) => ("Unauthorized", m),
            StorageError::InvalidArgument(m) => ("InvalidArgument", m),
            StorageError::ChecksumMismatch(m) => ("ChecksumMismatch", m),
            StorageError::InProgress(m) => ("InProgress", m),
            StorageError::Expired(m) => ("Expired", m),
            StorageError::QuotaExceeded(m) => ("QuotaExceeded", m),
            StorageError::Conflict(m) => ("Conflict", m),
        };
        write!(f, "{k}: {m}")
    }
}

#[derive(CandidType, Deserialize, Debug, Clone)]
pub struct StorageCapsule {
    pub id: u64,
    pub created_at_ns: u64,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct StorageStats {
    blob_bytes: u64,
    stored_bytes: Option<u64>,
    capsules: u64,
}

#[derive(CandidType, Deserialize, Debug, Clone)]
struct UploadConfig {
    max_stored_bytes: Option<u64>,
    max_capsules: Option<u64>,
}

#[derive(CandidType, Deserialize, Debug, Clone, Default)]
pub struct StorageConfigUpdate {
    pub max_stored_bytes: Option<u64>,
    pub directory: Option<Principal>,
}

#[derive(CandidType, Deserialize)]
struct DirectoryCapsuleArgs<'a> {
    id: u64,
    owner: Principal,
    name: &'a str,
}

/// A storage canister's room: bytes and capsules, used and most.
pub struct Room {
    pub stored: u64,
    pub capacity: u64,
    pub capsules: u64,
    /// `null` from a storage canister that does not say.
    pub max_capsules: Option<u64>,
}

/// Bytes it counts against its capacity and the capacity; capsules it holds and the most.
pub async fn room(id: Principal) -> CallResult<Room> {
    let (stored, capsules) = stored_bytes(id).await?;
    let c: UploadConfig = call(id, "upload_config", (), 0).await?;
    Ok(Room { stored, capacity: c.max_stored_bytes.unwrap_or(u64::MAX), capsules, max_capsules: c.max_capsules })
}

/// Bytes it counts against its capacity and the capsules it holds (one call: the
/// maxima are known).
pub async fn stored_bytes(id: Principal) -> CallResult<(u64, u64)> {
    let s: StorageStats = call(id, "stats", (), 0).await?;
    Ok((s.stored_bytes.unwrap_or(s.blob_bytes), s.capsules))
}

/// 32 random bytes from the management canister.
pub async fn raw_rand() -> CallResult<Vec<u8>> {
    call(Principal::management_canister(), "raw_rand", (), 0).await.map(|b: serde_bytes::ByteBuf| b.into_vec())
}

/// Outer error: the call failed (reject, trap); inner: the storage canister's refusal.
pub async fn create_capsule(id: Principal, capsule: u64, owner: Principal, name: &str) -> CallResult<Result<StorageCapsule, StorageError>> {
    call(id, "directory_capsules_create", (DirectoryCapsuleArgs { id: capsule, owner, name },), 0).await
}

pub async fn configure(id: Principal, update: StorageConfigUpdate) -> CallResult<Result<candid::Reserved, StorageError>> {
    call(id, "admin_set_config", (update,), 0).await
}
