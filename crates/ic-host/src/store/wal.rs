//! The write-ahead log: one record per committed transaction, appended (and fsynced)
//! before any page file is touched.
//!
//! ```text
//! record := magic u32 "ICWL" | seq u64 | body_len u64 | crc32(seq, body_len, body) u32 | body
//! body   := entry*
//! entry  := 1 key index:u64 page[4096]     a 4 KiB page of a memory
//!         | 2 key                          the memory is cleared (reinstall, new heap)
//!         | 3 len:u64 bytes                the host's metadata after this transaction
//! key    := id_len:u8 id[id_len] mem:u8    canister id and memory (0 stable, 1 heap)
//! ```
//! Integers are little endian. Records are replayed in order at open; the first record
//! that is short, fails its checksum or does not carry the next sequence number ends
//! the log (a torn append), and the file is cut there.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

use anyhow::{bail, ensure, Result};
use candid::Principal;

use super::pages::{Page, PAGE};

const MAGIC: u32 = u32::from_le_bytes(*b"ICWL");
const HEADER: usize = 4 + 8 + 8 + 4;
/// Larger bodies are not ours (a torn length field).
const MAX_BODY: u64 = 1 << 36;

/// Which memory of a canister.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Mem {
    Stable = 0,
    Heap = 1,
}

impl Mem {
    pub fn file_name(self) -> &'static str {
        match self {
            Mem::Stable => "stable",
            Mem::Heap => "heap",
        }
    }
}

/// The changes of one memory in a transaction: cleared first (if `clear`), then pages.
#[derive(Debug)]
pub(crate) struct MemWrite {
    pub canister: Principal,
    pub mem: Mem,
    pub clear: bool,
    /// Sorted by page index.
    pub pages: Vec<(u64, Box<Page>)>,
}

/// Everything one committed step changed.
#[derive(Debug, Default)]
pub(crate) struct Txn {
    pub writes: Vec<MemWrite>,
    pub meta: Vec<u8>,
}

impl Txn {
    pub fn page_bytes(&self) -> u64 {
        self.writes.iter().map(|w| (w.pages.len() * PAGE) as u64).sum()
    }
}

fn put_key(out: &mut Vec<u8>, canister: &Principal, mem: Mem) {
    let id = canister.as_slice();
    out.push(id.len() as u8);
    out.extend_from_slice(id);
    out.push(mem as u8);
}

/// Serializes `txn` as record `seq`.
pub(crate) fn encode(seq: u64, txn: &Txn) -> Vec<u8> {
    let page_entries: usize = txn.writes.iter().map(|w| w.pages.len()).sum();
    let mut out = Vec::with_capacity(HEADER + page_entries * (PAGE + 48) + txn.meta.len() + 64);
    out.extend_from_slice(&[0; HEADER]);
    for w in &txn.writes {
        if w.clear {
            out.push(2);
            put_key(&mut out, &w.canister, w.mem);
        }
        for (index, page) in &w.pages {
            out.push(1);
            put_key(&mut out, &w.canister, w.mem);
            out.extend_from_slice(&index.to_le_bytes());
            out.extend_from_slice(&page[..]);
        }
    }
    out.push(3);
    out.extend_from_slice(&(txn.meta.len() as u64).to_le_bytes());
    out.extend_from_slice(&txn.meta);
    let body_len = (out.len() - HEADER) as u64;
    out[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    out[4..12].copy_from_slice(&seq.to_le_bytes());
    out[12..20].copy_from_slice(&body_len.to_le_bytes());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&out[4..20]);
    crc.update(&out[HEADER..]);
    out[20..24].copy_from_slice(&crc.finalize().to_le_bytes());
    out
}

/// One entry of a replayed record.
pub(crate) enum Entry<'a> {
    Page { canister: Principal, mem: Mem, index: u64, page: &'a [u8] },
    Clear { canister: Principal, mem: Mem },
    Meta(&'a [u8]),
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        ensure!(self.b.len() - self.at >= n, "log record ends inside an entry");
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        Ok(s)
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into()?))
    }
    fn key(&mut self) -> Result<(Principal, Mem)> {
        let n = self.take(1)?[0] as usize;
        let canister = Principal::try_from_slice(self.take(n)?)?;
        let mem = match self.take(1)?[0] {
            0 => Mem::Stable,
            1 => Mem::Heap,
            m => bail!("unknown memory {m} in the log"),
        };
        Ok((canister, mem))
    }
}

