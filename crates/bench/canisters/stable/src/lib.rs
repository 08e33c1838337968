//! DFINITY stable-structures' canbench workloads (v0.7.2, `benchmarks/io_chunks` and a
//! representative set of `benchmarks/btreemap`), written again for the calibration of
//! ic-host's counting. Each `#[bench(raw)]` function becomes the query
//! `__canbench__<name>` returning canbench's `BenchResult`: the instructions of the
//! closure given to `bench_fn`, read with `ic0.performance_counter(0)`, as canbench
//! counts them on the IC's execution environment. Names are canbench's, so the host's
//! figure can be put beside the published one.

mod btreemap;
mod io_chunks;
mod random;
