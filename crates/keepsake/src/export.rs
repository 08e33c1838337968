//! `keepsake export`: every memory of the caller's capsules (or of one) into a folder a
//! person can browse (layout in [`crate::archive`]): each asset verified by SHA-256 as
//! it is written, one manifest per memory. Re-running continues an interrupted export:
//! a file that already holds the right bytes is not downloaded again, a partial file
//! continues after its last whole chunk, and folders made by an earlier run of the same
//! canister are kept (found by their manifests).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use backend::api::{Capsule, Memory};
use futures::stream::{FuturesUnordered, StreamExt};
use serde::Serialize;
use sha2::Digest;

use crate::archive::{
    self, AssetEntry, CapsuleAssigned, CapsuleManifest, MemoryAssigned, MemoryContent,
    MemoryManifest, Storage, ASSIGNED_NOTE, CAPSULE_FILE, MEMORY_FILE,
};
use crate::client::Client;
use crate::download::{self, DownloadOptions};
use crate::fsutil::{hex, write_atomic};
use crate::mime;
use crate::upload::{PartOf, Progress, StopAfter};

/// Memories written at the same time (each with its own chunk reads in flight).
pub const MEMORIES_IN_FLIGHT: usize = 4;

#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Only this capsule (else every capsule the caller can read).
    pub capsule: Option<u64>,
    /// Chunk reads in flight per file.
    pub in_flight: usize,
    pub stop_after: Option<Arc<StopAfter>>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ExportReport {
    pub dir: String,
    pub capsules: u32,
    pub memories: u32,
    /// Memories whose folder is complete (manifest written).
    pub memories_done: u32,
    pub files_downloaded: u32,
    /// Files that already held the right bytes (an earlier run wrote them).
    pub files_skipped: u32,
    pub chunks_read: u64,
    pub bytes_read: u64,
    /// Bytes of every asset of every memory.
    pub bytes_total: u64,
    pub seconds: f64,
    /// Stopped part way (the chunk budget ran out): run again to continue.
    pub interrupted: bool,
}

impl ExportReport {
    fn add(&mut self, m: &MemoryDone) {
        self.files_downloaded += m.files_downloaded;
        self.files_skipped += m.files_skipped;
        self.chunks_read += m.chunks_read;
        self.bytes_read += m.bytes_read;
    }
}

#[derive(Default)]
struct MemoryDone {
    files_downloaded: u32,
    files_skipped: u32,
    chunks_read: u64,
    bytes_read: u64,
}

/// One memory and the folder it goes to.
struct Job {
    memory: Memory,
    dir: PathBuf,
}

