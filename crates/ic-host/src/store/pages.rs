//! The committed bytes of one memory (a canister's stable memory or heap), in 4 KiB pages:
//! in RAM (a sparse map, for hosts without a directory) or in a sparse file where byte
//! `n` of the memory is byte `n` of the file (read on demand with `pread`, written with
//! `pwrite` only after the write-ahead log holds the pages).

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Page size of dirty tracking and of the store (the IC's OS page size).
pub const PAGE: usize = 4096;
pub(crate) type Page = [u8; PAGE];

pub(crate) static ZERO_PAGE: Page = [0; PAGE];

pub(crate) fn zero_page() -> Box<Page> {
    Box::new([0; PAGE])
}

pub(crate) fn is_zero(bytes: &[u8]) -> bool {
    bytes.chunks(PAGE).all(|c| c == &ZERO_PAGE[..c.len()])
}

/// Committed contents of one memory. Everything never written reads as zero.
#[derive(Debug)]
pub(crate) enum Pages {
    Ram(HashMap<u64, Box<Page>>),
    File(File),
}

impl Default for Pages {
    fn default() -> Self {
        Pages::Ram(HashMap::new())
    }
}

impl Pages {
    /// Fills `dst` with the bytes at `offset` (zeros where nothing was written).
    pub fn read(&self, offset: u64, dst: &mut [u8]) -> io::Result<()> {
        match self {
            Pages::Ram(map) => {
                let mut done = 0;
                while done < dst.len() {
                    let at = offset + done as u64;
                    let (page, within) = (at / PAGE as u64, (at % PAGE as u64) as usize);
                    let n = (PAGE - within).min(dst.len() - done);
                    match map.get(&page) {
                        Some(p) => dst[done..done + n].copy_from_slice(&p[within..within + n]),
                        None => dst[done..done + n].fill(0),
                    }
                    done += n;
                }
                Ok(())
            }
            Pages::File(f) => {
                let mut done = 0;
                while done < dst.len() {
                    match f.read_at(&mut dst[done..], offset + done as u64) {
                        Ok(0) => {
                            dst[done..].fill(0); // past the end of the file
                            break;
                        }
                        Ok(n) => done += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        }
    }

    /// Stores whole pages (sorted by index); contiguous runs become one `pwrite`.
    pub fn write_pages(&mut self, pages: &[(u64, Box<Page>)]) -> io::Result<()> {
        match self {
            Pages::Ram(map) => {
                for (i, p) in pages {
                    if p[..] == ZERO_PAGE[..] {
                        map.remove(i);
                    } else {
                        map.insert(*i, p.clone());
                    }
                }
                Ok(())
            }
            Pages::File(f) => {
                let mut run: Vec<u8> = Vec::new();
                let mut start = 0u64;
                let mut next = u64::MAX;
                for (i, p) in pages {
                    if *i != next && !run.is_empty() {
                        f.write_all_at(&run, start * PAGE as u64)?;
                        run.clear();
                    }
                    if run.is_empty() {
                        start = *i;
                    }
                    run.extend_from_slice(&p[..]);
                    next = i + 1;
                }
                if !run.is_empty() {
                    f.write_all_at(&run, start * PAGE as u64)?;
                }
                Ok(())
            }
        }
    }

    /// Takes ownership of pages (RAM: no copy).
    pub fn put_pages(&mut self, pages: Vec<(u64, Box<Page>)>) -> io::Result<()> {
        match self {
            Pages::Ram(map) => {
                for (i, p) in pages {
                    if p[..] == ZERO_PAGE[..] {
                        map.remove(&i);
                    } else {
                        map.insert(i, p);
                    }
                }
                Ok(())
            }
            Pages::File(_) => self.write_pages(&pages),
        }
    }

    /// Forgets everything (reinstall, a fresh heap).
    pub fn clear(&mut self) -> io::Result<()> {
        match self {
            Pages::Ram(map) => {
                map.clear();
                Ok(())
            }
            Pages::File(f) => f.set_len(0),
        }
    }

    pub fn sync(&self) -> io::Result<()> {
        match self {
            Pages::Ram(_) => Ok(()),
            Pages::File(f) => f.sync_data(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(b: u8) -> Box<Page> {
        Box::new([b; PAGE])
    }

    #[test]
    fn ram_and_file_read_back_what_was_written_and_zeros_elsewhere() {
        let dir = std::env::temp_dir().join(format!("ic-host-pages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = File::options().read(true).write(true).create(true).truncate(true).open(dir.join("p")).unwrap();
        for mut pages in [Pages::default(), Pages::File(file)] {
            pages.write_pages(&[(1, page(1)), (2, page(2)), (7, page(7))]).unwrap();
            let mut buf = vec![9u8; 3 * PAGE];
            pages.read(PAGE as u64 - 10, &mut buf).unwrap();
            assert!(buf[..10].iter().all(|&b| b == 0));
            assert!(buf[10..10 + PAGE].iter().all(|&b| b == 1));
            assert!(buf[10 + PAGE..10 + 2 * PAGE].iter().all(|&b| b == 2));
            assert!(buf[10 + 2 * PAGE..].iter().all(|&b| b == 0));
            let mut far = vec![9u8; 100];
            pages.read(100 * PAGE as u64, &mut far).unwrap();
            assert!(far.iter().all(|&b| b == 0), "past the end reads as zero");
            pages.clear().unwrap();
            pages.read(PAGE as u64, &mut buf).unwrap();
            assert!(is_zero(&buf));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
