//! The ingress history: what became of every update call the network accepted, by
//! request id, until its expiry has passed (so an identical request is never executed
//! twice, and polling clients find the answer). Kept in memory and, for a network in a
//! directory, in an append-only log of checksummed records.
//!
//! Order of writes (see `exec`): a call's `Received` record is on disk before the call
//! runs, its answer is written after it ran and on disk before the answer is handed
//! out. After a crash, a call that is `Received` without an answer may or may not have
//! run; it becomes `Done` (the specification's "completed, reply no longer available"),
//! so it is never run again, and its client sees that its reply is gone.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candid::Principal;
use serde::{Deserialize, Serialize};

/// File of the ingress history in the network's directory.
pub const INGRESS_FILE: &str = "ingress.log";
/// How long an answer is kept after its call's expiry (polling clients may be late).
const RETAIN_NS: u64 = 5 * 60 * 1_000_000_000;
/// The log is rewritten with only live entries when it passes this size.
const COMPACT_BYTES: u64 = 64 << 20;

/// A request id.
pub type RequestId = [u8; 32];

/// A call's status, as `/request_status/<id>/status` tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Received,
    Replied(#[serde(with = "serde_bytes")] Vec<u8>),
    Rejected { code: u32, message: String, error_code: Option<String> },
    /// Completed; the reply is not available.
    Done,
}

/// One accepted call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub sender: Principal,
    /// The effective canister id it was submitted under (read_state must name the same).
    pub effective: Principal,
    pub expiry: u64,
    pub status: Status,
}

#[derive(Serialize, Deserialize)]
struct Record {
    #[serde(with = "serde_bytes")]
    id: Vec<u8>,
    entry: Entry,
}

struct Log {
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
    dirty: bool,
}

/// The ingress history.
pub struct History {
    entries: HashMap<RequestId, Entry>,
    log: Option<Log>,
}

impl History {
    pub fn in_memory() -> History {
        History { entries: HashMap::new(), log: None }
    }

    /// Opens the history kept at `path` (an empty one if there is none): reads every
    /// whole record (a torn last record is dropped), turns unanswered calls into
    /// `Done`, forgets what expired before `now_ns`, and rewrites the file compactly.
    pub fn open(path: &Path, now_ns: u64) -> Result<History> {
        let mut entries = HashMap::new();
        match File::open(path) {
            Ok(mut f) => {
                let mut bytes = Vec::new();
                f.read_to_end(&mut bytes).with_context(|| format!("reading {}", path.display()))?;
                for (id, entry) in decode_all(&bytes) {
                    entries.insert(id, entry);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        }
        for e in entries.values_mut() {
            if e.status == Status::Received {
                e.status = Status::Done;
            }
        }
        entries.retain(|_, e| e.expiry.saturating_add(RETAIN_NS) >= now_ns);
        let mut h = History { entries, log: None };
        h.rewrite(path)?;
        Ok(h)
    }

    pub fn get(&self, id: &RequestId) -> Option<&Entry> {
        self.entries.get(id)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records (or updates) a call; on disk after the next [`History::sync`].
    pub fn put(&mut self, id: RequestId, entry: Entry) -> Result<()> {
        if let Some(log) = self.log.as_mut() {
            let rec = encode(&id, &entry);
            log.out.write_all(&rec).with_context(|| format!("writing {}", log.path.display()))?;
            log.len += rec.len() as u64;
            log.dirty = true;
        }
        self.entries.insert(id, entry);
        Ok(())
    }

    /// Makes every record written so far durable.
    pub fn sync(&mut self) -> Result<()> {
        if let Some(log) = self.log.as_mut().filter(|l| l.dirty) {
            log.out.flush()?;
            log.out.get_ref().sync_data().with_context(|| format!("syncing {}", log.path.display()))?;
            log.dirty = false;
        }
        Ok(())
    }

    /// Forgets calls whose expiry passed long enough ago; compacts a large log.
    pub fn prune(&mut self, now_ns: u64) -> Result<()> {
        self.entries.retain(|_, e| e.expiry.saturating_add(RETAIN_NS) >= now_ns);
        let path = match &self.log {
            Some(l) if l.len > COMPACT_BYTES => l.path.clone(),
            _ => return Ok(()),
        };
        self.sync()?;
        self.rewrite(&path)
    }

    /// Writes the live entries to a new file, then replaces the log with it.
    fn rewrite(&mut self, path: &Path) -> Result<()> {
        self.log = None;
        let tmp = path.with_extension("tmp");
        let mut len = 0;
        {
            let mut out = BufWriter::new(File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?);
            for (id, e) in &self.entries {
                let rec = encode(id, e);
                out.write_all(&rec)?;
                len += rec.len() as u64;
            }
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().append(true).open(path)?;
        self.log = Some(Log { path: path.to_path_buf(), out: BufWriter::with_capacity(1 << 16, file), len, dirty: false });
        Ok(())
    }
}

/// `len (u32 LE) · crc32 (u32 LE) · CBOR record`.
fn encode(id: &RequestId, entry: &Entry) -> Vec<u8> {
    let body = serde_cbor::to_vec(&Record { id: id.to_vec(), entry: entry.clone() }).expect("a record always serializes");
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// Every whole, intact record, in order; stops at the first torn or damaged one.
fn decode_all(mut bytes: &[u8]) -> Vec<(RequestId, Entry)> {
    let mut out = Vec::new();
    while bytes.len() >= 8 {
        let len = u32::from_le_bytes(bytes[..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default());
        let Some(body) = bytes.get(8..8 + len) else { break };
        if crc32fast::hash(body) != crc {
            break;
        }
        let Ok(rec) = serde_cbor::from_slice::<Record>(body) else { break };
        let Ok(id) = RequestId::try_from(rec.id.as_slice()) else { break };
        out.push((id, rec.entry));
        bytes = &bytes[8 + len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(expiry: u64, status: Status) -> Entry {
        Entry { sender: Principal::anonymous(), effective: ic_host::DEFAULT_CANISTER_ID, expiry, status }
    }

    #[test]
    fn answers_survive_a_reopen_and_unanswered_calls_become_done() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INGRESS_FILE);
        let mut h = History::open(&path, 0).unwrap();
        h.put([1; 32], entry(100, Status::Received)).unwrap();
        h.put([1; 32], entry(100, Status::Replied(vec![7, 7]))).unwrap();
        h.put([2; 32], entry(100, Status::Received)).unwrap();
        h.put([3; 32], entry(100, Status::Rejected { code: 5, message: "trap".into(), error_code: None })).unwrap();
        h.sync().unwrap();
        drop(h);
        let h = History::open(&path, 50).unwrap();
        assert_eq!(h.get(&[1; 32]).unwrap().status, Status::Replied(vec![7, 7]));
        assert_eq!(h.get(&[2; 32]).unwrap().status, Status::Done, "its fate is unknown: never run again");
        assert!(matches!(h.get(&[3; 32]).unwrap().status, Status::Rejected { code: 5, .. }));
        // Long after expiry, everything is forgotten.
        let h = History::open(&path, 100 + RETAIN_NS + 1).unwrap();
        assert!(h.is_empty());
    }

    #[test]
    fn a_torn_last_record_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(INGRESS_FILE);
        let mut h = History::open(&path, 0).unwrap();
        h.put([1; 32], entry(100, Status::Replied(vec![1]))).unwrap();
        h.put([2; 32], entry(100, Status::Replied(vec![2]))).unwrap();
        h.sync().unwrap();
        drop(h);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let h = History::open(&path, 0).unwrap();
        assert_eq!(h.len(), 1);
    }
}
