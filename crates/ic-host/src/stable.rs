//! A canister's stable memory: committed pages in a [`Pages`] store (RAM or a sparse
//! file, read on demand), the open transaction's writes in an overlay of 4 KiB pages.
//! A commit hands the overlay's pages to the host (which logs them, then stores them);
//! a rollback drops the overlay, so a trapped message or a query writes nothing.
//!
//! Per message, the 4 KiB pages written (dirtied) and touched (read or written) are
//! counted, as the IC counts them for its per-message limits and charges.

use std::collections::{BTreeMap, HashSet};

use crate::state::PAGE_SIZE;
use crate::store::pages::{zero_page, Page, Pages, PAGE};

/// Default stable memory limit: 500 GiB worth of pages.
pub const DEFAULT_MAX_STABLE_PAGES: u64 = 500 * 1024 * 1024 * 1024 / PAGE_SIZE;

#[derive(Debug)]
pub(crate) enum StableError {
    OutOfBounds,
    /// The page store could not be read.
    Io(String),
}

#[derive(Debug, Default)]
pub(crate) struct StableMemory {
    /// Size in 64 KiB pages, including growth of the open transaction.
    pages: u64,
    committed_pages: u64,
    pub max_pages: u64,
    backing: Pages,
    /// Pages written by the open transaction.
    overlay: BTreeMap<u64, Box<Page>>,
    /// The open transaction cleared the memory (reinstall): the backing reads as zero.
    cleared: bool,
    /// 4 KiB pages the current message wrote / touched.
    dirtied: HashSet<u64>,
    accessed: HashSet<u64>,
}

/// What a committed transaction changed.
#[derive(Debug, Default)]
pub(crate) struct StableDelta {
    pub clear: bool,
    /// Sorted by index.
    pub pages: Vec<(u64, Box<Page>)>,
}

impl StableMemory {
    pub fn new(max_pages: u64, backing: Pages) -> Self {
        Self { max_pages, backing, ..Default::default() }
    }

    /// Committed state found in a store.
    pub fn restore(backing: Pages, pages: u64, max_pages: u64) -> Self {
        Self { pages, committed_pages: pages, max_pages: max_pages.max(pages), backing, ..Default::default() }
    }

    pub fn pages(&self) -> u64 {
        self.pages
    }

    pub fn size_bytes(&self) -> u64 {
        self.pages * PAGE_SIZE
    }

    /// `ic0.stable64_grow`: old size in pages, or `u64::MAX` when over the limit.
    pub fn grow(&mut self, new_pages: u64) -> u64 {
        match self.pages.checked_add(new_pages) {
            Some(total) if total <= self.max_pages => {
                let old = self.pages;
                self.pages = total;
                old
            }
            _ => u64::MAX,
        }
    }