/// Exports into `dir`. An interruption by the chunk budget returns a report with
/// `interrupted`; any other failure is an error (what was written stays and is reused).
pub async fn export(
    client: &Client,
    dir: &Path,
    opts: &ExportOptions,
    progress: &dyn Progress,
) -> anyhow::Result<ExportReport> {
    let t0 = Instant::now();
    let source = client.target();
    let capsules: Vec<Capsule> = match opts.capsule {
        Some(id) => vec![client.capsules_get(id).await?],
        None => client.capsules_list().await?,
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut report = ExportReport {
        dir: dir.display().to_string(),
        capsules: capsules.len() as u32,
        ..Default::default()
    };
    let mut jobs = Vec::new();
    let mut taken_capsule_dirs = BTreeSet::new();
    for c in &capsules {
        let cdir = capsule_dir(dir, &source, c, &mut taken_capsule_dirs)?;
        let manifest = CapsuleManifest {
            format: archive::CAPSULE_FORMAT.into(),
            name: c.name.clone(),
            assigned: Some(CapsuleAssigned {
                note: ASSIGNED_NOTE.into(),
                source: source.clone(),
                capsule_id: c.id,
                created_at_ns: c.created_at_ns,
            }),
        };
        write_if_changed(&cdir.join(CAPSULE_FILE), &archive::to_file_bytes(&manifest))?;
        let mut memories = client.memories_all(c.id).await?;
        memories.sort_by_key(|m| m.id);
        for (m, mdir) in memory_dirs(&cdir, &source, c.id, memories)? {
            jobs.push(Job {
                memory: m,
                dir: mdir,
            });
        }
    }
    report.memories = jobs.len() as u32;
    report.bytes_total = jobs
        .iter()
        .flat_map(|j| &j.memory.assets)
        .map(|a| a.size)
        .sum();
    progress.begin(report.bytes_total, 0);

    let dl = DownloadOptions {
        in_flight: opts.in_flight.max(1),
        stop_after: opts.stop_after.clone(),
        skip_existing: true,
    };
    let mut pending = FuturesUnordered::new();
    let mut jobs = jobs.into_iter();
    let mut failure: Option<anyhow::Error> = None;
    loop {
        while failure.is_none() && !report.interrupted && pending.len() < MEMORIES_IN_FLIGHT {
            let Some(job) = jobs.next() else { break };
            pending.push(export_memory(client, job, &source, &dl, progress));
        }
        match pending.next().await {
            None => break,
            Some(Ok(done)) => {
                report.add(&done);
                report.memories_done += 1;
            }
            Some(Err((done, e))) => {
                report.add(&done);
                if download::stopped(&e).is_some() {
                    report.interrupted = true;
                } else {
                    failure.get_or_insert(e);
                }
            }
        }
    }
    report.seconds = t0.elapsed().as_secs_f64();
    match failure {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// The folder of a capsule: the one an earlier export of the same capsule made, else
/// its name (made unique among this export's capsule folders and foreign folders).
fn capsule_dir(
    dir: &Path,
    source: &str,
    c: &Capsule,
    taken: &mut BTreeSet<String>,
) -> anyhow::Result<PathBuf> {
    for (name, path) in archive::folders_with(dir, CAPSULE_FILE)? {
        let m: CapsuleManifest = archive::read_json(&path.join(CAPSULE_FILE))?;
        if m.assigned
            .is_some_and(|a| a.source == source && a.capsule_id == c.id)
        {
            taken.insert(name.to_lowercase());
            return Ok(path);
        }
    }
    let base = archive::safe_name(&c.name);
    let mut n = 1;
    loop {
        let name = if n == 1 {
            base.clone()
        } else {
            format!("{base} ({n})")
        };
        let path = dir.join(&name);
        // Case-insensitive file systems: "Family" and "family" are one folder.
        if !taken.contains(&name.to_lowercase()) && !path.exists() {
            taken.insert(name.to_lowercase());
            std::fs::create_dir_all(&path)?;
            return Ok(path);
        }
        n += 1;
    }
}

/// The folder of each memory: the one an earlier export of this memory made (its
/// manifest names the source canister and memory id), else `NNNN Title`, NNNN being
/// its position in the capsule (or the next free number if an earlier run used it).
fn memory_dirs(
    cdir: &Path,
    source: &str,
    capsule_id: u64,
    memories: Vec<Memory>,
) -> anyhow::Result<Vec<(Memory, PathBuf)>> {
    let mut known: BTreeMap<u64, PathBuf> = BTreeMap::new();
    let mut used: BTreeSet<u64> = BTreeSet::new();
    for (name, path) in archive::folders_with(cdir, MEMORY_FILE)? {
        if let Some(n) = archive::ordinal(&name) {
            used.insert(n);
        }
        if let Ok(m) = archive::read_json::<MemoryManifest>(&path.join(MEMORY_FILE)) {
            if let Some(a) = m
                .assigned
                .filter(|a| a.source == source && a.capsule_id == capsule_id)
            {
                known.insert(a.memory_id, path);
            }
        }
    }
    // Folders an interrupted run made before their manifest: numbered, no manifest yet.
    if let Ok(entries) = std::fs::read_dir(cdir) {
        for e in entries.flatten() {
            if let Some(n) = archive::ordinal(&e.file_name().to_string_lossy()) {
                used.insert(n);
            }
        }
    }
    let width = memories.len().to_string().len().max(4);
    let mut next_free = used.last().copied().unwrap_or(0) + 1;
    let mut out = Vec::with_capacity(memories.len());
    for (i, m) in memories.into_iter().enumerate() {
        let dir = match known.remove(&m.id) {
            Some(d) => d,
            None => {
                let pos = i as u64 + 1;
                let name = format!("{pos:0width$} {}", archive::safe_name(&m.meta.title));
                let path = cdir.join(&name);
                if !used.contains(&pos) || (path.is_dir() && !path.join(MEMORY_FILE).exists()) {
                    // Free, or (most likely) this memory's folder from an interrupted run.
                    used.insert(pos);
                    path
                } else {
                    let n = next_free;
                    next_free += 1;
                    used.insert(n);
                    cdir.join(format!("{n:0width$} {}", archive::safe_name(&m.meta.title)))
                }
            }
        };
        out.push((m, dir));
    }
    Ok(out)
}

/// Writes one memory's files, then its manifest. On failure, returns what it did too.
async fn export_memory(
    client: &Client,
    job: Job,
    source: &str,
    dl: &DownloadOptions,
    progress: &dyn Progress,
) -> Result<MemoryDone, (MemoryDone, anyhow::Error)> {
    let mut done = MemoryDone::default();
    let r = export_memory_inner(client, &job, source, dl, progress, &mut done).await;
    match r {
        Ok(()) => Ok(done),
        Err(e) => Err((done, e.context(format!("{}", job.dir.display())))),
    }
}

async fn export_memory_inner(
    client: &Client,
    job: &Job,
    source: &str,
    dl: &DownloadOptions,
    progress: &dyn Progress,
    done: &mut MemoryDone,
) -> anyhow::Result<()> {
    let m = &job.memory;
    std::fs::create_dir_all(&job.dir).with_context(|| format!("creating {}", job.dir.display()))?;
    progress.message(&m.meta.title);
    let mut entries = Vec::with_capacity(m.assets.len());
    let mut blob_ids = BTreeMap::new();
    for a in &m.assets {
        let file = format!(
            "{}.{}",
            archive::kind_name(a.kind),
            mime::extension(&a.mime)
        );
        let out = job.dir.join(&file);
        let (storage, name) = match (&a.blob_id, &a.inline) {
            (Some(b), _) => {
                let f =
                    download::fetch_blob(client, *b, Some(&a.sha256), &out, dl, &PartOf(progress))
                        .await;
                let f = match f {
                    Ok(f) => f,
                    Err(e) => {
                        if let Some(s) = download::stopped(&e) {
                            done.chunks_read += u64::from(s.chunks_read);
                            done.bytes_read += s.bytes_read;
                        }
                        return Err(e);
                    }
                };
                if f.skipped {
                    done.files_skipped += 1;
                } else {
                    done.files_downloaded += 1;
                }
                done.chunks_read += u64::from(f.chunks_read);
                done.bytes_read += f.bytes_read;
                blob_ids.insert(file.clone(), *b);
                (Storage::Blob, Some(f.meta.name))
            }
            (None, Some(bytes)) => {
                let sha = sha2::Sha256::digest(bytes);
                anyhow::ensure!(
                    sha[..] == a.sha256[..],
                    "checksum mismatch: inline {:?} of memory {} hashes to {}, the memory says {}",
                    a.kind,
                    m.id,
                    hex(&sha),
                    hex(&a.sha256)
                );
                if download::write_inline(&out, bytes, true)? {
                    done.files_downloaded += 1;
                } else {
                    done.files_skipped += 1;
                }
                progress.advance(a.size);
                (Storage::Inline, None)
            }
            (None, None) => anyhow::bail!("asset {:?} of memory {} has no bytes", a.kind, m.id),
        };
        entries.push(AssetEntry {
            kind: a.kind,
            file,
            storage,
            mime: a.mime.clone(),
            size: a.size,
            sha256: hex(&a.sha256),
            width: a.width,
            height: a.height,
            duration_ms: a.duration_ms,
            name,
        });
    }
    let manifest = MemoryManifest {
        content: MemoryContent {
            format: archive::MEMORY_FORMAT.into(),
            title: m.meta.title.clone(),
            kind: m.meta.kind,
            description: m.meta.description.clone(),
            taken_at_ns: m.meta.taken_at_ns,
            tags: m.meta.tags.clone(),
            assets: entries,
        },
        assigned: Some(MemoryAssigned {
            note: ASSIGNED_NOTE.into(),
            source: source.to_string(),
            capsule_id: m.capsule_id,
            memory_id: m.id,
            created_at_ns: m.created_at_ns,
            updated_at_ns: m.updated_at_ns,
            created_by: m.created_by.to_text(),
            blob_ids,
        }),
    };
    write_if_changed(
        &job.dir.join(MEMORY_FILE),
        &archive::to_file_bytes(&manifest),
    )?;
    Ok(())
}

fn write_if_changed(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    if std::fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    write_atomic(path, bytes).with_context(|| format!("writing {}", path.display()))
}
