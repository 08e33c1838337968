//! `keepsake import`: an export folder (layout in [`crate::archive`]) back into a
//! canister. Idempotent: each memory's idempotency key comes from its folder name and
//! content, each blob upload declares its SHA-256 (a capsule that already has the bytes
//! answers at once: nothing is sent) and has its own key (an interrupted upload resumes
//! with its missing chunks). A second import therefore sends no bytes and creates no
//! memory. Memories are created in folder order, so ids follow the archive's order.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use backend::api::{AssetInput, AssetSource, Capsule, Memory, MemoryCreateArgs, MemoryMeta, Role, Stats};
use serde::Serialize;
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use crate::archive::{
    self, AssetEntry, CapsuleManifest, MemoryContent, MemoryManifest, Storage, CAPSULE_FILE,
    MEMORY_FILE,
};
use crate::client::Client;
use crate::download;
use crate::fsutil::hex;
use crate::remove::space;
use crate::upload::{self, Declared, PartOf, Progress, UploadError, UploadOptions};

#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Put every memory into this capsule (else each capsule folder goes to the caller's
    /// capsule of the same name, created if there is none).
    pub capsule: Option<u64>,
    pub upload: UploadOptions,
}

#[derive(Clone, Debug, Serialize)]
pub struct CapsuleTarget {
    pub folder: String,
    pub capsule_id: u64,
    pub name: String,
    /// This import created the capsule.
    pub created: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ImportReport {
    pub dir: String,
    pub capsules: Vec<CapsuleTarget>,
    /// Memory folders found.
    pub memories: u32,
    /// Memories the canister holds for them now (created, or found by their key).
    pub memories_imported: u32,
    /// Memories skipped because the archive came from this very capsule and the memory
    /// is still there, unchanged.
    pub memories_already_there: u32,
    /// Blobs whose bytes were sent (or the rest of them, after an interruption).
    pub blobs_uploaded: u32,
    /// Blobs the capsule already stored (nothing sent).
    pub blobs_already_stored: u32,
    pub chunks_sent: u64,
    pub bytes_sent: u64,
    pub bytes_total: u64,
    pub seconds: f64,
    pub interrupted: bool,
    pub before: Option<Stats>,
    pub after: Option<Stats>,
}

impl ImportReport {
    /// Memories the canister gained (from `stats`), if the figures are readable.
    pub fn memories_added(&self) -> Option<i64> {
        Some(self.after.as_ref()?.memories as i64 - self.before.as_ref()?.memories as i64)
    }
}

struct Job {
    capsule_id: u64,
    folder: String,
    dir: PathBuf,
    manifest: MemoryManifest,
}

/// The capsule folders of an export: `dir` itself, or its subfolders with a manifest.
fn capsule_folders(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if dir.join(CAPSULE_FILE).is_file() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        return Ok(vec![(name, dir.to_path_buf())]);
    }
    let found = archive::folders_with(dir, CAPSULE_FILE)?;
    if found.is_empty() {
        bail!(
            "{} holds no keepsake export (no {CAPSULE_FILE} in it or in its folders)",
            dir.display()
        );
    }
    Ok(found)
}

/// The caller's capsule named `name` that it may write to (the oldest), else a new one.
async fn capsule_named(
    client: &Client,
    name: &str,
    known: &mut Vec<Capsule>,
) -> anyhow::Result<(Capsule, bool)> {
    let writable =
        |c: &&Capsule| c.name == name && matches!(c.my_role, Some(Role::Owner | Role::Writer));
    if let Some(c) = known.iter().filter(writable).min_by_key(|c| c.id) {
        return Ok((c.clone(), false));
    }
    let c = client.capsules_create(name).await?;
    known.push(c.clone());
    Ok((c, true))
}