    fn check(&self, offset: u64, len: u64) -> Result<(), StableError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size_bytes() => Ok(()),
            _ => Err(StableError::OutOfBounds),
        }
    }

    fn page_range(offset: u64, len: usize) -> std::ops::RangeInclusive<u64> {
        offset / PAGE as u64..=(offset + len as u64 - 1) / PAGE as u64
    }

    /// Reads committed-or-overlay bytes without counting the access.
    pub fn peek(&self, offset: u64, dst: &mut [u8]) -> Result<(), StableError> {
        self.check(offset, dst.len() as u64)?;
        if dst.is_empty() {
            return Ok(());
        }
        if self.cleared {
            dst.fill(0);
        } else {
            self.backing.read(offset, dst).map_err(|e| StableError::Io(e.to_string()))?;
        }
        let end = offset + dst.len() as u64;
        for (&p, page) in self.overlay.range(Self::page_range(offset, dst.len())) {
            let start = (p * PAGE as u64).max(offset);
            let stop = ((p + 1) * PAGE as u64).min(end);
            let src = &page[(start - p * PAGE as u64) as usize..(stop - p * PAGE as u64) as usize];
            dst[(start - offset) as usize..(stop - offset) as usize].copy_from_slice(src);
        }
        Ok(())
    }

    /// `ic0.stable64_read`.
    pub fn read(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), StableError> {
        self.peek(offset, dst)?;
        if !dst.is_empty() {
            self.accessed.extend(Self::page_range(offset, dst.len()));
        }
        Ok(())
    }

    /// `ic0.stable64_write`.
    pub fn write(&mut self, offset: u64, src: &[u8]) -> Result<(), StableError> {
        self.check(offset, src.len() as u64)?;
        let mut done = 0;
        while done < src.len() {
            let at = offset + done as u64;
            let (p, within) = (at / PAGE as u64, (at % PAGE as u64) as usize);
            let n = (PAGE - within).min(src.len() - done);
            if !self.overlay.contains_key(&p) {
                let mut page = zero_page();
                if n < PAGE && !self.cleared {
                    // A partial write keeps the rest of the page.
                    self.backing.read(p * PAGE as u64, &mut page[..]).map_err(|e| StableError::Io(e.to_string()))?;
                }
                self.overlay.insert(p, page);
            }
            if let Some(page) = self.overlay.get_mut(&p) {
                page[within..within + n].copy_from_slice(&src[done..done + n]);
            }
            self.dirtied.insert(p);
            self.accessed.insert(p);
            done += n;
        }
        Ok(())
    }

    /// 4 KiB pages of `[offset, offset + len)` the current message has not yet
    /// (dirtied, accessed): what a write (read) of that range would add.
    pub fn unseen_pages(&self, offset: u64, len: u64) -> (u64, u64) {
        if len == 0 {
            return (0, 0);
        }
        let (first, last) = (offset / PAGE as u64, offset.saturating_add(len - 1) / PAGE as u64);
        let (mut dirty, mut accessed) = (0, 0);
        for p in first..=last {
            dirty += u64::from(!self.dirtied.contains(&p));
            accessed += u64::from(!self.accessed.contains(&p));
        }
        (dirty, accessed)
    }

    /// Starts counting the pages of a new message.
    pub fn start_message(&mut self) {
        self.dirtied.clear();
        self.accessed.clear();
    }

    /// 4 KiB pages (dirtied, accessed) by the current message.
    pub fn message_pages(&self) -> (u64, u64) {
        (self.dirtied.len() as u64, self.accessed.len() as u64)
    }

    /// Empties the memory in the open transaction (reinstall).
    pub fn clear(&mut self) {
        self.overlay.clear();
        self.cleared = true;
        self.pages = 0;
    }

    /// Ends the open transaction: its pages are handed out, to be logged and then given
    /// back through [`StableMemory::apply`].
    pub fn take_commit(&mut self) -> StableDelta {
        self.committed_pages = self.pages;
        let clear = std::mem::take(&mut self.cleared);
        StableDelta { clear, pages: std::mem::take(&mut self.overlay).into_iter().collect() }
    }

    /// Stores committed pages.
    pub fn apply(&mut self, delta: StableDelta) -> std::io::Result<()> {
        if delta.clear {
            self.backing.clear()?;
        }
        self.backing.put_pages(delta.pages)
    }

    pub fn rollback(&mut self) {
        self.overlay.clear();
        self.cleared = false;
        self.pages = self.committed_pages;
    }

    pub fn backing(&self) -> &Pages {
        &self.backing
    }

    pub fn backing_mut(&mut self) -> &mut Pages {
        &mut self.backing
    }

    /// Sets the committed size directly (importing a state).
    pub fn set_committed_pages(&mut self, pages: u64) {
        self.pages = pages;
        self.committed_pages = pages;
        self.max_pages = self.max_pages.max(pages);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_rolls_back_writes_and_growth() {
        let mut s = StableMemory::new(100, Pages::default());
        assert_eq!(s.grow(1), 0);
        s.write(10, b"hello").unwrap();
        let d = s.take_commit();
        assert_eq!(d.pages.len(), 1);
        s.apply(d).unwrap();
        s.start_message();
        assert_eq!(s.grow(2), 1);
        s.write(12, b"XXXXXXXX").unwrap();
        s.write(PAGE_SIZE * 2, b"far").unwrap();
        let mut buf = [0u8; 8];
        s.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"heXXXXXX");
        assert_eq!(s.message_pages(), (2, 2));
        s.rollback();
        assert_eq!(s.pages(), 1);
        s.read(10, &mut buf).unwrap();
        assert_eq!(&buf, b"hello\0\0\0");
        assert!(s.read(PAGE_SIZE, &mut buf).is_err());
        assert_eq!(s.grow(1000), u64::MAX);
        // A write across a page boundary dirties both pages and keeps their other bytes.
        s.start_message();
        s.write(PAGE as u64 - 2, b"abcd").unwrap();
        assert_eq!(s.message_pages(), (2, 2));
        let d = s.take_commit();
        assert_eq!(d.pages.iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1]);
        assert_eq!(&d.pages[0].1[10..15], b"hello");
        s.apply(d).unwrap();
        let mut buf = [0u8; 6];
        s.peek(PAGE as u64 - 3, &mut buf).unwrap();
        assert_eq!(&buf, b"\0abcd\0");
        // Clearing (reinstall) empties it until rolled back.
        s.clear();
        assert!(s.peek(0, &mut buf).is_err());
        assert_eq!(s.grow(1), 0);
        s.peek(10, &mut buf).unwrap();
        assert_eq!(&buf, &[0; 6]);
        s.rollback();
        s.peek(10, &mut buf).unwrap();
        assert_eq!(&buf, b"hello\0");
    }
}
