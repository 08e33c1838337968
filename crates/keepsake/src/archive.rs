//! The export format shared by `keepsake export` and `keepsake import`: a folder a
//! person can browse, with one JSON manifest per memory.
//!
//! ```text
//! DIR/
//!   Family/                      one folder per capsule, named after it
//!     capsule.json               the capsule's name (+ what the canister assigned)
//!     0001 Beach/                one folder per memory: position, then title
//!       memory.json              title, kind, times, tags, every asset (mime, size, SHA-256)
//!       original.jpg             each asset as a file named after its kind
//!       display.jpg
//!       thumbnail.jpg
//!       placeholder.jpg          inline assets too
//! ```
//!
//! Everything the canister assigns (ids, creation times, the creator, blob ids, the
//! canister the data came from) sits under one `assigned` key of each manifest: it
//! changes when the archive is imported elsewhere, everything else does not.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use backend::api::{AssetKind, MemoryKind};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fsutil::hex;

pub const MEMORY_FILE: &str = "memory.json";
pub const CAPSULE_FILE: &str = "capsule.json";
pub const MEMORY_FORMAT: &str = "keepsake-memory/1";
pub const CAPSULE_FORMAT: &str = "keepsake-capsule/1";
/// Stored in every `assigned` section, for the person reading the file.
pub const ASSIGNED_NOTE: &str = "assigned by the canister: changes on import";

/// How an asset's bytes were kept by the canister.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// A blob (uploaded in chunks).
    Blob,
    /// Inline bytes of the memory (≤ 32 KiB).
    Inline,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetEntry {
    pub kind: AssetKind,
    /// The file next to the manifest.
    pub file: String,
    pub storage: Storage,
    pub mime: String,
    pub size: u64,
    /// Hex SHA-256 of the file.
    pub sha256: String,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub duration_ms: Option<u64>,
    /// The blob's name as uploaded (blob assets).
    #[serde(default)]
    pub name: Option<String>,
}

/// What a memory is, independent of the canister that holds it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryContent {
    pub format: String,
    pub title: String,
    pub kind: MemoryKind,
    pub description: String,
    pub taken_at_ns: Option<u64>,
    pub tags: Vec<String>,
    pub assets: Vec<AssetEntry>,
}

/// Ids and times the source canister assigned.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryAssigned {
    pub note: String,
    /// The canister the memory was exported from (`embedded:<dir>` or `<id>@<url>`).
    pub source: String,
    pub capsule_id: u64,
    pub memory_id: u64,
    pub created_at_ns: u64,
    pub updated_at_ns: u64,
    pub created_by: String,
    /// Blob id of each blob asset, by asset file.
    pub blob_ids: BTreeMap<String, u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryManifest {
    #[serde(flatten)]
    pub content: MemoryContent,
    pub assigned: Option<MemoryAssigned>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapsuleAssigned {
    pub note: String,
    pub source: String,
    pub capsule_id: u64,
    pub created_at_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CapsuleManifest {
    pub format: String,
    pub name: String,
    pub assigned: Option<CapsuleAssigned>,
}

/// Pretty JSON with a final newline: the bytes of a manifest file.
pub fn to_file_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    let mut b = serde_json::to_vec_pretty(v).expect("manifests serialize");
    b.push(b'\n');
    b
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("{} is not a keepsake manifest", path.display()))
}

/// The idempotency key an import gives a memory: derived from its folder name and its
/// content (never from ids), so importing the same archive again finds the same memory,
/// and two identical memories in different folders stay two.
pub fn import_key(folder: &str, content: &MemoryContent) -> String {
    let mut h = Sha256::new();
    h.update(folder.as_bytes());
    h.update([0]);
    h.update(serde_json::to_vec(content).expect("manifests serialize"));
    format!("ks-imp1-{}", &hex(&h.finalize())[..40])
}

