//! How stable memory is divided between the chunk arena and the maps.
//!
//! - **Flat** (every canister installed before layout 4, and kept as it is): one
//!   `MemoryManager` with 8 MiB buckets holds every map and the arena. Each of its ~27
//!   virtual memories takes at least one bucket (an empty canister is ~136 MiB), and 32,768
//!   buckets cap the whole at 256 GiB, so such a canister stores at most
//!   [`FLAT_CAPACITY_BYTES`] of content.
//! - **Nested** (new installs): an *outer* manager with 16 MiB buckets (32,768 × 16 MiB =
//!   512 GiB of address space, more than the IC's 500 GiB) holds two virtual memories: the
//!   chunk arena (outer id 1) and an *inner* manager (outer id 0) with 512 KiB buckets that
//!   holds every map and cell under the same `MemoryId`s as the flat layout (up to 16 GiB
//!   of maps: about ten million memories). An empty canister is one outer bucket of maps
//!   plus the headers (~16 MiB); content can use the rest of the 500 GiB
//!   ([`NESTED_CAPACITY_BYTES`]).
//!
//! Which one a canister has is read from the outer manager's header (its bucket size), so
//! an upgrade never moves data: flat canisters keep their layout and their capacity.

use ic_stable_structures::memory_manager::{MemoryId, MemoryManager, VirtualMemory};
use ic_stable_structures::Memory;

const GIB: u64 = 1 << 30;
/// The flat layout's bucket (ic-stable-structures' default).
const FLAT_BUCKET_PAGES: u16 = 128;
/// Nested: 16 MiB outer buckets, 512 KiB inner ones.
pub const OUTER_BUCKET_PAGES: u16 = 256;
pub const INNER_BUCKET_PAGES: u16 = 8;
/// Outer ids of the nested layout (a namespace of its own: the maps' ids are the
/// inner manager's).
const OUTER_MAPS: MemoryId = MemoryId::new(0);
const OUTER_ARENA: MemoryId = MemoryId::new(1);

/// Content a flat canister holds at most: 256 GiB of buckets, less the maps' share and
/// the arena's 1/16 allowance for fragmentation.
pub const FLAT_CAPACITY_BYTES: u64 = 224 * GIB;
/// Content a nested canister holds at most: the IC's 500 GiB of stable memory, less the
/// maps' 16 GiB and the arena's 1/16 fragmentation allowance (464 × 17/16 = 493 GiB).
pub const NESTED_CAPACITY_BYTES: u64 = 464 * GIB;

/// A virtual memory of either layout: maps and cells use it without knowing which.
#[derive(Clone)]
pub enum SMem<M: Memory> {
    /// A virtual memory of the flat manager, or the nested layout's arena.
    Direct(VirtualMemory<M>),
    /// A virtual memory of the nested layout's inner manager.
    Nested(VirtualMemory<VirtualMemory<M>>),
}

impl<M: Memory> Memory for SMem<M> {
    #[inline]
    fn size(&self) -> u64 {
        match self {
            SMem::Direct(m) => m.size(),
            SMem::Nested(m) => m.size(),
        }
    }
    #[inline]
    fn grow(&self, pages: u64) -> i64 {
        match self {
            SMem::Direct(m) => m.grow(pages),
            SMem::Nested(m) => m.grow(pages),
        }
    }
    #[inline]
    fn read(&self, offset: u64, dst: &mut [u8]) {
        match self {
            SMem::Direct(m) => m.read(offset, dst),
            SMem::Nested(m) => m.read(offset, dst),
        }
    }
    #[inline]
    unsafe fn read_unsafe(&self, offset: u64, dst: *mut u8, count: usize) {
        match self {
            SMem::Direct(m) => m.read_unsafe(offset, dst, count),
            SMem::Nested(m) => m.read_unsafe(offset, dst, count),
        }
    }
    #[inline]
    fn write(&self, offset: u64, src: &[u8]) {
        match self {
            SMem::Direct(m) => m.write(offset, src),
            SMem::Nested(m) => m.write(offset, src),
        }
    }
}

pub enum Layout<M: Memory> {
    Flat(MemoryManager<M>),
    Nested { outer: MemoryManager<M>, inner: MemoryManager<VirtualMemory<M>> },
}

/// The bucket size (pages) in the `MemoryManager` header at the start of non-empty
/// `memory`, if there is one.
fn manager_bucket_pages<M: Memory>(memory: &M) -> Option<u16> {
    let mut h = [0u8; 8];
    memory.read(0, &mut h);
    (&h[..3] == b"MGR").then(|| u16::from_le_bytes([h[6], h[7]]))
}

impl<M: Memory + Clone> Layout<M> {
    /// Opens the layout `memory` has; fresh memory gets the nested one. Anything else is
    /// flat (a memory that is not ours is then refused by the caller's header check).
    pub fn open(memory: M) -> Self {
        if memory.size() == 0 || manager_bucket_pages(&memory) == Some(OUTER_BUCKET_PAGES) {
            Self::nested(memory)
        } else {
            Layout::Flat(MemoryManager::init(memory))
        }
    }

    /// A new canister in the flat layout (tests of canisters created before layout 4).
    pub fn flat(memory: M) -> Self {
        Layout::Flat(MemoryManager::init_with_bucket_size(memory, FLAT_BUCKET_PAGES))
    }

    fn nested(memory: M) -> Self {
        let outer = MemoryManager::init_with_bucket_size(memory, OUTER_BUCKET_PAGES);
        let inner = MemoryManager::init_with_bucket_size(outer.get(OUTER_MAPS), INNER_BUCKET_PAGES);
        Layout::Nested { outer, inner }
    }

    /// The map or cell `id`.
    pub fn get(&self, id: MemoryId) -> SMem<M> {
        match self {
            Layout::Flat(mm) => SMem::Direct(mm.get(id)),
            Layout::Nested { inner, .. } => SMem::Nested(inner.get(id)),
        }
    }

    /// The chunk arena's bytes (`flat_id`: its MemoryId in the flat layout).
    pub fn arena(&self, flat_id: MemoryId) -> SMem<M> {
        match self {
            Layout::Flat(mm) => SMem::Direct(mm.get(flat_id)),
            Layout::Nested { outer, .. } => SMem::Direct(outer.get(OUTER_ARENA)),
        }
    }

    pub fn is_nested(&self) -> bool {
        matches!(self, Layout::Nested { .. })
    }
}

/// Content a layout can hold.
pub fn capacity_bytes(nested: bool) -> u64 {
    if nested {
        NESTED_CAPACITY_BYTES
    } else {
        FLAT_CAPACITY_BYTES
    }
}