/// Decodes the entries of a checksummed body.
pub(crate) fn entries(body: &[u8], mut f: impl FnMut(Entry<'_>) -> Result<()>) -> Result<()> {
    let mut c = Cursor { b: body, at: 0 };
    while c.at < body.len() {
        match c.take(1)?[0] {
            1 => {
                let (canister, mem) = c.key()?;
                let index = c.u64()?;
                let page = c.take(PAGE)?;
                f(Entry::Page { canister, mem, index, page })?;
            }
            2 => {
                let (canister, mem) = c.key()?;
                f(Entry::Clear { canister, mem })?;
            }
            3 => {
                let n = usize::try_from(c.u64()?)?;
                f(Entry::Meta(c.take(n)?))?;
            }
            t => bail!("unknown log entry {t}"),
        }
    }
    Ok(())
}

/// The log file, positioned at its end.
pub(crate) struct Wal {
    file: File,
    len: u64,
}

/// Reads `buf.len()` bytes unless the file ends first; returns how many were read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl Wal {
    /// Opens the log and replays every complete record after sequence number `base`
    /// (records up to `base` are already in the page files): `apply(seq, body)`. Cuts a
    /// torn tail off. Returns the log and the last sequence number replayed (or `base`).
    pub fn open(file: File, base: u64, mut apply: impl FnMut(u64, &[u8]) -> Result<()>) -> Result<(Wal, u64)> {
        let mut r = BufReader::with_capacity(1 << 20, file);
        r.seek(SeekFrom::Start(0))?;
        let (mut pos, mut last) = (0u64, base);
        let mut body = Vec::new();
        loop {
            let mut h = [0u8; HEADER];
            if read_full(&mut r, &mut h)? < HEADER {
                break;
            }
            let magic = u32::from_le_bytes(h[0..4].try_into()?);
            let seq = u64::from_le_bytes(h[4..12].try_into()?);
            let len = u64::from_le_bytes(h[12..20].try_into()?);
            let crc = u32::from_le_bytes(h[20..24].try_into()?);
            if magic != MAGIC || len > MAX_BODY {
                break;
            }
            body.clear();
            body.resize(len as usize, 0);
            if read_full(&mut r, &mut body)? < body.len() {
                break;
            }
            let mut check = crc32fast::Hasher::new();
            check.update(&h[4..20]);
            check.update(&body);
            if check.finalize() != crc {
                break;
            }
            if seq > base {
                if seq != last + 1 {
                    break; // not a continuation of what we have: stale bytes
                }
                apply(seq, &body)?;
                last = seq;
            }
            pos += (HEADER + body.len()) as u64;
        }
        let file = r.into_inner();
        if file.metadata()?.len() != pos {
            file.set_len(pos)?;
            file.sync_data()?;
        }
        Ok((Wal { file, len: pos }, last))
    }

    /// Appends an encoded record (not synced). On failure the log is cut back to where
    /// it was, so a later record never follows a torn one.
    pub fn append(&mut self, record: &[u8]) -> io::Result<()> {
        let mut f = &self.file;
        let r = f.seek(SeekFrom::Start(self.len)).and_then(|_| f.write_all(record));
        match r {
            Ok(()) => {
                self.len += record.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(e)
            }
        }
    }

    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Empties the log (after a checkpoint made its records redundant).
    pub fn reset(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.sync_data()?;
        self.len = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(byte: u8, meta: &[u8]) -> Txn {
        Txn {
            writes: vec![MemWrite {
                canister: Principal::from_slice(&[1, 2, 3]),
                mem: Mem::Stable,
                clear: byte == 0,
                pages: vec![(5, Box::new([byte; PAGE]))],
            }],
            meta: meta.to_vec(),
        }
    }

    fn replay(path: &std::path::Path, base: u64) -> (Vec<(u64, u8, Vec<u8>)>, u64) {
        let file = File::options().read(true).write(true).open(path).unwrap();
        let mut seen = Vec::new();
        let (_, last) = Wal::open(file, base, |seq, body| {
            let (mut b, mut m) = (0, Vec::new());
            entries(body, |e| {
                match e {
                    Entry::Page { index, page, .. } => {
                        assert_eq!(index, 5);
                        b = page[0];
                    }
                    Entry::Clear { .. } => {}
                    Entry::Meta(x) => m = x.to_vec(),
                }
                Ok(())
            })?;
            seen.push((seq, b, m));
            Ok(())
        })
        .unwrap();
        (seen, last)
    }

    #[test]
    fn records_replay_in_order_and_a_torn_tail_is_cut() {
        let dir = std::env::temp_dir().join(format!("ic-host-wal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wal");
        let file = File::options().read(true).write(true).create(true).truncate(true).open(&path).unwrap();
        let (mut wal, last) = Wal::open(file, 0, |_, _| unreachable!()).unwrap();
        assert_eq!(last, 0);
        for (seq, b) in [(1, 0u8), (2, 7), (3, 9)] {
            wal.append(&encode(seq, &txn(b, &[b; 3]))).unwrap();
        }
        let full = std::fs::read(&path).unwrap();
        let (seen, last) = replay(&path, 0);
        assert_eq!(last, 3);
        assert_eq!(seen.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), vec![(1, 0), (2, 7), (3, 9)]);
        assert_eq!(seen[2].2, vec![9; 3]);
        // Already checkpointed records are skipped.
        assert_eq!(replay(&path, 2).0.len(), 1);
        // Cut anywhere inside the last record: the first two replay, the rest is cut off.
        let third = full.len() - encode(3, &txn(9, &[9; 3])).len();
        for cut in [third + 1, third + HEADER, full.len() - 1] {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (seen, last) = replay(&path, 0);
            assert_eq!((seen.len(), last), (2, 2), "cut at {cut}");
            assert_eq!(std::fs::metadata(&path).unwrap().len() as usize, third);
        }
        // A flipped bit in a record ends the log there.
        let mut bad = full.clone();
        bad[third - 10] ^= 1;
        std::fs::write(&path, &bad).unwrap();
        assert_eq!(replay(&path, 0).1, 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
