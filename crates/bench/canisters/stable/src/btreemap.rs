//! A representative set of `benchmarks/btreemap`: insert, get, contains, remove and
//! pop of 10,000 random entries with several key and value types (bounded blobs,
//! unbounded byte vectors, u64, principals; directly on stable memory or through a
//! MemoryManager), and range/scan over 1,000 entries of 10 KiB.

use crate::random::{Random, Unbounded};
use canbench_rs::{bench, bench_fn, BenchResult};
use candid::Principal;
use ic_stable_structures::memory_manager::{MemoryId, MemoryManager};
use ic_stable_structures::storable::Blob;
use ic_stable_structures::{BTreeMap, DefaultMemoryImpl, Memory, Storable};
use std::ops::Bound;
use tiny_rng::{Rand, Rng};

const COUNT: usize = 10_000;

trait Key: Clone + Ord + Storable + Random {}
impl<T: Clone + Ord + Storable + Random> Key for T {}
trait Value: Clone + Storable + Random {}
impl<T: Clone + Storable + Random> Value for T {}

fn entries<K: Key, V: Value>() -> Vec<(K, V)> {
    let mut rng = Rng::from_seed(0);
    (0..COUNT).map(|_| (K::random(&mut rng), V::random(&mut rng))).collect()
}

fn managed() -> impl Memory {
    MemoryManager::init(DefaultMemoryImpl::default()).get(MemoryId::new(42))
}

fn filled<K: Key, V: Value, M: Memory>(memory: M) -> (BTreeMap<K, V, M>, Vec<K>) {
    let mut map = BTreeMap::new(memory);
    let items = entries::<K, V>();
    let keys = items.iter().map(|(k, _)| k.clone()).collect();
    for (k, v) in items {
        map.insert(k, v);
    }
    (map, keys)
}

fn insert<K: Key, V: Value>(memory: impl Memory) -> BenchResult {
    let mut map = BTreeMap::new(memory);
    let items = entries::<K, V>();
    bench_fn(|| {
        for (k, v) in items {
            map.insert(k, v);
        }
    })
}

fn get<K: Key, V: Value>(memory: impl Memory) -> BenchResult {
    let (map, keys) = filled::<K, V, _>(memory);
    bench_fn(|| {
        for k in keys {
            map.get(&k);
        }
    })
}

fn contains<K: Key, V: Value>(memory: impl Memory) -> BenchResult {
    let (map, keys) = filled::<K, V, _>(memory);
    bench_fn(|| {
        for k in keys {
            map.contains_key(&k);
        }
    })
}

fn remove<K: Key, V: Value>(memory: impl Memory) -> BenchResult {
    let (mut map, keys) = filled::<K, V, _>(memory);
    bench_fn(|| {
        for k in keys {
            map.remove(&k);
        }
    })
}

fn pop_first<K: Key, V: Value>(memory: impl Memory) -> BenchResult {
    let (mut map, _) = filled::<K, V, _>(memory);
    bench_fn(|| {
        for _ in 0..COUNT {
            map.pop_first();
        }
    })
}

/// `count` entries `i -> size random bytes`.
fn blocks(count: usize, size: usize) -> BTreeMap<u32, Vec<u8>, DefaultMemoryImpl> {
    let mut map = BTreeMap::new(DefaultMemoryImpl::default());
    let mut rng = Rng::from_seed(0);
    let values: Vec<Vec<u8>> = (0..count).map(|_| (0..size).map(|_| rng.rand_u8()).collect()).collect();
    for (i, v) in values.into_iter().enumerate() {
        map.insert(i as u32, v);
    }
    map
}

fn range_bounds(size: usize) -> (Bound<u32>, Bound<u32>) {
    (Bound::Included(0), Bound::Included(size as u32))
}

macro_rules! cases {
    ($($name:ident = $f:ident::<$k:ty, $v:ty>($mem:expr);)*) => {$(
        #[bench(raw)]
        fn $name() -> BenchResult { $f::<$k, $v>($mem) }
    )*};
}

type B8 = Blob<8>;
type B32 = Blob<32>;
type B128 = Blob<128>;
type B512 = Blob<512>;
type V8 = Unbounded<8>;
type V32 = Unbounded<32>;
type V128 = Unbounded<128>;

cases! {
    btreemap_v2_insert_blob_32_128 = insert::<B32, B128>(DefaultMemoryImpl::default());
    btreemap_v2_insert_blob_8_128 = insert::<B8, B128>(DefaultMemoryImpl::default());
    btreemap_v2_insert_vec_32_128 = insert::<V32, V128>(DefaultMemoryImpl::default());
    btreemap_v2_insert_u64_u64 = insert::<u64, u64>(DefaultMemoryImpl::default());
    btreemap_v2_insert_u64_vec8 = insert::<u64, V8>(DefaultMemoryImpl::default());
    btreemap_v2_insert_principal = insert::<Principal, ()>(DefaultMemoryImpl::default());
    btreemap_v2_mem_manager_insert_u64_blob512 = insert::<u64, B512>(managed());
    btreemap_v2_get_blob_32_128 = get::<B32, B128>(DefaultMemoryImpl::default());
    btreemap_v2_get_vec_32_128 = get::<V32, V128>(DefaultMemoryImpl::default());
    btreemap_v2_get_u64_u64 = get::<u64, u64>(DefaultMemoryImpl::default());
    btreemap_v2_get_principal = get::<Principal, ()>(DefaultMemoryImpl::default());
    btreemap_v2_mem_manager_get_u64_u64 = get::<u64, u64>(managed());
    btreemap_v2_contains_u64_u64 = contains::<u64, u64>(DefaultMemoryImpl::default());
    btreemap_v2_remove_blob_32_128 = remove::<B32, B128>(DefaultMemoryImpl::default());
    btreemap_v2_remove_vec_32_128 = remove::<V32, V128>(DefaultMemoryImpl::default());
    btreemap_v2_remove_u64_u64 = remove::<u64, u64>(DefaultMemoryImpl::default());
    btreemap_v2_mem_manager_remove_u64_u64 = remove::<u64, u64>(managed());
    btreemap_v2_pop_first_u64_u64 = pop_first::<u64, u64>(DefaultMemoryImpl::default());
    btreemap_v2_pop_first_blob_32_128 = pop_first::<B32, B128>(DefaultMemoryImpl::default());
}

#[bench(raw)]
fn btreemap_v2_range_key_sum_1k_10kib() -> BenchResult {
    let map = blocks(1_000, 10 * 1024);
    bench_fn(|| map.range(range_bounds(10 * 1024)).map(|e| *e.key()).sum::<u32>())
}

#[bench(raw)]
fn btreemap_v2_range_value_sum_1k_10kib() -> BenchResult {
    let map = blocks(1_000, 10 * 1024);
    bench_fn(|| {
        map.range(range_bounds(10 * 1024)).filter(|e| *e.key() % 3 == 0).map(|e| e.value().len()).sum::<usize>()
    })
}

#[bench(raw)]
fn btreemap_v2_range_count_1k_10kib() -> BenchResult {
    let map = blocks(1_000, 10 * 1024);
    bench_fn(|| map.range(range_bounds(10 * 1024)).count())
}

#[bench(raw)]
fn btreemap_v2_scan_iter_1k_10kib() -> BenchResult {
    let mut map = BTreeMap::new(DefaultMemoryImpl::default());
    for i in 0..1_000u32 {
        map.insert(i, vec![0u8; 10 * 1024]);
    }
    bench_fn(|| for _ in map.iter() {})
}
