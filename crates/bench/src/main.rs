//! keepsake-bench: what an upload costs in the keepsake backend, against the floor
//! (Candid decode + SHA-256) and against DFINITY's asset canister, all in one run of
//! the embedded IC host (deterministic instruction counts; system API calls charged
//! approximately as the IC does, see `ic_host::metering`).
//!
//! Run through `scripts/bench.sh` (builds the canisters first).

mod assets;
mod calib;
mod canbench;
mod chart;
mod cycles;
mod data;
mod keepsake;
mod meter;
mod report;
mod scale;
mod store;
mod upgrade;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use data::{File, MIB};

/// The IC's instruction limit of one update message.
pub const UPDATE_LIMIT: u64 = 40_000_000_000;

pub struct Args {
    smoke: bool,
    wasm_dir: PathBuf,
    backend: PathBuf,
    /// Other builds of the backend to compare: (name, path, calibration variant).
    variants: Vec<(String, PathBuf, String)>,
    out: PathBuf,
    /// `--store DIR`: only the durability figures of the page store, in DIR.
    store: Option<PathBuf>,
    /// `--canbench`: only the calibration against stable-structures' canbench results.
    canbench_only: bool,
    /// `--scale`: only the per-call costs at 1k, 10k and 100k memories (or
    /// `--scale-counts 1000,5000`).
    scale: bool,
    scale_counts: Option<Vec<u64>>,
    /// `--scale-responses`: a canister filled to 1 M certified responses (slow: each
    /// memory costs ~9 B instructions to create).
    scale_responses: bool,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        smoke: false,
        wasm_dir: PathBuf::from("target/bench/wasm"),
        backend: PathBuf::from("target/canister/backend.wasm"),
        variants: Vec::new(),
        out: PathBuf::from("bench"),
        store: None,
        canbench_only: false,
        scale: false,
        scale_counts: None,
        scale_responses: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--smoke" => args.smoke = true,
            "--wasm-dir" => args.wasm_dir = val()?.into(),
            "--backend" => args.backend = val()?.into(),
            "--out" => args.out = val()?.into(),
            "--store" => args.store = Some(val()?.into()),
            "--canbench" => args.canbench_only = true,
            "--scale" => args.scale = true,
            "--scale-responses" => args.scale_responses = true,
            "--scale-counts" => {
                let v = val()?;
                let counts = v.split(',').map(|n| n.trim().parse::<u64>()).collect::<Result<Vec<_>, _>>();
                args.scale_counts = Some(counts.with_context(|| format!("--scale-counts {v}: numbers separated by commas"))?);
                args.scale = true;
            }
            // NAME=PATH=CALIBRATION_VARIANT
            "--backend-variant" => {
                let v = val()?;
                let parts: Vec<&str> = v.splitn(3, '=').collect();
                let [name, path, calib] = parts[..] else { bail!("--backend-variant NAME=PATH=CALIB_VARIANT") };
                args.variants.push((name.into(), path.into(), calib.into()));
            }
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(args)
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}

