//! The resume journal: a small JSON file (`journal.json` in the state dir) that maps a
//! file fingerprint to the upload session it is going into. After an interruption the
//! next run finds the session, asks `uploads_status` which chunks arrived, and sends
//! only the rest. The session's idempotency key is derived from the same fingerprint,
//! so even without the journal, `uploads_begin` hands back the same live session.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::{hex, write_atomic};

/// Bytes of the file's head hashed into its fingerprint.
pub const FINGERPRINT_HEAD: u64 = 1 << 20;

/// What identifies "the same file" across runs: canonical path, size, mtime and the
/// SHA-256 of its first MiB. Cheap to compute even for a 1 GB file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint {
    pub path: String,
    pub size: u64,
    pub mtime_ns: u128,
    pub head_sha256: String,
    /// Extra input of the key: a forced re-upload salts it to get a new session and memory.
    #[serde(default)]
    pub salt: String,
}

impl Fingerprint {
    pub fn of_file(path: &Path) -> std::io::Result<Self> {
        let canonical = std::fs::canonicalize(path)?;
        let meta = std::fs::metadata(&canonical)?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let mut head = Vec::new();
        std::fs::File::open(&canonical)?
            .take(FINGERPRINT_HEAD)
            .read_to_end(&mut head)?;
        Ok(Self {
            path: canonical.to_string_lossy().into_owned(),
            size: meta.len(),
            mtime_ns,
            head_sha256: hex(&Sha256::digest(&head)),
            salt: String::new(),
        })
    }

    /// The `idempotency_key` of the file's upload session (and of its memory).
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.path.as_bytes());
        h.update([0]);
        h.update(self.size.to_le_bytes());
        h.update(self.mtime_ns.to_le_bytes());
        h.update(self.head_sha256.as_bytes());
        if !self.salt.is_empty() {
            h.update([0]);
            h.update(self.salt.as_bytes());
        }
        format!("ks1-{}", &hex(&h.finalize())[..40])
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Which canister (embedded state dir, or canister id @ URL).
    pub target: String,
    pub capsule_id: u64,
    pub session_id: u64,
    pub path: String,
    pub size: u64,
    /// Set once `uploads_finish` returned the blob (the memory may still be missing).
    #[serde(default)]
    pub blob_id: Option<u64>,
    /// Set once the memory exists: a later run skips the file (unless forced).
    #[serde(default)]
    pub memory_id: Option<u64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    version: u32,
    entries: BTreeMap<String, Entry>,
}

/// The journal; every change is written through, atomically.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

impl Journal {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let file = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File {
                version: 1,
                ..Default::default()
            },
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// A journal that is never written (for callers that do not want resume).
    pub fn in_memory() -> Self {
        Self {
            path: PathBuf::new(),
            file: File::default(),
        }
    }

    fn slot(target: &str, capsule_id: u64, key: &str) -> String {
        format!("{target}#{capsule_id}#{key}")
    }

    pub fn get(&self, target: &str, capsule_id: u64, key: &str) -> Option<&Entry> {
        self.file.entries.get(&Self::slot(target, capsule_id, key))
    }

    pub fn put(&mut self, key: &str, entry: Entry) -> anyhow::Result<()> {
        self.file
            .entries
            .insert(Self::slot(&entry.target, entry.capsule_id, key), entry);
        self.save()
    }

    pub fn remove(&mut self, target: &str, capsule_id: u64, key: &str) -> anyhow::Result<()> {
        if self
            .file
            .entries
            .remove(&Self::slot(target, capsule_id, key))
            .is_some()
        {
            self.save()?;
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.file.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.file.entries.is_empty()
    }

    fn save(&self) -> anyhow::Result<()> {
        if self.path.as_os_str().is_empty() {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.file)?;
        write_atomic(&self.path, &bytes).with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_key_is_stable_and_sensitive() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.bin");
        std::fs::write(&p, b"hello world").unwrap();
        let a = Fingerprint::of_file(&p).unwrap();
        assert_eq!(a, Fingerprint::of_file(&p).unwrap());
        assert!(a.key().starts_with("ks1-") && a.key().len() == 44);
        std::fs::write(&p, b"hello_world").unwrap();
        let b = Fingerprint::of_file(&p).unwrap();
        assert_ne!(a.head_sha256, b.head_sha256);
        assert_ne!(a.key(), b.key());
    }

    #[test]
    fn journal_round_trips_through_disk() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.json");
        let mut j = Journal::open(&path).unwrap();
        let e = Entry {
            target: "t".into(),
            capsule_id: 3,
            session_id: 9,
            path: "/x".into(),
            size: 5,
            blob_id: None,
            memory_id: None,
        };
        j.put("k", e.clone()).unwrap();
        let j2 = Journal::open(&path).unwrap();
        assert_eq!(j2.get("t", 3, "k"), Some(&e));
        assert_eq!(j2.get("t", 4, "k"), None);
        let mut j2 = j2;
        j2.remove("t", 3, "k").unwrap();
        assert!(Journal::open(&path).unwrap().is_empty());
    }
}