pub async fn import(
    client: &Client,
    dir: &Path,
    opts: &ImportOptions,
    progress: &dyn Progress,
) -> anyhow::Result<ImportReport> {
    let t0 = Instant::now();
    let mut report = ImportReport {
        dir: dir.display().to_string(),
        ..Default::default()
    };
    let folders = capsule_folders(dir)?;
    let fixed = match opts.capsule {
        Some(id) => Some(client.resolve_capsule(Some(id)).await?),
        None => None,
    };
    let mut known = if fixed.is_some() {
        Vec::new()
    } else {
        client.capsules_list().await?
    };
    let mut jobs = Vec::new();
    for (folder, cdir) in folders {
        let cm: CapsuleManifest = archive::read_json(&cdir.join(CAPSULE_FILE))?;
        let (capsule, created) = match &fixed {
            Some(c) => (c.clone(), false),
            None => capsule_named(client, &cm.name, &mut known).await?,
        };
        report.capsules.push(CapsuleTarget {
            folder: folder.clone(),
            capsule_id: capsule.id,
            name: capsule.name.clone(),
            created,
        });
        for (mfolder, mdir) in archive::folders_with(&cdir, MEMORY_FILE)? {
            let manifest: MemoryManifest = archive::read_json(&mdir.join(MEMORY_FILE))?;
            if !manifest.content.format.starts_with("keepsake-memory/1") {
                bail!(
                    "{}: format {:?} is not one this keepsake reads",
                    mdir.join(MEMORY_FILE).display(),
                    manifest.content.format
                );
            }
            jobs.push(Job {
                capsule_id: capsule.id,
                folder: mfolder,
                dir: mdir,
                manifest,
            });
        }
    }
    report.memories = jobs.len() as u32;
    report.bytes_total = jobs
        .iter()
        .flat_map(|j| &j.manifest.content.assets)
        .map(|a| a.size)
        .sum();
    report.before = space(client).await.ok();
    progress.begin(report.bytes_total, 0);
    for job in &jobs {
        progress.message(&job.manifest.content.title);
        match import_memory(client, job, opts, progress, &mut report).await {
            Ok(()) => {}
            Err(e) if is_interrupted(&e) => {
                report.interrupted = true;
                break;
            }
            Err(e) => return Err(e.context(job.dir.display().to_string())),
        }
    }
    report.after = space(client).await.ok();
    report.seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

fn is_interrupted(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        matches!(
            c.downcast_ref::<UploadError>(),
            Some(UploadError::Interrupted { .. })
        )
    })
}

/// The memory `assigned` names, if the archive came from this canister and capsule and
/// the memory is still there with the same content.
async fn still_there(client: &Client, job: &Job) -> Option<Memory> {
    let a = job.manifest.assigned.as_ref()?;
    if a.source != client.target() || a.capsule_id != job.capsule_id {
        return None;
    }
    let m = client.memories_get(a.memory_id).await.ok()?;
    (m.capsule_id == job.capsule_id && same_content(&m, &job.manifest.content)).then_some(m)
}

fn same_content(m: &Memory, c: &MemoryContent) -> bool {
    let meta = &m.meta;
    meta.title == c.title
        && meta.kind == c.kind
        && meta.description == c.description
        && meta.taken_at_ns == c.taken_at_ns
        && meta.tags == c.tags
        && m.assets.len() == c.assets.len()
        && m.assets.iter().zip(&c.assets).all(|(a, e)| {
            a.kind == e.kind
                && a.size == e.size
                && hex(&a.sha256) == e.sha256
                && a.mime == e.mime
                && a.width == e.width
                && a.height == e.height
                && a.duration_ms == e.duration_ms
        })
}

/// The file of an asset entry: a plain name inside the memory's folder (an archive is
/// untrusted input: no paths, no `..`).
fn asset_path(dir: &Path, e: &AssetEntry) -> anyhow::Result<PathBuf> {
    let p = Path::new(&e.file);
    let plain =
        p.components().count() == 1 && p.file_name().map(|n| n == p.as_os_str()).unwrap_or(false);
    if !plain || e.file.starts_with('.') {
        bail!("asset file {:?} is not a plain file name", e.file);
    }
    Ok(dir.join(p))
}