/// A file or folder name made from a title: no path separators, control characters,
/// characters Windows refuses, or leading dots; at most 60 characters; never empty.
pub fn safe_name(title: &str) -> String {
    let cleaned: String = title
        .chars()
        .map(|c| {
            if c.is_whitespace() {
                ' '
            } else if c.is_control()
                || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
            {
                '_'
            } else {
                c
            }
        })
        .collect();
    let words: Vec<&str> = cleaned.split_whitespace().collect();
    let mut name: String = words.join(" ").chars().take(60).collect();
    name = name
        .trim_start_matches('.')
        .trim_end_matches(['.', ' '])
        .to_string();
    if name.is_empty() {
        "untitled".into()
    } else {
        name
    }
}

/// `original`, `display`, … : the file stem of an asset.
pub fn kind_name(kind: AssetKind) -> String {
    format!("{kind:?}").to_ascii_lowercase()
}

/// The leading number of a memory folder (`0042 Beach` → 42).
pub fn ordinal(folder: &str) -> Option<u64> {
    let digits: String = folder.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Sort key of memory folders: their number, then their name.
pub fn folder_order(a: &str, b: &str) -> std::cmp::Ordering {
    (ordinal(a).unwrap_or(u64::MAX), a).cmp(&(ordinal(b).unwrap_or(u64::MAX), b))
}

/// Subfolders of `dir` that hold `file`, sorted by [`folder_order`].
pub fn folders_with(dir: &Path, file: &str) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for e in entries {
        let e = e?;
        let p = e.path();
        if p.is_dir() && p.join(file).is_file() {
            out.push((e.file_name().to_string_lossy().into_owned(), p));
        }
    }
    out.sort_by(|a, b| folder_order(&a.0, &b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_safe_and_readable() {
        assert_eq!(safe_name("Beach, 2026"), "Beach, 2026");
        assert_eq!(safe_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(
            safe_name("a/b\\c:d*e?f\"g<h>i|j\u{7}k"),
            "a_b_c_d_e_f_g_h_i_j_k"
        );
        assert_eq!(safe_name("  lots   of\tspace  "), "lots of space");
        assert_eq!(safe_name("..."), "untitled");
        assert_eq!(safe_name(""), "untitled");
        assert_eq!(safe_name("trailing. "), "trailing");
        assert_eq!(safe_name(&"é".repeat(100)).chars().count(), 60);
        assert_eq!(ordinal("0042 Beach"), Some(42));
        assert_eq!(ordinal("Beach"), None);
        let mut v = vec!["10000 z", "1001 a", "0002 b", "x"];
        v.sort_by(|a, b| folder_order(a, b));
        assert_eq!(v, ["0002 b", "1001 a", "10000 z", "x"]);
    }

    #[test]
    fn manifests_round_trip_and_keys_ignore_assigned_values() {
        let content = MemoryContent {
            format: MEMORY_FORMAT.into(),
            title: "Beach".into(),
            kind: MemoryKind::Photo,
            description: String::new(),
            taken_at_ns: Some(5),
            tags: vec!["summer".into()],
            assets: vec![AssetEntry {
                kind: AssetKind::Original,
                file: "original.jpg".into(),
                storage: Storage::Blob,
                mime: "image/jpeg".into(),
                size: 3,
                sha256: "00".into(),
                width: None,
                height: None,
                duration_ms: None,
                name: Some("IMG_1.jpg".into()),
            }],
        };
        let m = MemoryManifest {
            content: content.clone(),
            assigned: Some(MemoryAssigned {
                note: ASSIGNED_NOTE.into(),
                source: "s".into(),
                capsule_id: 1,
                memory_id: 2,
                created_at_ns: 3,
                updated_at_ns: 4,
                created_by: "aaaaa-aa".into(),
                blob_ids: [("original.jpg".to_string(), 9)].into(),
            }),
        };
        let bytes = to_file_bytes(&m);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["title"], "Beach");
        assert_eq!(v["assets"][0]["kind"], "Original");
        assert_eq!(v["assets"][0]["storage"], "blob");
        assert_eq!(v["assigned"]["memory_id"], 2);
        let back: MemoryManifest = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, m);
        let k = import_key("0001 Beach", &content);
        assert_eq!(k, import_key("0001 Beach", &back.content));
        assert!(k.starts_with("ks-imp1-") && k.len() == 48);
        assert_ne!(k, import_key("0002 Beach", &content));
        let mut other = content;
        other.tags.push("x".into());
        assert_ne!(k, import_key("0001 Beach", &other));
    }
}