/// The calibration variants present in the wasm directory, in a stable order.
fn calib_variants(dir: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
        if let Some(v) = name.strip_prefix("calib-").and_then(|n| n.strip_suffix(".wasm")) {
            out.push((v.to_string(), read(&p)?));
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("no calib-*.wasm in {}", dir.display());
    }
    Ok(out)
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let started = Instant::now();
    if args.canbench_only {
        let rows = canbench::run_all(&read(&args.wasm_dir.join("stable.wasm"))?, args.smoke)?;
        println!("{}", canbench::markdown(&rows, canbench::NOTES));
        return Ok(());
    }
    let backend_wasm = read(&args.backend)?;
    if args.scale || args.scale_responses {
        let path = args.out.join("scale.md");
        if args.scale {
            let default: &[u64] = if args.smoke { &[100, 1_000] } else { &[1_000, 10_000, 100_000] };
            let md = scale::markdown(&scale::run(&backend_wasm, args.scale_counts.as_deref().unwrap_or(default))?);
            if !args.smoke {
                std::fs::create_dir_all(&args.out)?;
                scale::write_counts(&path, &md)?;
            }
            println!("{md}");
        }
        if args.scale_responses {
            // The smoke run: the same code over a blob of 20 parts, to ~500 responses.
            let (parts, target) = if args.smoke { (20, 500) } else { (2_000, 1_000_000) };
            let md = scale::markdown_full(&scale::run_full(&backend_wasm, parts, target)?);
            if !args.smoke {
                std::fs::create_dir_all(&args.out)?;
                scale::write_full(&path, &md)?;
            }
            println!("{md}");
        }
        return Ok(());
    }
    if let Some(dir) = &args.store {
        println!("{}", store::run(&backend_wasm, dir, args.smoke)?);
        return Ok(());
    }
    let assets_wasm = read(&args.wasm_dir.join("assets.wasm"))?;
    let variants = calib_variants(&args.wasm_dir)?;

    let mut r = report::Report { smoke: args.smoke, backend_wasm_bytes: backend_wasm.len(), ..Default::default() };

    // Chunk size: the backend's default (the smoke run uses the smallest).
    let mut probe = keepsake::Canister::install(&backend_wasm)?;
    let cfg = probe.config()?;
    drop(probe);
    let chunk_size = if args.smoke { cfg.min_chunk_size } else { cfg.default_chunk_size };
    r.config = Some(cfg.clone());
    r.chunk_size = chunk_size;
    let sizes: Vec<u64> =
        if args.smoke { vec![100_000, 700_000] } else { vec![1_000_000, 21_000_000, 200_000_000, 1_000_000_000] };
    let read_size = if args.smoke { sizes[1] } else { 200_000_000 };

    // 1. Calibration: the floor, per build variant and implementation.
    let chunk = File::new(u64::from(chunk_size), chunk_size, 7).chunk(0);
    for (name, wasm) in &variants {
        eprintln!("calibration: {name}");
        r.calibrations.extend(calib::calibrate(name, wasm, &chunk)?);
    }

    // 1b. Calibration against the IC: stable-structures' canbench workloads.
    let stable = args.wasm_dir.join("stable.wasm");
    if stable.is_file() {
        let t = Instant::now();
        r.canbench = canbench::run_all(&read(&stable)?, args.smoke)?;
        eprintln!("canbench calibration: {:.1} s", t.elapsed().as_secs_f64());
    }

    // 2. keepsake: one upload per size, in a fresh canister each.
    for (i, &size) in sizes.iter().enumerate() {
        let t = Instant::now();
        let file = File::new(size, chunk_size, 1000 + i as u64);
        let mut c = keepsake::Canister::install(&backend_wasm)?;
        let up = keepsake::upload(&mut c, file)?;
        if size == read_size {
            r.reads = Some(reads(&mut c, &up)?);
        }
        // Stable memory against content, of the largest upload (the last).
        r.stored = Some((size, c.host.stable_size_bytes()));
        eprintln!("keepsake {}: {:.1} s", data::mb(size), t.elapsed().as_secs_f64());
        r.uploads.push(up);
    }

    // 2a. Stable memory against content after a delete/re-upload churn.
    {
        let t = Instant::now();
        let total = if args.smoke { 20_000_000 } else { 1_000_000_000 };
        r.churn = Some(keepsake::churn(&backend_wasm, total, chunk_size)?);
        eprintln!("keepsake churn of {}: {:.1} s", data::mb(total), t.elapsed().as_secs_f64());
    }

    // 2b. The worst order for the rolling hash: chunks in reverse.
    {
        let size = if args.smoke { sizes[1] } else { 21_000_000 };
        let mut c = keepsake::Canister::install(&backend_wasm)?;
        r.reverse = Some(keepsake::upload_in(&mut c, File::new(size, chunk_size, 31), true)?);
    }

    // 3. The asset canister on the same files, both modes.
    for (i, &size) in sizes.iter().enumerate() {
        let t = Instant::now();
        let file = File::new(size, chunk_size, 1000 + i as u64);
        r.assets.push(asset_run(&assets_wasm, file)?);
        eprintln!("asset canister {}: {:.1} s", data::mb(size), t.elapsed().as_secs_f64());
    }
    if !args.smoke {
        r.asset_failure = Some(asset_failure(&assets_wasm, &r.assets, chunk_size)?);
    }
    // The asset canister with opt-level "z" for every crate: commit cost only.
    let all_z = args.wasm_dir.join("assets-z.wasm");
    if all_z.is_file() {
        let file = File::new(sizes[1], chunk_size, 1001);
        let mut batch = assets::stage(&read(&all_z)?, file)?;
        let (res, commit) = batch.commit(false)?;
        res.map_err(|e| anyhow::anyhow!("asset canister (all z): commit failed: {e}"))?;
        batch.check()?;
        r.assets_all_z = Some(report::AllZ { size: file.size, upload: meter::total(&batch.upload), commit });
    }

    // 4. Host throughput: 4 sessions interleaved, against native sha2.
    let total = if args.smoke { 800_000 } else { 200_000_000 };
    r.throughput = Some(throughput(&backend_wasm, total, 4, chunk_size)?);

    // 5. Other builds of the backend.
    for (name, path, calib) in &args.variants {
        let wasm = read(path)?;
        let size = if args.smoke { sizes[1] } else { 21_000_000 };
        let mut c = keepsake::Canister::install(&wasm)?;
        let up = keepsake::upload(&mut c, File::new(size, chunk_size, 77))?;
        r.backend_variants.push(report::Variant {
            name: name.clone(),
            calib: calib.clone(),
            wasm_bytes: wasm.len(),
            upload: up,
        });
    }

    // 6. Upgrades with data stored, keepsake against the asset canister.
    // (10 GB: ~10 GiB of the host's RAM for a few minutes.)
    let upgrade_sizes: &[u64] = if args.smoke { &[0, sizes[1]] } else { &[0, 100_000_000, 1_000_000_000, 10_000_000_000] };
    let upgrades = upgrade::run(&backend_wasm, &assets_wasm, upgrade_sizes, chunk_size)?;

    r.seconds = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&args.out)?;
    let chart_name = "upload-instructions.png";
    report::chart(&r, &args.out.join(chart_name))?;
    let md = report::markdown(&r, chart_name) + "\n" + &upgrade::markdown(&upgrades);
    std::fs::write(args.out.join("report.md"), &md)?;
    println!("{md}");
    eprintln!("wrote {} and {}", args.out.join("report.md").display(), args.out.join(chart_name).display());
    Ok(())
}

