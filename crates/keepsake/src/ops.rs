//! High-level operations the CLI is made of: upload a file as a memory (with
//! derivatives), download an asset with verification, list memories.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use backend::api::{
    self, Asset, AssetInput, AssetKind, AssetSource, BlobMeta, Memory, MemoryCreateArgs, MemoryMeta,
};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::client::{Client, ClientError};
use crate::derive::{self, Derivatives, Rendition};
use crate::download::{self, DownloadOptions};
use crate::fsutil::hex;
use crate::journal::{Fingerprint, Journal};
use crate::mime;
use crate::upload::{self, NoProgress, Progress, UploadError, UploadOptions, UploadReport};

/// Files under `inputs` (folders walked recursively, hidden entries skipped), sorted.
pub fn collect_files(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading folder {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let p = e.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.is_file() {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for i in inputs {
        if i.is_dir() {
            walk(i, &mut out)?;
        } else if i.is_file() {
            out.push(i.clone());
        } else {
            bail!("{}: no such file or folder", i.display());
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, Default)]
pub struct UploadRequest {
    pub title: Option<String>,
    pub derivatives: bool,
    /// Upload again even if the journal says this file already is a memory.
    pub force: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AssetSummary {
    pub kind: AssetKind,
    pub blob_id: Option<u64>,
    pub inline: bool,
    pub size: u64,
    pub mime: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub chunks_sent: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct FileResult {
    pub path: String,
    pub mime: String,
    pub title: String,
    pub capsule_id: u64,
    /// `None` when the canister has no memories API yet (the blob is stored).
    pub memory_id: Option<u64>,
    pub original: UploadReport,
    pub assets: Vec<AssetSummary>,
    /// Chunks sent by this run for every blob of the file.
    pub chunks_sent: u32,
    pub bytes_sent: u64,
    /// The file was already uploaded (same fingerprint) as `memory_id`: nothing was sent.
    pub skipped: bool,
    pub warnings: Vec<String>,
}

/// Makes progress reporters, one per file.
pub trait ProgressFactory {
    fn for_file(&self, label: &str) -> Box<dyn Progress>;
}

pub struct NoProgressFactory;
impl ProgressFactory for NoProgressFactory {
    fn for_file(&self, _label: &str) -> Box<dyn Progress> {
        Box::new(NoProgress)
    }
}

/// A memory asset that is blob `blob`.
pub fn blob_asset(
    kind: AssetKind,
    blob: &BlobMeta,
    mime: &str,
    dims: Option<(u32, u32)>,
) -> AssetInput {
    AssetInput {
        kind,
        source: AssetSource::Blob(blob.id),
        mime: mime.to_string(),
        width: dims.map(|d| d.0),
        height: dims.map(|d| d.1),
        duration_ms: None,
    }
}

/// Uploads one file and commits it as one memory: the original (streamed, resumable)
/// and, with `derivatives`, for images display + thumbnail blobs and an inline
/// placeholder, for videos (with ffmpeg) a poster frame + thumbnail and a placeholder.
pub async fn upload_path(
    client: &Client,
    journal: &mut Journal,
    path: &Path,
    capsule_id: u64,
    req: &UploadRequest,
    opts: &UploadOptions,
    progress: &dyn ProgressFactory,
) -> Result<FileResult, UploadError> {
    let mut fp = Fingerprint::of_file(path)?;
    if req.force {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        fp.salt = format!("force-{}", t.as_nanos());
    }
    let key = fp.key();
    let mime = mime::from_path(path);
    let label = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !req.force {
        if let Some(done) = already_uploaded(client, journal, &fp, capsule_id, mime).await? {
            return Ok(done);
        }
    }
    let bar = progress.for_file(&label);
    let original =
        upload::upload_file(client, journal, path, &fp, capsule_id, mime, opts, &*bar).await?;
    drop(bar);

    let mut warnings = Vec::new();
    let mut assets = Vec::new();
    let mut summaries = Vec::new();
    let is_image = mime::is_derivable_image(mime);
    let mut dims = None;
    let mut duration_ms = None;
    let mut derived: Option<Derivatives> = None;
    if mime.starts_with("video/") && req.derivatives {
        // A poster frame from the video itself, and its thumbnail and placeholder, so
        // that a gallery shows videos like photos.
        let frame = crate::poster::poster(path);
        match frame.and_then(|f| Ok((derive::derive(&f.image)?, f.duration_ms))) {
            Ok((mut d, ms)) => {
                d.display.kind = AssetKind::Poster;
                dims = Some((d.width, d.height));
                duration_ms = ms;
                derived = Some(d);
            }
            Err(e) => warnings.push(format!("no poster: {e:#}")),
        }
    } else if is_image {
        if req.derivatives {
            match derive::derive_file(path) {
                Ok(d) => {
                    dims = Some((d.width, d.height));
                    derived = Some(d);
                }
                Err(e) => warnings.push(format!("no derivatives: {e:#}")),
            }
        } else {
            dims = derive::dimensions(path);
        }
    }
    assets.push(AssetInput { duration_ms, ..blob_asset(AssetKind::Original, &original.blob, mime, dims) });
    summaries.push(AssetSummary {
        kind: AssetKind::Original,
        blob_id: Some(original.blob_id),
        inline: false,
        size: original.size,
        mime: mime.to_string(),
        width: dims.map(|d| d.0),
        height: dims.map(|d| d.1),
        chunks_sent: original.chunks_sent,
    });
    let mut chunks_sent = original.chunks_sent;
    let mut bytes_sent = original.bytes_sent;

    if let Some(d) = &derived {
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "image".into());
        for r in [&d.display, &d.thumbnail] {
            let name = format!(
                "{stem}.{}.jpg",
                format!("{:?}", r.kind).to_ascii_lowercase()
            );
            let rkey = format!("{key}-{:?}", r.kind);
            let rep = upload::upload_bytes(
                client,
                &r.bytes,
                &name,
                r.mime,
                capsule_id,
                &rkey,
                Some(&key),
                opts,
                &NoProgress,
            )
            .await?;
            chunks_sent += rep.chunks_sent;
            bytes_sent += rep.bytes_sent;
            assets.push(blob_asset(
                r.kind,
                &rep.blob,
                r.mime,
                Some((r.width, r.height)),
            ));
            summaries.push(summary_of(r, Some(rep.blob_id), rep.chunks_sent));
        }
        let p: &Rendition = &d.placeholder;
        assets.push(AssetInput {
            kind: AssetKind::Placeholder,
            source: AssetSource::Inline(ByteBuf::from(p.bytes.clone())),
            mime: p.mime.to_string(),
            width: Some(p.width),
            height: Some(p.height),
            duration_ms: None,
        });
        summaries.push(summary_of(p, None, 0));
    }

    let title = req.title.clone().unwrap_or_else(|| label.clone());
    let args = MemoryCreateArgs {
        capsule_id,
        meta: MemoryMeta {
            title: title.clone(),
            kind: mime::memory_kind(mime),
            description: String::new(),
            taken_at_ns: None,
            tags: Vec::new(),
        },
        assets,
        idempotency_key: Some(key.clone()),
    };
    let memory_id = match client.memories_create(&args).await {
        Ok(m) => Some(m.id),
        Err(e) if e.is_unknown_method() => {
            warnings.push(
                "this canister has no memories API yet: the blobs are stored, no memory was made"
                    .into(),
            );
            None
        }
        Err(e) => return Err(e.into()),
    };
    match memory_id {
        Some(m) => {
            let mut e = journal
                .get(&client.target(), capsule_id, &key)
                .cloned()
                .unwrap_or(crate::journal::Entry {
                    target: client.target(),
                    capsule_id,
                    session_id: original.session_id,
                    path: fp.path.clone(),
                    size: fp.size,
                    blob_id: Some(original.blob_id),
                    memory_id: None,
                });
            e.memory_id = Some(m);
            journal.put(&key, e)?;
        }
        None => journal.remove(&client.target(), capsule_id, &key)?,
    }
    Ok(FileResult {
        path: fp.path,
        mime: mime.to_string(),
        title,
        capsule_id,
        memory_id,
        original,
        assets: summaries,
        chunks_sent,
        bytes_sent,
        skipped: false,
        warnings,
    })
}

/// The result of an earlier run, if the journal says this exact file already is a memory
/// of this capsule and the canister still has it.
async fn already_uploaded(
    client: &Client,
    journal: &Journal,
    fp: &Fingerprint,
    capsule_id: u64,
    mime: &str,
) -> Result<Option<FileResult>, UploadError> {
    let Some(e) = journal.get(&client.target(), capsule_id, &fp.key()) else {
        return Ok(None);
    };
    let (Some(memory_id), Some(blob_id)) = (e.memory_id, e.blob_id) else {
        return Ok(None);
    };
    let memory = match client.memories_get(memory_id).await {
        Ok(m) => m,
        Err(ClientError::Canister(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let blob = client.blobs_meta(blob_id).await?;
    let original = UploadReport {
        blob_id,
        session_id: e.session_id,
        size: blob.size,
        sha256: hex(&blob.sha256),
        chunks_total: blob.chunk_count,
        chunks_sent: 0,
        bytes_sent: 0,
        resumed: false,
        deduplicated: false,
        seconds: 0.0,
        blob,
    };
    let assets = memory
        .assets
        .iter()
        .map(|a| AssetSummary {
            kind: a.kind,
            blob_id: a.blob_id,
            inline: a.inline.is_some(),
            size: a.size,
            mime: a.mime.clone(),
            width: a.width,
            height: a.height,
            chunks_sent: 0,
        })
        .collect();
    Ok(Some(FileResult {
        path: fp.path.clone(),
        mime: mime.to_string(),
        title: memory.meta.title.clone(),
        capsule_id,
        memory_id: Some(memory_id),
        original,
        assets,
        chunks_sent: 0,
        bytes_sent: 0,
        skipped: true,
        warnings: Vec::new(),
    }))
}

fn summary_of(r: &Rendition, blob_id: Option<u64>, chunks_sent: u32) -> AssetSummary {
    AssetSummary {
        kind: r.kind,
        blob_id,
        inline: blob_id.is_none(),
        size: r.bytes.len() as u64,
        mime: r.mime.to_string(),
        width: Some(r.width),
        height: Some(r.height),
        chunks_sent,
    }
}

/// What a download wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Downloaded {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub verified: bool,
}

/// Streams a blob into `out` (N chunk reads in flight, in order), verifying its SHA-256
/// against `expected` (and the blob's own) before the file appears under its name.
pub async fn download_blob(
    client: &Client,
    blob_id: u64,
    expected: Option<&[u8]>,
    out: &Path,
    in_flight: usize,
) -> anyhow::Result<Downloaded> {
    let opts = DownloadOptions {
        in_flight,
        ..Default::default()
    };
    let f = download::fetch_blob(client, blob_id, expected, out, &opts, &NoProgress).await?;
    Ok(Downloaded {
        path: f.path,
        size: f.size,
        sha256: f.sha256,
        verified: true,
    })
}

/// Writes an asset of a memory to `out`, verified.
pub async fn download_asset(
    client: &Client,
    asset: &Asset,
    out: &Path,
    in_flight: usize,
) -> anyhow::Result<Downloaded> {
    match (&asset.blob_id, &asset.inline) {
        (Some(b), _) => download_blob(client, *b, Some(&asset.sha256), out, in_flight).await,
        (None, Some(bytes)) => {
            let digest = Sha256::digest(bytes);
            if digest[..] != asset.sha256[..] {
                bail!(
                    "checksum mismatch: inline {:?} hashes to {}, expected {}",
                    asset.kind,
                    hex(&digest),
                    hex(&asset.sha256)
                );
            }
            download::write_inline(out, bytes, false)?;
            Ok(Downloaded {
                path: out.display().to_string(),
                size: bytes.len() as u64,
                sha256: hex(&digest),
                verified: true,
            })
        }
        (None, None) => Err(anyhow!(
            "asset {:?} has neither a blob nor inline bytes",
            asset.kind
        )),
    }
}

pub fn find_asset(memory: &Memory, kind: AssetKind) -> anyhow::Result<&Asset> {
    memory
        .assets
        .iter()
        .find(|a| a.kind == kind)
        .ok_or_else(|| {
            let have: Vec<String> = memory
                .assets
                .iter()
                .map(|a| format!("{:?}", a.kind).to_ascii_lowercase())
                .collect();
            anyhow!(
                "memory {} has no {:?} asset (it has: {})",
                memory.id,
                kind,
                have.join(", ")
            )
        })
}

pub fn parse_asset_kind(s: &str) -> anyhow::Result<AssetKind> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "original" => AssetKind::Original,
        "display" => AssetKind::Display,
        "thumbnail" | "thumb" => AssetKind::Thumbnail,
        "placeholder" => AssetKind::Placeholder,
        "poster" => AssetKind::Poster,
        "preview" => AssetKind::Preview,
        "other" => AssetKind::Other,
        _ => bail!("unknown asset kind '{s}' (original, display, thumbnail, placeholder, poster, preview, other)"),
    })
}

/// Maps a failure to a clear message (typed refusals first).
pub fn human_error(e: &anyhow::Error) -> String {
    for cause in e.chain() {
        if let Some(c) = cause.downcast_ref::<ClientError>() {
            return c.to_string();
        }
        if let Some(u) = cause.downcast_ref::<UploadError>() {
            return u.to_string();
        }
    }
    format!("{e:#}")
}

/// The typed refusal behind a failure, if any.
pub fn refusal(e: &anyhow::Error) -> Option<&api::Error> {
    e.chain().find_map(|c| {
        c.downcast_ref::<ClientError>()
            .and_then(ClientError::canister)
            .or_else(|| match c.downcast_ref::<UploadError>() {
                Some(UploadError::Client(ce)) => ce.canister(),
                _ => None,
            })
    })
}
