//! Directory mode on the client side: a capsule's storage canister is found through the
//! keepsake `directory` canister (and cached: a capsule never moves), and `keepsake
//! serve --storage N` sets up a directory with N storage canisters on the local network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context};
use candid::{CandidType, Principal};
use dir::{AddStorageArgs, CapsuleCreateArgs, CapsuleLocation, LocationPage};
use ic_agent::Agent;
use ic_host::management_types as mgmt;
use ic_host::Host;
use serde::Deserialize;

use crate::agent::classify;
use crate::client::RetryPolicy;

/// The directory's Candid types: its own `api.rs` (linking the directory crate would
/// bring its canister exports, which clash with the backend's).
#[path = "../../directory/src/api.rs"]
pub mod dir;

/// Cycles the local directory starts with (it hands some to each storage canister).
const LOCAL_DIRECTORY_CYCLES: u128 = 1_000_000_000_000_000;

/// The directory canister of a local host, kept beside the host's state.
fn directory_file(state: &Path) -> PathBuf {
    state.join("directory.id")
}

fn host_err(what: &str, r: ic_host::Reject) -> anyhow::Error {
    anyhow!("{what}: {}", r.message)
}

fn call<A: CandidType, R: for<'de> Deserialize<'de> + CandidType>(
    host: &mut Host,
    canister: Principal,
    caller: Principal,
    method: &str,
    arg: &A,
) -> anyhow::Result<R> {
    let bytes = candid::encode_one(arg)?;
    let reply = host.update_call(canister, caller, method, &bytes).reply.map_err(|r| host_err(method, r))?;
    candid::decode_one(&reply).with_context(|| format!("decoding the reply of {method}"))
}

/// Sets up (or brings up to date) the directory of a local host: created and installed
/// once, upgraded when `directory_wasm` changed, given `storage_wasm` (the storage
/// canisters are not upgraded here: `admin_upgrade_storage` does that), and given
/// storage canisters until it has `storage`. Returns the directory and its storage
/// canisters.
pub fn setup_local(
    host: &mut Host,
    state: &Path,
    directory_wasm: &[u8],
    storage_wasm: &[u8],
    storage: usize,
    controllers: &[Principal],
) -> anyhow::Result<(Principal, Vec<Principal>)> {
    let admin = ic_host::DEFAULT_CONTROLLER;
    let file = directory_file(state);
    let known = std::fs::read_to_string(&file).ok().and_then(|t| Principal::from_text(t.trim()).ok());
    let id = match known.filter(|id| host.canister_exists(*id)) {
        Some(id) => {
            let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(directory_wasm).into();
            if host.canister_module_hash(id) != Some(hash) {
                let arg = mgmt::InstallCodeArgs {
                    mode: mgmt::CanisterInstallMode::Upgrade(None),
                    canister_id: id,
                    wasm_module: directory_wasm.to_vec(),
                    arg: candid::encode_args(())?,
                    sender_canister_version: None,
                };
                host.management::<_, ()>(admin, "install_code", &arg).map_err(|r| host_err("upgrading the directory", r))?;
            }
            id
        }
        None => {
            let mut all = vec![admin];
            all.extend(controllers.iter().copied().filter(|c| *c != admin));
            let arg = mgmt::ProvisionalCreateCanisterWithCyclesArgs {
                amount: Some(LOCAL_DIRECTORY_CYCLES.into()),
                settings: Some(mgmt::CanisterSettings { controllers: Some(all), ..Default::default() }),
                specified_id: None,
                sender_canister_version: None,
            };
            let r: mgmt::CanisterIdRecord = host
                .management(admin, "provisional_create_canister_with_cycles", &arg)
                .map_err(|r| host_err("creating the directory", r))?;
            let install = mgmt::InstallCodeArgs {
                mode: mgmt::CanisterInstallMode::Install,
                canister_id: r.canister_id,
                wasm_module: directory_wasm.to_vec(),
                arg: candid::encode_args(())?,
                sender_canister_version: None,
            };
            host.management::<_, ()>(admin, "install_code", &install).map_err(|r| host_err("installing the directory", r))?;
            std::fs::write(&file, r.canister_id.to_text()).with_context(|| format!("writing {}", file.display()))?;
            r.canister_id
        }
    };
    let set: dir::Result<serde_bytes::ByteBuf> =
        call(host, id, admin, "admin_set_storage_wasm", &serde_bytes::ByteBuf::from(storage_wasm.to_vec()))?;
    set.map_err(|e| anyhow!("admin_set_storage_wasm: {e:?}"))?;
    let mut list: Vec<dir::StorageInfo> = call(host, id, admin, "storage_list", &())?;
    while list.len() < storage {
        let args = AddStorageArgs { controllers: Some(std::iter::once(admin).chain(controllers.iter().copied()).collect()), ..Default::default() };
        let added: dir::Result<dir::StorageInfo> = call(host, id, admin, "admin_add_storage", &args)?;
        list.push(added.map_err(|e| anyhow!("admin_add_storage: {e:?}"))?);
    }
    Ok((id, list.into_iter().map(|s| s.canister_id).collect()))
}

/// The directory as a client sees it, over ic-agent, with a cache of capsule → storage
/// canister in the state folder.
pub struct DirectoryClient {
    agent: Agent,
    id: Principal,
    cache_path: PathBuf,
    retry: RetryPolicy,
}

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Cache {
    /// directory id → capsule id → storage canister id
    directories: BTreeMap<String, BTreeMap<u64, String>>,
}