/// Reads back a blob: one whole chunk, and an unaligned range across a chunk boundary.
fn reads(c: &mut keepsake::Canister, up: &keepsake::Upload) -> Result<report::Reads> {
    let file = up.file;
    let idx = file.chunk_count() / 2;
    let (bytes, chunk) = c.read_chunk(up.blob, idx)?;
    if bytes != file.chunk(idx) {
        bail!("blobs_read_chunk returned other bytes than were uploaded");
    }
    let max = c.config()?.max_read_bytes;
    let len = (1u64 << 20).min(max).min(file.size / 2);
    let offset = u64::from(file.chunk_size) * u64::from(idx) - len / 3 + 1;
    let (bytes, range) = c.read_range(up.blob, offset, len)?;
    if bytes != file.range(offset, len as usize) {
        bail!("blobs_read_range returned other bytes than were uploaded");
    }
    Ok(report::Reads { blob_size: file.size, chunk, range })
}

fn asset_run(wasm: &[u8], file: File) -> Result<report::AssetRun> {
    // Canister-side hash first: if it traps, the batch is unchanged and the trusted
    // commit runs on the very same batch; if it succeeds, stage the file again.
    let mut batch = assets::stage(wasm, file)?;
    let upload = batch.upload.clone();
    let (hashed, hashed_commit) = batch.commit(false)?;
    let (trusted_commit, trusted_upload) = if hashed.is_ok() {
        batch.check()?;
        drop(batch);
        let mut again = assets::stage(wasm, file)?;
        let (r, m) = again.commit(true)?;
        r.map_err(|e| anyhow::anyhow!("asset canister: trusted commit of {} failed: {e}", data::mb(file.size)))?;
        again.check()?;
        (m, again.upload.clone())
    } else {
        let (r, m) = batch.commit(true)?;
        r.map_err(|e| anyhow::anyhow!("asset canister: trusted commit of {} failed: {e}", data::mb(file.size)))?;
        batch.check()?;
        (m, upload.clone())
    };
    Ok(report::AssetRun { file, upload, hashed_commit, hashed_error: hashed.err(), trusted_upload, trusted_commit })
}

