//! The chunk arena: chunk bytes written once, in place, into a dedicated virtual memory.
//!
//! Freed extents go to two small maps (by offset for coalescing, by size for best-fit),
//! so space freed by aborted sessions and deleted blobs is reused by later uploads.
//! Writing a chunk writes exactly its bytes; the bookkeeping is a few small map entries.

use ic_stable_structures::{Memory, StableBTreeMap};

const WASM_PAGE: u64 = 65_536;

pub struct Arena<M: Memory> {
    data: M,
    free_by_offset: StableBTreeMap<u64, u64, M>,
    free_by_size: StableBTreeMap<(u64, u64), (), M>,
    /// High-water mark (persisted in the header by the owner of the layout).
    pub end: u64,
    /// Total bytes in free extents (persisted in the header).
    pub free_bytes: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub struct OutOfMemory;

impl<M: Memory> Arena<M> {
    pub fn open(
        data: M,
        free_by_offset: StableBTreeMap<u64, u64, M>,
        free_by_size: StableBTreeMap<(u64, u64), (), M>,
    ) -> Self {
        Arena { data, free_by_offset, free_by_size, end: 0, free_bytes: 0 }
    }

    /// Reserves `len` bytes: the smallest free extent that fits, else fresh space.
    pub fn alloc(&mut self, len: u64) -> Result<u64, OutOfMemory> {
        self.alloc_within(len, u64::MAX)
    }

    /// [`Arena::alloc`] with fresh space only below `limit` (the arena's cap). A refusal
    /// changes nothing.
    pub fn alloc_within(&mut self, len: u64, limit: u64) -> Result<u64, OutOfMemory> {
        if len == 0 {
            return Ok(self.end);
        }
        let fit = self.free_by_size.range((len, 0)..).next().map(|e| *e.key());
        if let Some((size, offset)) = fit {
            self.remove_free(offset, size);
            if size > len {
                self.insert_free(offset + len, size - len);
            }
            return Ok(offset);
        }
        let offset = self.end;
        let needed_end = offset.checked_add(len).ok_or(OutOfMemory)?;
        if needed_end > limit {
            return Err(OutOfMemory);
        }
        let have = self.data.size() * WASM_PAGE;
        if needed_end > have {
            let pages = (needed_end - have).div_ceil(WASM_PAGE);
            if self.data.grow(pages) < 0 {
                return Err(OutOfMemory);
            }
        }
        self.end = needed_end;
        Ok(offset)
    }

    /// Returns an extent to the free lists, merging it with free neighbours.
    pub fn free(&mut self, mut offset: u64, mut len: u64) {
        if len == 0 {
            return;
        }
        if let Some(prev) = self.free_by_offset.range(..offset).next_back() {
            let (p_off, p_len) = (*prev.key(), prev.value());
            if p_off + p_len == offset {
                self.remove_free(p_off, p_len);
                offset = p_off;
                len += p_len;
            }
        }
        if let Some(n_len) = self.free_by_offset.get(&(offset + len)) {
            self.remove_free(offset + len, n_len);
            len += n_len;
        }
        if offset + len == self.end {
            self.end = offset; // give the tail back to fresh space
        } else {
            self.insert_free(offset, len);
        }
    }

    pub fn write(&self, offset: u64, bytes: &[u8]) {
        self.data.write(offset, bytes);
    }

    pub fn read(&self, offset: u64, buf: &mut [u8]) {
        self.data.read(offset, buf);
    }

    fn insert_free(&mut self, offset: u64, len: u64) {
        self.free_by_offset.insert(offset, len);
        self.free_by_size.insert((len, offset), ());
        self.free_bytes += len;
    }

    fn remove_free(&mut self, offset: u64, len: u64) {
        self.free_by_offset.remove(&offset);
        self.free_by_size.remove(&(len, offset));
        self.free_bytes -= len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
    use ic_stable_structures::VectorMemory;

    fn arena() -> Arena<impl Memory> {
        let mm = MemoryManager::init(VectorMemory::default());
        Arena::open(
            mm.get(MemoryId::new(0)),
            StableBTreeMap::init(mm.get(MemoryId::new(1))),
            StableBTreeMap::init(mm.get(MemoryId::new(2))),
        )
    }

    #[test]
    fn freed_space_is_reused_and_coalesced() {
        let mut a = arena();
        let x = a.alloc(100).unwrap();
        let y = a.alloc(200).unwrap();
        let z = a.alloc(300).unwrap();
        assert_eq!((x, y, z), (0, 100, 300));
        a.free(x, 100);
        a.free(y, 200); // merges with x
        assert_eq!(a.free_bytes, 300);
        // best fit: a 250-byte request takes the merged 300-byte hole, leaving 50
        assert_eq!(a.alloc(250).unwrap(), 0);
        assert_eq!(a.free_bytes, 50);
        // freeing the tail shrinks the high-water mark instead of listing it
        a.free(z, 300);
        assert_eq!(a.end, 250); // hole [250,300) merged with the freed tail
        assert_eq!(a.free_bytes, 0);
        assert_eq!(a.alloc(10).unwrap(), 250);
    }

    #[test]
    fn fresh_space_stops_at_the_limit_and_a_refusal_changes_nothing() {
        let mut a = arena();
        assert_eq!(a.alloc_within(600, 1000).unwrap(), 0);
        assert_eq!(a.alloc_within(500, 1000), Err(OutOfMemory));
        assert_eq!((a.end, a.free_bytes), (600, 0));
        a.free(0, 300);
        assert_eq!(a.alloc_within(300, 1000).unwrap(), 0, "free extents are used whatever the limit");
    }

    #[test]
    fn bytes_round_trip_across_page_boundaries() {
        let mut a = arena();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let off = a.alloc(data.len() as u64).unwrap();
        a.write(off, &data);
        let mut back = vec![0; data.len()];
        a.read(off, &mut back);
        assert_eq!(back, data);
    }
}
