//! The keepsake backend: verified, chunked uploads into stable memory.
//!
//! Calls use the canister's own Candid types (`backend::api`).

use anyhow::{anyhow, bail, Result};
use backend::api::{BeginArgs, BlobMeta, Capsule, CapsuleCreateArgs, Error, GcReport, PutChunkOk, Session, Stats, UploadConfig};
use candid::Principal;
use ic_host::Host;
use serde_bytes::ByteBuf;

use crate::data::File;
use crate::meter::{call, ok, Msg};

type Res<T> = std::result::Result<T, Error>;

pub const USER: Principal = Principal::from_slice(&[0x6b, 0x65, 0x65, 0x70, 0x73, 0x61, 0x6b, 0x65, 0x01]);

pub struct Canister {
    pub host: Host,
    capsule: u64,
}

impl Canister {
    pub fn install(wasm: &[u8]) -> Result<Self> {
        Self::on(Host::new(wasm, &candid::encode_args(())?)?)
    }

    /// The backend installed as `host`'s default canister, with a capsule.
    pub fn on(mut host: Host) -> Result<Self> {
        let (capsule, _): (Res<Capsule>, _) =
            ok(&mut host, true, USER, "capsules_create", (CapsuleCreateArgs { name: "bench".into() },), 0)?;
        let capsule = capsule.map_err(|e| anyhow!("capsules_create: {e:?}"))?.id;
        Ok(Self { host, capsule })
    }

    /// The capsule every upload of this canister goes to.
    pub fn capsule(&self) -> u64 {
        self.capsule
    }

    /// Deletes a blob (its chunks are queued for housekeeping).
    pub fn delete(&mut self, blob: u64) -> Result<()> {
        let (r, _): (Res<()>, _) = ok(&mut self.host, true, USER, "blobs_delete", (blob,), 0)?;
        r.map_err(|e| anyhow!("blobs_delete: {e:?}"))
    }

    /// Housekeeping until nothing is left (as the controller).
    pub fn gc(&mut self) -> Result<()> {
        loop {
            let (r, _): (Res<GcReport>, _) = ok(&mut self.host, true, ic_host::DEFAULT_CONTROLLER, "admin_gc", (), 0)?;
            if !r.map_err(|e| anyhow!("admin_gc: {e:?}"))?.more {
                return Ok(());
            }
        }
    }

    pub fn stats(&mut self) -> Result<Stats> {
        Ok(ok(&mut self.host, false, ic_host::DEFAULT_CONTROLLER, "stats", (), 0)?.0)
    }

    pub fn config(&mut self) -> Result<UploadConfig> {
        Ok(ok(&mut self.host, false, USER, "upload_config", (), 0)?.0)
    }

    pub fn begin(&mut self, file: &File, name: &str) -> Result<(u64, Msg)> {
        let args = BeginArgs {
            capsule_id: self.capsule,
            size: file.size,
            chunk_size: Some(file.chunk_size),
            sha256: None,
            mime: "video/mp4".into(),
            name: name.into(),
            pmid: None,
            idempotency_key: None,
        };
        let (r, msg): (Res<Session>, _) = ok(&mut self.host, true, USER, "uploads_begin", (args,), 0)?;
        Ok((r.map_err(|e| anyhow!("uploads_begin: {e:?}"))?.id, msg))
    }

    pub fn put(&mut self, session: u64, idx: u32, bytes: Vec<u8>) -> Result<Msg> {
        let len = bytes.len() as u64;
        let (r, msg): (Res<PutChunkOk>, _) =
            ok(&mut self.host, true, USER, "uploads_put_chunk", (session, idx, ByteBuf::from(bytes)), len)?;
        match r {
            Ok(PutChunkOk { stored: true, .. }) => Ok(msg),
            Ok(_) => bail!("uploads_put_chunk {idx}: not stored"),
            Err(e) => bail!("uploads_put_chunk {idx}: {e:?}"),
        }
    }

    /// Finishes (again while the rolling hash catches up); every finish message.
    pub fn finish(&mut self, session: u64, file: &File, sha256: [u8; 32]) -> Result<(u64, Vec<Msg>)> {
        let mut msgs = Vec::new();
        for _ in 0..=file.chunk_count() {
            let (r, msg): (Res<BlobMeta>, _) = ok(
                &mut self.host,
                true,
                USER,
                "uploads_finish",
                (session, ByteBuf::from(sha256.to_vec()), file.size),
                0,
            )?;
            msgs.push(msg);
            match r {
                Ok(b) if b.size == file.size && b.sha256.as_slice() == sha256 => return Ok((b.id, msgs)),
                Ok(_) => bail!("uploads_finish: the blob does not match the file"),
                Err(Error::InProgress(_)) => continue,
                Err(e) => bail!("uploads_finish: {e:?}"),
            }
        }
        bail!("uploads_finish: still in progress after {} calls", msgs.len())
    }