/// The file size at which the canister-side-hash commit exceeds the instruction
/// limit: extrapolated from the two largest successful commits, then confirmed by a
/// run on each side of it.
fn asset_failure(wasm: &[u8], runs: &[report::AssetRun], chunk_size: u32) -> Result<report::AssetFailure> {
    let ok: Vec<&report::AssetRun> = runs.iter().filter(|r| r.hashed_error.is_none()).collect();
    let [.., a, b] = ok[..] else { bail!("need two successful canister-side-hash commits to extrapolate") };
    let slope = (b.hashed_commit.instructions as f64 - a.hashed_commit.instructions as f64)
        / (b.file.size - a.file.size) as f64;
    let intercept = b.hashed_commit.instructions as f64 - slope * b.file.size as f64;
    let predicted = ((UPDATE_LIMIT as f64 - intercept) / slope) as u64;
    let side = |size: u64| -> Result<(u64, Result<u64, String>)> {
        let t = Instant::now();
        let mut batch = assets::stage(wasm, File::new(size, chunk_size, 5000 + size))?;
        let (r, m) = batch.commit(false)?;
        eprintln!("asset canister failure search {}: {:.1} s", data::mb(size), t.elapsed().as_secs_f64());
        Ok((size, r.map(|_| m.instructions)))
    };
    let below = side(predicted - predicted / 100)?;
    let above = side(predicted + predicted / 100)?;
    Ok(report::AssetFailure { slope_per_byte: slope, predicted, below, above })
}

fn throughput(wasm: &[u8], total: u64, sessions: u32, chunk_size: u32) -> Result<report::Throughput> {
    let files: Vec<File> =
        (0..sessions).map(|s| File::new(total / u64::from(sessions), chunk_size, 9000 + u64::from(s))).collect();
    let chunks: Vec<Vec<Vec<u8>>> = files.iter().map(|f| (0..f.chunk_count()).map(|i| f.chunk(i)).collect()).collect();
    // Native sha2 over the same bytes.
    let t = Instant::now();
    let digests: Vec<[u8; 32]> = chunks
        .iter()
        .map(|cs| {
            let mut h = Sha256::new();
            cs.iter().for_each(|c| h.update(c));
            h.finalize().into()
        })
        .collect();
    let native_s = t.elapsed().as_secs_f64();

    let mut c = keepsake::Canister::install(wasm)?;
    let t = Instant::now();
    let mut ids = Vec::new();
    let mut largest = 0;
    for f in &files {
        let (id, m) = c.begin(f, "parallel")?;
        largest = largest.max(m.instructions);
        ids.push(id);
    }
    let rounds = files.iter().map(|f| f.chunk_count()).max().unwrap_or(0);
    for idx in 0..rounds {
        for (s, f) in files.iter().enumerate() {
            if idx < f.chunk_count() {
                let m = c.put(ids[s], idx, chunks[s][idx as usize].clone())?;
                largest = largest.max(m.instructions);
            }
        }
    }
    let mut instructions = 0u64;
    for (s, f) in files.iter().enumerate() {
        let (_, ms) = c.finish(ids[s], f, digests[s])?;
        largest = largest.max(meter::largest(&ms));
        instructions += meter::total(&ms);
    }
    let host_s = t.elapsed().as_secs_f64();
    let _ = instructions;
    Ok(report::Throughput { bytes: total, sessions, host_s, native_s, largest })
}

pub fn per_mib(instructions: u64, bytes: u64) -> f64 {
    instructions as f64 * MIB / bytes as f64
}