impl DirectoryClient {
    /// `retry`: for its queries (the CLI's `--retry-for`); `capsules_create` is not
    /// retried (a lost reply may have created a capsule).
    pub fn new(agent: Agent, id: Principal, state: &Path, retry: RetryPolicy) -> Self {
        DirectoryClient { agent, id, cache_path: state.join("directory-cache.json"), retry }
    }

    fn cache(&self) -> Cache {
        std::fs::read(&self.cache_path).ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default()
    }

    fn remember(&self, capsule: u64, canister: Principal) {
        let mut c = self.cache();
        c.directories.entry(self.id.to_text()).or_default().insert(capsule, canister.to_text());
        if let Some(dir) = self.cache_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = crate::fsutil::write_atomic(&self.cache_path, &serde_json::to_vec_pretty(&c).unwrap_or_default());
    }

    /// The cached storage canister of `capsule`, without asking the directory.
    pub fn cached(&self, capsule: u64) -> Option<Principal> {
        let c = self.cache();
        c.directories.get(&self.id.to_text())?.get(&capsule).and_then(|t| Principal::from_text(t).ok())
    }

    async fn query<R: for<'de> Deserialize<'de> + CandidType>(&self, method: &str, arg: Vec<u8>) -> anyhow::Result<R> {
        let call = || async { self.agent.query(&self.id, method).with_arg(arg.clone()).call().await.map_err(classify) };
        let bytes = self.retry.run(call).await.map_err(|e| anyhow!("directory {}: {method}: {e}", self.id))?;
        candid::decode_one(&bytes).with_context(|| format!("decoding the directory's {method} reply"))
    }

    /// The storage canister of `capsule`: the cache, else one query to the directory
    /// (`capsules_route`, which answers anyone, members of a shared capsule too; a
    /// directory from before it has only `capsules_locate`).
    pub async fn locate(&self, capsule: u64) -> anyhow::Result<Principal> {
        if let Some(c) = self.cached(capsule) {
            return Ok(c);
        }
        let canister = match self.query::<dir::Result<Principal>>("capsules_route", candid::encode_one(capsule)?).await {
            Ok(r) => r.map_err(|e| anyhow!("directory {}: {}", self.id, describe(&e)))?,
            Err(e) if format!("{e:#}").contains("no query method") => {
                let r: dir::Result<CapsuleLocation> = self.query("capsules_locate", candid::encode_one(capsule)?).await?;
                r.map_err(|e| anyhow!("directory {}: {}", self.id, describe(&e)))?.canister_id
            }
            Err(e) => return Err(e),
        };
        self.remember(capsule, canister);
        Ok(canister)
    }

    /// Creates a capsule of the caller through the directory (with the invite code in
    /// `KEEPSAKE_INVITE`, for an invite-only directory).
    pub async fn create(&self, name: &str) -> anyhow::Result<CapsuleLocation> {
        let invite = std::env::var("KEEPSAKE_INVITE").ok().filter(|c| !c.trim().is_empty());
        let arg = candid::encode_one(CapsuleCreateArgs { name: name.to_string(), invite })?;
        let bytes = self
            .agent
            .update(&self.id, "capsules_create")
            .with_arg(arg)
            .call_and_wait()
            .await
            .map_err(|e| anyhow!("directory {}: capsules_create: {}", self.id, classify(e)))?;
        let r: dir::Result<CapsuleLocation> = candid::decode_one(&bytes)?;
        let loc = r.map_err(|e| anyhow!("directory {}: {}", self.id, describe(&e)))?;
        self.remember(loc.capsule_id, loc.canister_id);
        Ok(loc)
    }

    /// Every capsule the caller owns, across all storage canisters.
    pub async fn mine(&self) -> anyhow::Result<Vec<CapsuleLocation>> {
        let mut all = Vec::new();
        let mut cursor: Option<u64> = None;
        loop {
            let page: LocationPage = self.query("capsules_list", candid::encode_args((cursor, None::<u32>))?).await?;
            for l in &page.capsules {
                self.remember(l.capsule_id, l.canister_id);
            }
            all.extend(page.capsules);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => return Ok(all),
            }
        }
    }

    /// The caller's first capsule (by id), created (named "default") if there is none.
    pub async fn default_capsule(&self) -> anyhow::Result<CapsuleLocation> {
        let page: LocationPage = self.query("capsules_list", candid::encode_args((None::<u64>, Some(1u32)))?).await?;
        match page.capsules.into_iter().next() {
            Some(l) => {
                self.remember(l.capsule_id, l.canister_id);
                Ok(l)
            }
            None => self.create("default").await,
        }
    }
}

pub fn describe(e: &dir::Error) -> String {
    match e {
        dir::Error::Unauthorized(m) => format!("not allowed: {m}"),
        dir::Error::InvalidArgument(m) => format!("invalid argument: {m}"),
        dir::Error::NotFound(m) => format!("not found: {m}"),
        dir::Error::NoRoom(m) => format!("no room: {m}"),
        dir::Error::Storage(m) => format!("storage canister: {m}"),
        dir::Error::Conflict(m) => format!("conflict: {m}"),
    }
}
