//! The directory's stable layout (this module owns it): MemoryIds are never reused or
//! retyped. Everything lives in stable memory, so an upgrade keeps the map as it is.
//!
//! | MemoryId | what |
//! |---|---|
//! | 0 | `Meta` (config, next capsule id, rolling upgrade), Candid in a cell |
//! | 1 | the storage canisters' Wasm module (bytes) |
//! | 2 | storage canisters: canister id → `StorageInfo` |
//! | 3 | capsules: id → `Placed` (only confirmed placements) |
//! | 4 | (owner, capsule id) → () |
//! | 5 | pending placements: id → `Pending` (begun, not confirmed) |
//! | 6 | invite codes: SHA-256 of the code → expiry (ns); a used code is removed |

use std::borrow::Cow;

use candid::{CandidType, Principal};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::storable::Bound;
use ic_stable_structures::{DefaultMemoryImpl, StableBTreeMap, StableCell, Storable};
use serde::{Deserialize, Serialize};

use crate::api::{DirectoryConfig, SignupPolicy, StorageInfo, StorageState, UpgradeStatus};

type Mem = VirtualMemory<DefaultMemoryImpl>;

const MEM_META: MemoryId = MemoryId::new(0);
const MEM_WASM: MemoryId = MemoryId::new(1);
const MEM_STORAGE: MemoryId = MemoryId::new(2);
const MEM_CAPSULES: MemoryId = MemoryId::new(3);
const MEM_OWNERS: MemoryId = MemoryId::new(4);
const MEM_PENDING: MemoryId = MemoryId::new(5);
const MEM_INVITES: MemoryId = MemoryId::new(6);

/// Candid-encoded value (records grow by `opt` fields, which old bytes decode as null).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Candid<T>(pub T);

impl<T: CandidType + for<'de> Deserialize<'de>> Storable for Candid<T> {
    const BOUND: Bound = Bound::Unbounded;
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Owned(candid::encode_one(&self.0).expect("candid encode"))
    }
    fn into_bytes(self) -> Vec<u8> {
        candid::encode_one(&self.0).expect("candid encode")
    }
    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        Candid(candid::decode_one(&bytes).expect("candid decode of the directory's own record"))
    }
}

#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Meta {
    pub config: DirectoryConfig,
    pub next_capsule_id: u64,
    pub upgrade: Option<UpgradeRun>,
    pub wasm_sha256: Option<serde_bytes::ByteBuf>,
    /// The current sign-up window: (start ns, capsules begun in it).
    pub signup_window: Option<(u64, u32)>,
    /// Capsules made by sign-up (not by a controller), placed or pending. `null` in
    /// state from before it was kept: then counted once from the map.
    pub signup_capsules: Option<u64>,
}

/// A rolling upgrade: `order` is fixed when it starts; `status.done` indexes it.
#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct UpgradeRun {
    pub status: UpgradeStatus,
    pub order: Vec<Principal>,
    /// The state `status.current` goes back to after its upgrade: what it was before,
    /// or what an operator set (`admin_set_accepting`) while it was being upgraded.
    /// Kept here, not on the stack, so an interrupted run restores it too.
    pub restore: Option<StorageState>,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Placed {
    pub canister: Principal,
    pub owner: Principal,
    pub created_at_ns: u64,
}

#[derive(CandidType, Deserialize, Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Pending {
    pub canister: Principal,
    pub owner: Principal,
    pub name: String,
    /// Counted in `Meta::signup_capsules` (made by sign-up, not by a controller).
    pub signup: Option<bool>,
}

/// (owner, capsule id): principal length, principal bytes padded to 29, id big-endian.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct OwnerKey([u8; 38]);

impl OwnerKey {
    pub fn new(owner: Principal, id: u64) -> Self {
        let p = owner.as_slice();
        let mut k = [0u8; 38];
        k[0] = p.len() as u8;
        k[1..1 + p.len()].copy_from_slice(p);
        k[30..].copy_from_slice(&id.to_be_bytes());
        OwnerKey(k)
    }
    pub fn id(&self) -> u64 {
        u64::from_be_bytes(self.0[30..].try_into().expect("8 bytes"))
    }
}

impl Storable for OwnerKey {
    const BOUND: Bound = Bound::Bounded { max_size: 38, is_fixed_size: true };
    fn to_bytes(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.0)
    }
    fn into_bytes(self) -> Vec<u8> {
        self.0.to_vec()
    }
    fn from_bytes(bytes: Cow<'_, [u8]>) -> Self {
        OwnerKey(bytes.as_ref().try_into().expect("38-byte owner key"))
    }
}

pub struct Store {
    pub meta: StableCell<Candid<Meta>, Mem>,
    pub wasm: StableCell<Candid<serde_bytes::ByteBuf>, Mem>,
    pub storage: StableBTreeMap<Principal, Candid<StorageInfo>, Mem>,
    pub capsules: StableBTreeMap<u64, Candid<Placed>, Mem>,
    pub owners: StableBTreeMap<OwnerKey, (), Mem>,
    pub pending: StableBTreeMap<u64, Candid<Pending>, Mem>,
    pub invites: StableBTreeMap<[u8; 32], u64, Mem>,
}