fn digest_of(e: &AssetEntry) -> anyhow::Result<[u8; 32]> {
    let bytes: Vec<u8> = (0..e.sha256.len())
        .step_by(2)
        .map(|i| {
            e.sha256
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<_>>()
        .ok_or_else(|| anyhow!("sha256 {:?} of {} is not hex", e.sha256, e.file))?;
    bytes
        .try_into()
        .map_err(|_| anyhow!("sha256 of {} is not 32 bytes", e.file))
}

async fn import_memory(
    client: &Client,
    job: &Job,
    opts: &ImportOptions,
    progress: &dyn Progress,
    report: &mut ImportReport,
) -> anyhow::Result<()> {
    let content = &job.manifest.content;
    if still_there(client, job).await.is_some() {
        progress.advance(content.assets.iter().map(|a| a.size).sum());
        report.memories_already_there += 1;
        return Ok(());
    }
    let key = archive::import_key(&job.folder, content);
    let mut assets = Vec::with_capacity(content.assets.len());
    for e in &content.assets {
        let path = asset_path(&job.dir, e)?;
        let len = std::fs::metadata(&path)
            .with_context(|| format!("{} (listed in {MEMORY_FILE})", path.display()))?
            .len();
        if len != e.size {
            bail!(
                "{} has {len} bytes; {MEMORY_FILE} says {}",
                path.display(),
                e.size
            );
        }
        let sha = digest_of(e)?;
        let source = match e.storage {
            Storage::Inline => {
                let bytes = std::fs::read(&path)?;
                if Sha256::digest(&bytes)[..] != sha {
                    bail!(
                        "{} does not match the SHA-256 in {MEMORY_FILE}",
                        path.display()
                    );
                }
                progress.advance(e.size);
                AssetSource::Inline(ByteBuf::from(bytes))
            }
            Storage::Blob => {
                let blob = import_blob(
                    client,
                    &key,
                    e,
                    &path,
                    &sha,
                    job.capsule_id,
                    opts,
                    progress,
                    report,
                )
                .await?;
                AssetSource::Blob(blob)
            }
        };
        assets.push(AssetInput {
            kind: e.kind,
            source,
            mime: e.mime.clone(),
            width: e.width,
            height: e.height,
            duration_ms: e.duration_ms,
        });
    }
    let args = MemoryCreateArgs {
        capsule_id: job.capsule_id,
        meta: MemoryMeta {
            title: content.title.clone(),
            kind: content.kind,
            description: content.description.clone(),
            taken_at_ns: content.taken_at_ns,
            tags: content.tags.clone(),
        },
        assets,
        idempotency_key: Some(key),
    };
    client.memories_create(&args).await?;
    report.memories_imported += 1;
    Ok(())
}

/// Uploads one blob asset (declared SHA-256, own idempotency key) and returns its id.
#[allow(clippy::too_many_arguments)]
async fn import_blob(
    client: &Client,
    key: &str,
    e: &AssetEntry,
    path: &Path,
    sha: &[u8; 32],
    capsule_id: u64,
    opts: &ImportOptions,
    progress: &dyn Progress,
    report: &mut ImportReport,
) -> anyhow::Result<u64> {
    let name = e.name.clone().unwrap_or_else(|| e.file.clone());
    let d = Declared {
        capsule_id,
        size: e.size,
        sha256: sha,
        name: &name,
        mime: &e.mime,
        key: &format!("{key}-{}", archive::kind_name(e.kind)),
        pmid: Some(key),
    };
    let session = upload::begin_declared(client, &d, &opts.upload).await?;
    if session.state == backend::api::SessionState::Open && download::sha256_file(path)? != *sha {
        // Never send bytes the manifest does not vouch for; leave no session behind.
        let _ = client.uploads_abort(session.id).await;
        bail!(
            "{} does not match the SHA-256 in {MEMORY_FILE}",
            path.display()
        );
    }
    let mut file = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(path)?);
    let r = upload::complete(client, &session, &mut file, &opts.upload, &PartOf(progress)).await?;
    if r.deduplicated {
        report.blobs_already_stored += 1;
    } else {
        report.blobs_uploaded += 1;
    }
    report.chunks_sent += u64::from(r.chunks_sent);
    report.bytes_sent += r.bytes_sent;
    Ok(r.blob_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use backend::api::AssetKind;

    fn entry(file: &str, sha256: &str) -> AssetEntry {
        AssetEntry {
            kind: AssetKind::Original,
            file: file.into(),
            storage: Storage::Blob,
            mime: "image/jpeg".into(),
            size: 1,
            sha256: sha256.into(),
            width: None,
            height: None,
            duration_ms: None,
            name: None,
        }
    }

    #[test]
    fn asset_files_are_plain_names_and_digests_are_hex() {
        let dir = Path::new("/archive/Family/0001 Beach");
        let ok = asset_path(dir, &entry("original.jpg", "")).unwrap();
        assert_eq!(ok, dir.join("original.jpg"));
        for bad in [
            "../x.jpg",
            "a/b.jpg",
            "/etc/passwd",
            "..",
            ".",
            ".hidden",
            "",
        ] {
            assert!(asset_path(dir, &entry(bad, "")).is_err(), "{bad:?}");
        }
        let hex64 = "ab".repeat(32);
        assert_eq!(digest_of(&entry("f", &hex64)).unwrap(), [0xab; 32]);
        for bad in [
            "ab".repeat(31),
            "zz".repeat(32),
            "abc".into(),
            "é".repeat(32),
        ] {
            assert!(digest_of(&entry("f", &bad)).is_err(), "{bad}");
        }
    }
}
