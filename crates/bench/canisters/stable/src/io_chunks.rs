//! `benchmarks/io_chunks`: 100 MiB written and read in 1, 1,000 and 1,000,000 chunks,
//! in raw stable memory (through a MemoryManager's virtual memory), a BTreeMap keyed by
//! chunk index, and a StableVec.

use crate::random::Bounded;
use canbench_rs::{bench, bench_fn, BenchResult};
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
use ic_stable_structures::{BTreeMap, DefaultMemoryImpl, Memory, Vec as StableVec};

const TOTAL: usize = 100 * 1024 * 1024;
const WASM_PAGE: u64 = 65_536;

fn memory(id: u8) -> impl Memory {
    MemoryManager::init(DefaultMemoryImpl::default()).get(MemoryId::new(id))
}

fn chunks(n: usize) -> Vec<Vec<u8>> {
    vec![vec![37u8; TOTAL / n]; n]
}

fn stable_write(id: u8, n: usize) -> BenchResult {
    let mem = memory(id);
    let data = chunks(n);
    let size = TOTAL / n;
    bench_fn(|| {
        let pages = (TOTAL as u64).div_ceil(WASM_PAGE);
        if mem.size() < pages {
            mem.grow(pages - mem.size());
        }
        for (i, c) in data.iter().enumerate() {
            mem.write((i * size) as u64, c);
        }
    })
}

fn stable_read(id: u8, n: usize) -> BenchResult {
    stable_write(id, n);
    let mem = memory(id);
    let size = TOTAL / n;
    let mut buf = vec![0u8; size];
    bench_fn(|| {
        for i in 0..n {
            mem.read((i * size) as u64, &mut buf);
        }
    })
}

fn btreemap_write(id: u8, n: usize) -> BenchResult {
    let mut map = BTreeMap::init(memory(id));
    let data = chunks(n);
    bench_fn(|| {
        for (i, c) in data.into_iter().enumerate() {
            map.insert(i as u32, c);
        }
    })
}

fn btreemap_read(id: u8, n: usize) -> BenchResult {
    btreemap_write(id, n);
    let map: BTreeMap<u32, Vec<u8>, _> = BTreeMap::init(memory(id));
    bench_fn(|| {
        for i in 0..n {
            let _ = map.get(&(i as u32));
        }
    })
}

fn vec_write<const SIZE: usize>(id: u8, n: usize) -> BenchResult {
    let vec: StableVec<Bounded<SIZE>, _> = StableVec::new(memory(id));
    let data: Vec<_> = chunks(n).iter().map(|c| Bounded::from(c)).collect();
    bench_fn(|| {
        for c in &data {
            vec.push(c);
        }
    })
}

fn vec_read<const SIZE: usize>(id: u8, n: usize) -> BenchResult {
    vec_write::<SIZE>(id, n);
    let vec: StableVec<Bounded<SIZE>, _> = StableVec::init(memory(id));
    bench_fn(|| {
        for i in 0..n as u64 {
            let _ = vec.get(i);
        }
    })
}

macro_rules! cases {
    ($($name:ident = $f:ident($id:expr, $n:expr);)*) => {$(
        #[bench(raw)]
        fn $name() -> BenchResult { $f($id, $n) }
    )*};
}
macro_rules! sized_cases {
    ($($name:ident = $f:ident($id:expr, $n:expr);)*) => {$(
        #[bench(raw)]
        fn $name() -> BenchResult { $f::<{ TOTAL / $n }>($id, $n) }
    )*};
}

cases! {
    write_chunks_stable_1 = stable_write(10, 1);
    write_chunks_stable_1k = stable_write(11, 1_000);
    write_chunks_stable_1m = stable_write(12, 1_000_000);
    read_chunks_stable_1 = stable_read(20, 1);
    read_chunks_stable_1k = stable_read(21, 1_000);
    read_chunks_stable_1m = stable_read(22, 1_000_000);
    write_chunks_btreemap_1 = btreemap_write(30, 1);
    write_chunks_btreemap_1k = btreemap_write(31, 1_000);
    write_chunks_btreemap_1m = btreemap_write(32, 1_000_000);
    read_chunks_btreemap_1 = btreemap_read(40, 1);
    read_chunks_btreemap_1k = btreemap_read(41, 1_000);
    read_chunks_btreemap_1m = btreemap_read(42, 1_000_000);
}
sized_cases! {
    write_chunks_vec_1 = vec_write(50, 1);
    write_chunks_vec_1k = vec_write(51, 1_000);
    write_chunks_vec_1m = vec_write(52, 1_000_000);
    read_chunks_vec_1 = vec_read(60, 1);
    read_chunks_vec_1k = vec_read(61, 1_000);
    read_chunks_vec_1m = vec_read(62, 1_000_000);
}
