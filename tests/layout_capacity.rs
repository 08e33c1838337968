//! The stable layout's capacity and fixed overhead (issue 16), natively over a sparse
//! memory that keeps only the 64 KiB pages ever written, so the whole 500 GiB of a
//! canister's stable memory can be addressed without holding it.

mod common;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use backend::domain::State;
use backend::storage::layout::{Layout, FLAT_CAPACITY_BYTES, NESTED_CAPACITY_BYTES};
use backend::storage::Stable;
use common::*;
use ic_stable_structures::Memory;

const PAGE: u64 = 65_536;
const GIB: u64 = 1 << 30;
/// The IC's stable memory limit of one canister: 500 GiB.
const IC_STABLE_PAGES: u64 = (500 * GIB) / PAGE;

#[derive(Default)]
struct Pages {
    size: u64,
    written: HashMap<u64, Box<[u8]>>,
}

/// Stable memory of `IC_STABLE_PAGES` at most; unwritten pages read as zeros.
#[derive(Clone, Default)]
struct Sparse(Rc<RefCell<Pages>>);

impl Memory for Sparse {
    fn size(&self) -> u64 {
        self.0.borrow().size
    }
    fn grow(&self, pages: u64) -> i64 {
        let mut p = self.0.borrow_mut();
        if p.size + pages > IC_STABLE_PAGES {
            return -1;
        }
        p.size += pages;
        (p.size - pages) as i64
    }
    fn read(&self, offset: u64, dst: &mut [u8]) {
        let p = self.0.borrow();
        assert!(offset + dst.len() as u64 <= p.size * PAGE, "read past the end");
        for (page, within, at, n) in spans(offset, dst.len()) {
            match p.written.get(&page) {
                Some(pg) => dst[at..at + n].copy_from_slice(&pg[within..within + n]),
                None => dst[at..at + n].fill(0),
            }
        }
    }
    fn write(&self, offset: u64, src: &[u8]) {
        let mut p = self.0.borrow_mut();
        assert!(offset + src.len() as u64 <= p.size * PAGE, "write past the end");
        for (page, within, at, n) in spans(offset, src.len()) {
            let pg = p.written.entry(page).or_insert_with(|| vec![0u8; PAGE as usize].into_boxed_slice());
            pg[within..within + n].copy_from_slice(&src[at..at + n]);
        }
    }
}

/// The pages `len` bytes at `offset` fall in: (page, offset within it, offset within
/// the buffer, bytes).
fn spans(offset: u64, len: usize) -> impl Iterator<Item = (u64, usize, usize, usize)> {
    let mut at = 0;
    std::iter::from_fn(move || {
        (at < len).then(|| {
            let pos = offset + at as u64;
            let within = (pos % PAGE) as usize;
            let n = (PAGE as usize - within).min(len - at);
            let span = (pos / PAGE, within, at, n);
            at += n;
            span
        })
    })
}

impl Sparse {
    fn pages_written(&self) -> usize {
        self.0.borrow().written.len()
    }
}

/// Allocates the arena 1 GiB at a time (writing one byte at each end) until it refuses;
/// returns the bytes it gave.
fn fill_arena(st: &mut Stable<Sparse>, limit: u64) -> u64 {
    let mut total = 0;
    while let Ok(at) = st.arena.alloc_within(GIB, limit) {
        st.arena.write(at, &[1]);
        st.arena.write(at + GIB - 1, &[2]);
        total += GIB;
    }
    total
}

