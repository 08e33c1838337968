//! DFINITY's asset canister (ic-certified-assets 0.3.0): the batch upload a client
//! such as `icx-asset` does: `create_batch`, one `create_chunk` per chunk, then one
//! `commit_batch` that creates the asset and sets its content from the chunks.

use anyhow::{anyhow, bail, Result};
use candid::{CandidType, Deserialize, Nat};
use ic_host::{Host, DEFAULT_CONTROLLER};
use serde_bytes::ByteBuf;

use crate::data::File;
use crate::meter::{call_raw, ok, Msg};

#[derive(CandidType, Deserialize)]
struct CreateBatchResponse {
    batch_id: Nat,
}

#[derive(CandidType)]
struct CreateChunkArg {
    batch_id: Nat,
    content: ByteBuf,
}

#[derive(CandidType, Deserialize)]
struct CreateChunkResponse {
    chunk_id: Nat,
}

#[derive(CandidType)]
struct CreateAssetArguments {
    key: String,
    content_type: String,
    max_age: Option<u64>,
    headers: Option<Vec<(String, String)>>,
    enable_aliasing: Option<bool>,
    allow_raw_access: Option<bool>,
}

#[derive(CandidType)]
struct SetAssetContentArguments {
    key: String,
    content_encoding: String,
    chunk_ids: Vec<Nat>,
    last_chunk: Option<ByteBuf>,
    sha256: Option<ByteBuf>,
}

#[derive(CandidType)]
enum BatchOperation {
    CreateAsset(CreateAssetArguments),
    SetAssetContent(SetAssetContentArguments),
}

#[derive(CandidType)]
struct CommitBatchArguments {
    batch_id: Nat,
    operations: Vec<BatchOperation>,
}

#[derive(CandidType)]
struct GetArg {
    key: String,
    accept_encodings: Vec<String>,
}

#[derive(CandidType, Deserialize)]
struct EncodedAsset {
    total_length: Nat,
    sha256: Option<ByteBuf>,
}

const KEY: &str = "/file.mp4";

/// A staged batch: every chunk uploaded, not committed yet.
pub struct Batch {
    pub host: Host,
    pub file: File,
    pub sha256: [u8; 32],
    batch_id: Nat,
    chunk_ids: Vec<Nat>,
    /// `create_batch` and every `create_chunk`.
    pub upload: Vec<Msg>,
}

pub fn stage(wasm: &[u8], file: File) -> Result<Batch> {
    let mut host = Host::new(wasm, &candid::encode_args(())?)?;
    let me = DEFAULT_CONTROLLER; // init grants the installer the Commit permission
    let (b, m): (CreateBatchResponse, _) = ok(&mut host, true, me, "create_batch", (), 0)?;
    let mut upload = vec![m];
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    let mut chunk_ids = Vec::with_capacity(file.chunk_count() as usize);
    for idx in 0..file.chunk_count() {
        let bytes = file.chunk(idx);
        sha2::Digest::update(&mut hasher, &bytes);
        let len = bytes.len() as u64;
        let arg = CreateChunkArg { batch_id: b.batch_id.clone(), content: ByteBuf::from(bytes) };
        let (r, m): (CreateChunkResponse, _) = ok(&mut host, true, me, "create_chunk", (arg,), len)?;
        chunk_ids.push(r.chunk_id);
        upload.push(m);
    }
    let sha256: [u8; 32] = sha2::Digest::finalize(hasher).into();
    Ok(Batch { host, file, sha256, batch_id: b.batch_id, chunk_ids, upload })
}

impl Batch {
    /// `commit_batch`, with the client's digest (`trusted`) or with `sha256 = null` (the
    /// canister hashes the content). `Err` when it traps (the batch is then unchanged).
    pub fn commit(&mut self, trusted: bool) -> Result<(std::result::Result<(), String>, Msg)> {
        let arg = CommitBatchArguments {
            batch_id: self.batch_id.clone(),
            operations: vec![
                BatchOperation::CreateAsset(CreateAssetArguments {
                    key: KEY.into(),
                    content_type: "video/mp4".into(),
                    max_age: None,
                    headers: None,
                    enable_aliasing: None,
                    allow_raw_access: None,
                }),
                BatchOperation::SetAssetContent(SetAssetContentArguments {
                    key: KEY.into(),
                    content_encoding: "identity".into(),
                    chunk_ids: self.chunk_ids.clone(),
                    last_chunk: None,
                    sha256: trusted.then(|| ByteBuf::from(self.sha256.to_vec())),
                }),
            ],
        };
        let (r, msg) = call_raw(&mut self.host, DEFAULT_CONTROLLER, "commit_batch", (arg,), 0)?;
        Ok((r.map(|_| ()), msg))
    }

    /// Checks the committed asset: its length and the digest the canister stored.
    pub fn check(&mut self) -> Result<()> {
        let arg = GetArg { key: KEY.into(), accept_encodings: vec!["identity".into()] };
        let (a, _): (EncodedAsset, _) = ok(&mut self.host, false, DEFAULT_CONTROLLER, "get", (arg,), 0)?;
        if a.total_length != self.file.size {
            bail!("asset canister: stored {} bytes, not {}", a.total_length, self.file.size);
        }
        match a.sha256 {
            Some(d) if d.as_slice() == self.sha256 => Ok(()),
            other => Err(anyhow!("asset canister: stored digest {other:?} differs from the file's")),
        }
    }
}