pub fn default_config() -> DirectoryConfig {
    DirectoryConfig {
        min_free_bytes: 8 << 30,
        storage_capacity_bytes: 464 << 30,
        new_storage_cycles: 2_000_000_000_000,
        top_up_below: 1_000_000_000_000,
        top_up_cycles: 2_000_000_000_000,
        refresh_interval_s: 600,
        max_capsules_per_owner: 16,
        signup: Some(default_signup()),
    }
}

/// The policy of a directory whose operator chose none: open, at most 1,000 new
/// capsules an hour and 10,000 made by sign-up (a tenth of one storage canister's
/// `max_capsules`).
pub fn default_signup() -> SignupPolicy {
    SignupPolicy::Open { max_new_per_window: 1_000, window_secs: 3_600, max_empty_capsules: 10_000 }
}

impl Store {
    pub fn open() -> Store {
        let mm = MemoryManager::init(DefaultMemoryImpl::default());
        let meta = Meta {
            config: default_config(),
            next_capsule_id: 1,
            upgrade: None,
            wasm_sha256: None,
            signup_window: None,
            signup_capsules: Some(0),
        };
        Store {
            meta: StableCell::init(mm.get(MEM_META), Candid(meta)),
            wasm: StableCell::init(mm.get(MEM_WASM), Candid(serde_bytes::ByteBuf::new())),
            storage: StableBTreeMap::init(mm.get(MEM_STORAGE)),
            capsules: StableBTreeMap::init(mm.get(MEM_CAPSULES)),
            owners: StableBTreeMap::init(mm.get(MEM_OWNERS)),
            pending: StableBTreeMap::init(mm.get(MEM_PENDING)),
            invites: StableBTreeMap::init(mm.get(MEM_INVITES)),
        }
    }

    /// The sign-up policy in force.
    pub fn signup_policy(&self) -> SignupPolicy {
        self.meta().config.signup.unwrap_or_else(default_signup)
    }

    /// Capsules made by sign-up, placed or pending (counted once from the map in state
    /// from before the count was kept: every capsule then counts).
    pub fn signup_capsules(&self) -> u64 {
        self.meta().signup_capsules.unwrap_or(self.capsules.len() + self.pending.len())
    }

    pub fn add_signup_capsules(&mut self, delta: i64) {
        let n = self.signup_capsules().saturating_add_signed(delta);
        self.update_meta(|m| m.signup_capsules = Some(n));
    }

    pub fn meta(&self) -> Meta {
        self.meta.get().0.clone()
    }

    pub fn update_meta(&mut self, f: impl FnOnce(&mut Meta)) {
        let mut m = self.meta();
        f(&mut m);
        self.meta.set(Candid(m));
    }

    /// Capsules placed for `owner`.
    pub fn owned_by(&self, owner: Principal) -> usize {
        self.owners.range(OwnerKey::new(owner, 0)..=OwnerKey::new(owner, u64::MAX)).count()
    }

    pub fn storage_get(&self, id: Principal) -> Option<StorageInfo> {
        self.storage.get(&id).map(|s| s.0)
    }

    pub fn storage_list(&self) -> Vec<StorageInfo> {
        self.storage.iter().map(|e| e.value().0).collect()
    }

    /// Changes the record of storage canister `id` (if it is one); returns the record.
    pub fn update_storage(&mut self, id: Principal, f: impl FnOnce(&mut StorageInfo)) -> Option<StorageInfo> {
        let mut s = self.storage_get(id)?;
        f(&mut s);
        self.storage.insert(id, Candid(s.clone()));
        Some(s)
    }

    pub fn add_storage(&mut self, info: StorageInfo) {
        self.storage.insert(info.canister_id, Candid(info));
    }

    /// Confirms a placement: the map entry, the owner index and the count are written
    /// together, in one message, and the pending entry goes.
    pub fn place(&mut self, id: u64, p: Placed) {
        self.owners.insert(OwnerKey::new(p.owner, id), ());
        self.update_storage(p.canister, |s| {
            s.capsules += 1;
            s.capsules_held = s.capsules_held.map(|h| h + 1);
        });
        self.capsules.insert(id, Candid(p));
        self.pending.remove(&id);
    }

    /// Drops a placement that will not be made (given back to the sign-up count).
    pub fn drop_pending(&mut self, id: u64) {
        if let Some(p) = self.pending.remove(&id) {
            if p.0.signup == Some(true) {
                self.add_signup_capsules(-1);
            }
        }
    }

    /// A call to storage canister `id` failed: Unreachable, unless an operator closed it
    /// or a rolling upgrade holds it (a failure never reopens it).
    pub fn mark_unreachable(&mut self, id: Principal, error: String) {
        self.update_storage(id, |s| {
            s.state = crate::placement::after_failure(s.state);
            s.last_error = Some(error);
        });
    }

    pub fn set_state(&mut self, id: Principal, state: StorageState, error: Option<String>) {
        self.update_storage(id, |s| {
            s.state = state;
            if error.is_some() {
                s.last_error = error;
            }
        });
    }
}