#[test]
fn a_new_canister_is_small_and_holds_up_to_the_ic_limit() {
    // Empty: ≤ 32 MiB of stable memory (the flat layout took 136 MiB).
    let mem = Sparse::default();
    let mut st = Stable::open(mem.clone()).unwrap();
    assert!(st.nested);
    assert_eq!(st.capacity_bytes(), NESTED_CAPACITY_BYTES);
    let empty = mem.size() * PAGE;
    let flat_mem = Sparse::default();
    let flat = Stable::open_layout(flat_mem.clone(), Layout::flat(flat_mem.clone())).unwrap();
    assert!(!flat.nested);
    let flat_empty = flat_mem.size() * PAGE;
    println!("empty canister: {:.1} MiB of stable memory (flat layout: {:.1} MiB)", empty as f64 / 1048576.0, flat_empty as f64 / 1048576.0);
    assert!(empty <= 32 << 20, "an empty canister takes {empty} bytes");

    // The arena reaches its cap (464 GiB + 1/16 for fragmentation) inside the IC's 500 GiB.
    let cap = NESTED_CAPACITY_BYTES + NESTED_CAPACITY_BYTES / 16;
    let filled = fill_arena(&mut st, cap);
    println!(
        "nested layout: arena filled to {} GiB of {} GiB allowed; stable memory {:.1} GiB of 500; {} pages written",
        filled / GIB,
        cap / GIB,
        (mem.size() * PAGE) as f64 / GIB as f64,
        mem.pages_written()
    );
    assert_eq!(filled, cap / GIB * GIB, "the whole cap is addressable");
    assert!(mem.size() <= IC_STABLE_PAGES);
    // Every byte written is where it was written.
    let mut b = [0u8; 1];
    st.arena.read(cap / GIB * GIB - 1, &mut b);
    assert_eq!(b, [2]);
    // The maps grow past their first 16 MiB (their manager takes another outer bucket).
    let before = mem.size();
    for i in 0..400_000u64 {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&i.to_be_bytes());
        st.memory_idempotency.insert(k, i);
    }
    println!("400,000 map entries with the arena full: stable memory grew {} pages", mem.size() - before);
    assert!(mem.size() > before, "the maps grew past their first bucket");
    assert!(mem.size() <= IC_STABLE_PAGES);
    assert_eq!(st.memory_idempotency.get(&[0u8; 32]), Some(0));
    st.save_header();
    drop(st);

    // With the arena full, the maps still grow (they have their own manager): the
    // canister takes capsules and memories, and refuses uploads with a typed error.
    let mut s = State::open(mem.clone()).unwrap();
    for u in 1..=250u8 {
        let c = ctx(user(u), T0);
        for i in 0..16 {
            s.capsules_create(&c, backend::api::CapsuleCreateArgs { name: format!("capsule {i} of a family with a long name") }).unwrap();
        }
    }
    let c = ctx(user(1), T0);
    let r = s.uploads_begin(&c, begin_args(1, 10_000_000, None));
    assert!(matches!(r, Err(backend::api::Error::QuotaExceeded(_))), "{r:?}");
    let stats = s.stats();
    assert_eq!(stats.capacity_bytes, Some(NESTED_CAPACITY_BYTES));
    assert_eq!(stats.layout_version, backend::storage::LAYOUT_VERSION);
}

#[test]
fn a_flat_canister_states_its_smaller_capacity_and_refuses_past_it() {
    let mem = Sparse::default();
    let mut st = Stable::open_layout(mem.clone(), Layout::flat(mem.clone())).unwrap();
    // Its arena can grow only until the manager runs out of 8 MiB buckets (256 GiB in
    // all, some of them the maps').
    let filled = fill_arena(&mut st, u64::MAX);
    println!("flat layout: the arena stops at {} GiB (capacity stated: {} GiB)", filled / GIB, FLAT_CAPACITY_BYTES / GIB);
    assert!(filled >= FLAT_CAPACITY_BYTES + FLAT_CAPACITY_BYTES / 16 && filled < 256 * GIB, "{filled}");
    st.save_header();
    drop(st);
    // Reopened as a canister upgraded from layout 3 would be: still flat.
    let s = State::open(mem).unwrap();
    assert_eq!(s.stats().capacity_bytes, Some(FLAT_CAPACITY_BYTES));
    assert_eq!(s.upload_config().max_stored_bytes, Some(FLAT_CAPACITY_BYTES), "the effective limit");
}