    pub fn read_chunk(&mut self, blob: u64, idx: u32) -> Result<(Vec<u8>, Msg)> {
        let (r, msg): (Res<ByteBuf>, _) = ok(&mut self.host, false, USER, "blobs_read_chunk", (blob, idx), 0)?;
        let bytes = r.map_err(|e| anyhow!("blobs_read_chunk: {e:?}"))?.into_vec();
        Ok((bytes.clone(), Msg { payload: bytes.len() as u64, ..msg }))
    }

    pub fn read_range(&mut self, blob: u64, offset: u64, len: u64) -> Result<(Vec<u8>, Msg)> {
        let c = call::<_, Res<ByteBuf>>(&mut self.host, false, USER, "blobs_read_range", (blob, offset, len), 0)?;
        let r = c.reply.map_err(|e| anyhow!("blobs_read_range: {e}"))?;
        let bytes = r.map_err(|e| anyhow!("blobs_read_range: {e:?}"))?.into_vec();
        Ok((bytes.clone(), Msg { payload: bytes.len() as u64, ..c.msg }))
    }
}

/// One whole upload of `file`, chunks in order, and what each message cost.
pub struct Upload {
    pub file: File,
    pub begin: Msg,
    pub puts: Vec<Msg>,
    pub finishes: Vec<Msg>,
    pub blob: u64,
}

impl Upload {
    pub fn messages(&self) -> impl Iterator<Item = &Msg> {
        std::iter::once(&self.begin).chain(&self.puts).chain(&self.finishes)
    }
    pub fn total(&self) -> u64 {
        self.messages().map(|m| m.instructions).sum()
    }
    pub fn largest(&self) -> u64 {
        self.messages().map(|m| m.instructions).max().unwrap_or(0)
    }
    pub fn finish_instructions(&self) -> u64 {
        self.finishes.iter().map(|m| m.instructions).sum()
    }
    /// The puts of full-size chunks.
    pub fn full_puts(&self) -> impl Iterator<Item = &Msg> {
        let cs = u64::from(self.file.chunk_size);
        self.puts.iter().filter(move |m| m.payload == cs)
    }
}

/// Uploads `file` with its chunks in order.
pub fn upload(c: &mut Canister, file: File) -> Result<Upload> {
    upload_in(c, file, false)
}

/// Uploads `file`, chunks in order or in reverse (the worst order for the rolling hash:
/// nothing can be hashed before the last put, finish then catches up in steps).
pub fn upload_in(c: &mut Canister, file: File, reverse: bool) -> Result<Upload> {
    let (session, begin) = c.begin(&file, "file")?;
    let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
    for idx in 0..file.chunk_count() {
        sha2::Digest::update(&mut hasher, file.chunk(idx));
    }
    let mut order: Vec<u32> = (0..file.chunk_count()).collect();
    if reverse {
        order.reverse();
    }
    let mut puts = Vec::with_capacity(order.len());
    for idx in order {
        puts.push(c.put(session, idx, file.chunk(idx))?);
    }
    let digest: [u8; 32] = sha2::Digest::finalize(hasher).into();
    let (blob, finishes) = c.finish(session, &file, digest)?;
    Ok(Upload { file, begin, puts, finishes, blob })
}

/// Stable memory after a delete/re-upload churn.
pub struct Churn {
    /// Content bytes of the blobs alive at the end.
    pub content: u64,
    pub stable: u64,
    /// Bytes in free arena extents at the end (fragmentation the churn left).
    pub free: u64,
    pub files: usize,
}

/// Uploads files of uneven sizes adding up to `total`, deletes every other one, frees
/// them, uploads new files of other uneven sizes in their place, and measures.
pub fn churn(wasm: &[u8], total: u64, chunk_size: u32) -> Result<Churn> {
    let mut c = Canister::install(wasm)?;
    let sizes = |n: u64, salt: u64| -> Vec<u64> {
        // 60 % to 140 % of the mean, deterministic.
        let mean = total / n;
        (0..n).map(|i| mean * (60 + (i * 37 + salt * 11) % 81) / 100).collect()
    };
    let mut live: Vec<(u64, u64)> = Vec::new();
    for (i, size) in sizes(10, 1).into_iter().enumerate() {
        let up = upload(&mut c, File::new(size, chunk_size, 500 + i as u64))?;
        live.push((up.blob, size));
    }
    let mut kept = Vec::new();
    for (i, (blob, size)) in live.into_iter().enumerate() {
        if i % 2 == 0 {
            c.delete(blob)?;
        } else {
            kept.push((blob, size));
        }
    }
    c.gc()?;
    for (i, size) in sizes(10, 2).into_iter().take(5).enumerate() {
        let up = upload(&mut c, File::new(size, chunk_size, 600 + i as u64))?;
        kept.push((up.blob, size));
    }
    c.gc()?;
    let st = c.stats()?;
    Ok(Churn { content: kept.iter().map(|(_, s)| s).sum(), stable: c.host.stable_size_bytes(), free: st.free_bytes, files: kept.len() })
}
