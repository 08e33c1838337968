//! The host's metadata: every canister's system state (controllers, module, sizes,
//! globals, timer, cycles, status), the call contexts and the message queue. Logged with
//! every transaction and written whole to the `meta` file at a checkpoint.
//!
//! `meta` file: `"ICHOSTDR" | version u32 | len u64 | candid(Meta) | crc32 of all before`,
//! replaced atomically (temporary file, fsync, rename, fsync of the directory).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use anyhow::{ensure, Context, Result};
use candid::{CandidType, Principal};
use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::network::{CallContext, CtxId, Queued};
use crate::state::CanisterStatus;

const MAGIC: &[u8; 8] = b"ICHOSTDR";
/// Version of the directory format (meta file, log records, page files).
pub(crate) const FORMAT_VERSION: u32 = 1;

/// A mutable global's value.
#[derive(Debug, Clone, CandidType, Deserialize)]
pub(crate) enum GlobalValue {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
    V128(u128),
    /// A reference-typed global: not kept (the module's initial value is used).
    Other,
}

impl GlobalValue {
    pub fn of(v: &wasmtime::Val) -> Self {
        match v {
            wasmtime::Val::I32(x) => GlobalValue::I32(*x),
            wasmtime::Val::I64(x) => GlobalValue::I64(*x),
            wasmtime::Val::F32(x) => GlobalValue::F32(*x),
            wasmtime::Val::F64(x) => GlobalValue::F64(*x),
            wasmtime::Val::V128(x) => GlobalValue::V128(x.as_u128()),
            _ => GlobalValue::Other,
        }
    }

    pub fn val(&self) -> Option<wasmtime::Val> {
        Some(match self {
            GlobalValue::I32(x) => wasmtime::Val::I32(*x),
            GlobalValue::I64(x) => wasmtime::Val::I64(*x),
            GlobalValue::F32(x) => wasmtime::Val::F32(*x),
            GlobalValue::F64(x) => wasmtime::Val::F64(*x),
            GlobalValue::V128(x) => wasmtime::Val::V128((*x).into()),
            GlobalValue::Other => return None,
        })
    }
}

/// One canister's committed system state.
#[derive(Debug, Clone, CandidType, Deserialize)]
pub(crate) struct CanisterMeta {
    pub id: Principal,
    pub controllers: Vec<Principal>,
    pub module_hash: Option<ByteBuf>,
    pub status: CanisterStatus,
    pub stable_pages: u64,
    pub max_stable_pages: u64,
    pub heap_bytes: u64,
    pub globals: Vec<GlobalValue>,
    pub global_timer: u64,
    pub certified_data: ByteBuf,
    pub canister_version: u64,
    pub cycles: u128,
}

/// The whole metadata, as decoded.
#[derive(Debug, Default, CandidType, Deserialize)]
pub(crate) struct Meta {
    /// Sequence number of the last transaction it includes.
    pub seq: u64,
    pub time: u64,
    pub next_canister: u64,
    pub next_ctx: u64,
    pub default_canister: Option<Principal>,
    pub canisters: Vec<CanisterMeta>,
    pub contexts: BTreeMap<CtxId, CallContext>,
    pub queue: VecDeque<Queued>,
    /// Call contexts of `stop_canister` calls waiting for their canister to stop.
    pub pending_stops: BTreeMap<Principal, Vec<CtxId>>,
}

/// [`Meta`] by reference, for encoding without copying the queue.
#[derive(CandidType)]
pub(crate) struct MetaRef<'a> {
    pub seq: u64,
    pub time: u64,
    pub next_canister: u64,
    pub next_ctx: u64,
    pub default_canister: Option<Principal>,
    pub canisters: Vec<CanisterMeta>,
    pub contexts: &'a BTreeMap<CtxId, CallContext>,
    pub queue: &'a VecDeque<Queued>,
    pub pending_stops: &'a BTreeMap<Principal, Vec<CtxId>>,
}

pub(crate) fn encode(m: &MetaRef<'_>) -> Vec<u8> {
    // Every field is plain data: encoding cannot fail.
    candid::encode_one(m).expect("ic-host: metadata encodes")
}

pub(crate) fn decode(bytes: &[u8]) -> Result<Meta> {
    candid::decode_one(bytes).context("ic-host state: undecodable metadata")
}

/// Writes the meta file atomically.
pub(crate) fn write_file(dir: &Path, payload: &[u8]) -> Result<()> {
    let mut bytes = Vec::with_capacity(payload.len() + 24);
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    bytes.extend_from_slice(payload);
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_le_bytes());
    crate::engine::write_atomically(dir, &dir.join("meta"), &bytes)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Reads the meta file (`None` if there is none: a new directory).
pub(crate) fn read_file(dir: &Path) -> Result<Option<Meta>> {
    let path = dir.join("meta");
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    ensure!(bytes.len() >= 24 && &bytes[..8] == MAGIC, "{} is not an ic-host state file", path.display());
    let version = u32::from_le_bytes(bytes[8..12].try_into()?);
    ensure!(
        version == FORMAT_VERSION,
        "{}: state format version {version}, this ic-host reads version {FORMAT_VERSION}",
        path.display()
    );
    let len = u64::from_le_bytes(bytes[12..20].try_into()?) as usize;
    ensure!(bytes.len() == 24 + len, "{} is truncated or has trailing bytes: the state is corrupt", path.display());
    let crc = u32::from_le_bytes(bytes[20 + len..].try_into()?);
    ensure!(crc32fast::hash(&bytes[..20 + len]) == crc, "{} fails its checksum: the state is corrupt", path.display());
    decode(&bytes[20..20 + len]).map(Some)
}
