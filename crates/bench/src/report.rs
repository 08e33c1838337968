//! The figures of one run: the markdown report and the chart. Every number printed
//! here comes from the run.

use std::fmt::Write;

use plotters::style::RGBColor;

use crate::calib::Calibration;
use crate::chart::{self, Failure, Series};
use crate::data::{mb, File, MIB};
use backend::api::UploadConfig;

use crate::keepsake::Upload;
use crate::meter::{largest, total, Msg};
use crate::{per_mib, UPDATE_LIMIT};

/// The backend's current build settings, as named in `build-canisters.sh`.
pub const BACKEND_BUILD: &str = "z-hash3";
/// Largest message allowed by the targets: 0.5 % of the update limit.
pub const MESSAGE_TARGET: u64 = UPDATE_LIMIT / 200;

pub struct Reads {
    pub blob_size: u64,
    pub chunk: Msg,
    pub range: Msg,
}

pub struct AssetRun {
    pub file: File,
    /// `create_batch` + every `create_chunk` (the staging of the canister-side-hash run).
    pub upload: Vec<Msg>,
    pub hashed_commit: Msg,
    pub hashed_error: Option<String>,
    pub trusted_upload: Vec<Msg>,
    pub trusted_commit: Msg,
}

impl AssetRun {
    fn hashed_total(&self) -> u64 {
        total(&self.upload) + self.hashed_commit.instructions
    }
    fn trusted_total(&self) -> u64 {
        total(&self.trusted_upload) + self.trusted_commit.instructions
    }
    fn create_chunk_per_byte(&self) -> f64 {
        let chunks: Vec<&Msg> = self.upload.iter().filter(|m| m.payload > 0).collect();
        chunks.iter().map(|m| m.instructions).sum::<u64>() as f64 / chunks.iter().map(|m| m.payload).sum::<u64>() as f64
    }
}

pub struct AssetFailure {
    pub slope_per_byte: f64,
    pub predicted: u64,
    /// (size, Ok(commit instructions) or Err(trap)) just below / above the prediction.
    pub below: (u64, Result<u64, String>),
    pub above: (u64, Result<u64, String>),
}

pub struct AllZ {
    pub size: u64,
    /// `create_batch` + every `create_chunk`.
    pub upload: u64,
    pub commit: Msg,
}

pub struct Throughput {
    pub bytes: u64,
    pub sessions: u32,
    pub host_s: f64,
    pub native_s: f64,
    pub largest: u64,
}

pub struct Variant {
    pub name: String,
    pub calib: String,
    pub wasm_bytes: usize,
    pub upload: Upload,
}

#[derive(Default)]
pub struct Report {
    pub smoke: bool,
    pub seconds: f64,
    pub backend_wasm_bytes: usize,
    pub config: Option<UploadConfig>,
    pub chunk_size: u32,
    pub calibrations: Vec<Calibration>,
    pub uploads: Vec<Upload>,
    pub reads: Option<Reads>,
    pub assets: Vec<AssetRun>,
    pub asset_failure: Option<AssetFailure>,
    /// The asset canister built with opt-level "z" everywhere (canister-hash mode).
    pub assets_all_z: Option<AllZ>,
    /// An upload with its chunks in reverse order.
    pub reverse: Option<Upload>,
    pub throughput: Option<Throughput>,
    pub backend_variants: Vec<Variant>,
    /// stable-structures' canbench workloads: ic-host beside the IC.
    pub canbench: Vec<crate::canbench::Row>,
    /// (content bytes, stable memory bytes) after the largest upload.
    pub stored: Option<(u64, u64)>,
    /// Stable memory after a delete/re-upload churn.
    pub churn: Option<crate::keepsake::Churn>,
}

fn m(instructions: f64) -> String {
    if instructions >= 1e9 {
        format!("{:.2} B", instructions / 1e9)
    } else if instructions >= 1e6 {
        format!("{:.1} M", instructions / 1e6)
    } else if instructions >= 1e3 {
        format!("{:.1} k", instructions / 1e3)
    } else {
        format!("{instructions:.0}")
    }
}

fn pct(x: f64) -> String {
    format!("{:.3} %", x * 100.0)
}

fn yes(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

/// Mean put_chunk instructions per MiB over the full-size chunks of every upload.
fn put_per_mib(ups: &[Upload]) -> f64 {
    let (i, b) =
        ups.iter().flat_map(|u| u.full_puts()).fold((0u64, 0u64), |(i, b), m| (i + m.instructions, b + m.payload));
    per_mib(i, b)
}

fn written_ratio(ups: &[Upload]) -> (f64, f64) {
    let puts: Vec<&Msg> = ups.iter().flat_map(|u| u.full_puts()).collect();
    let mean =
        puts.iter().map(|m| m.stable_written).sum::<u64>() as f64 / puts.iter().map(|m| m.payload).sum::<u64>() as f64;
    let max = puts.iter().map(|m| m.stable_written as f64 / m.payload as f64).fold(0.0, f64::max);
    (mean, max)
}

impl Report {
    fn calib(&self, variant: &str, implementation: &str) -> Option<&Calibration> {
        self.calibrations.iter().find(|c| c.variant == variant && c.implementation == implementation)
    }
    /// The floor for the backend as built today.
    fn floor(&self) -> Option<&Calibration> {
        self.calib(BACKEND_BUILD, "sha2").or_else(|| self.calibrations.first())
    }
    fn fastest(&self) -> Option<&Calibration> {
        self.calibrations.iter().min_by(|a, b| a.hash_per_byte().total_cmp(&b.hash_per_byte()))
    }
}

pub fn markdown(r: &Report, chart: &str) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(
        w,
        "# What an upload costs{}\n",
        if r.smoke { " (smoke run: tiny files, figures not meaningful)" } else { "" }
    );
    let _ = writeln!(
        w,
        "Generated by `scripts/bench.sh{}` in {:.0} s. One run of the embedded IC host (`ic-host`): \
         instructions are counted as the IC counts them (deterministic): each Wasm operator at the \
         replica's weight, system API calls at their overhead plus bytes copied, 1,000 per newly \
         dirtied 4 KiB stable page (`ic_host::metering`). \
         Chunk size {} bytes; backend Wasm {} bytes. MiB = 1,048,576 bytes; file sizes in decimal MB/GB. \
         Limit of one update message: {} instructions.\n",
        if r.smoke { " --smoke" } else { "" },
        r.seconds,
        r.chunk_size,
        r.backend_wasm_bytes,
        m(UPDATE_LIMIT as f64)
    );

    if !r.canbench.is_empty() {
        let _ = writeln!(w, "{}", crate::canbench::markdown(&r.canbench, crate::canbench::NOTES));
    }

    // --- cycles ---
    {
        use crate::cycles::{of_upload, Ingest};
        let mut ingests: Vec<Ingest<'_>> = r.uploads.iter().map(of_upload).collect();
        for a in &r.assets {
            let msgs = a.upload.iter().chain(std::iter::once(&a.hashed_commit)).collect();
            ingests.push(Ingest { who: "asset canister (canister hash)", size: a.file.size, msgs });
        }
        let read = r.reads.as_ref().map(|rd| (&rd.chunk, rd.chunk.payload));
        let _ = writeln!(w, "{}", crate::cycles::markdown(&ingests, r.stored, r.churn.as_ref(), read));
    }

    // --- calibration ---
    let _ = writeln!(w, "## The floor: Candid decode + SHA-256 (calibration canister)\n");
    let _ = writeln!(
        w,
        "One chunk of {} bytes. Build variants (see `crates/bench/build-canisters.sh`): opt-level of the \
         whole canister / of the hash crates, `simd` = `-C target-feature=+simd128` (sha2 0.11 then uses its \
         wasm32 SIMD backend). `{BACKEND_BUILD}` is the backend's build today. Every implementation passed the \
         listed number of checks (NIST vectors + cross-checks against native sha2) inside the canister.\n",
        r.chunk_size
    );
    let _ =
        writeln!(w, "| build | implementation | Wasm bytes | decode /MiB | SHA-256 instr/byte | floor /MiB | checks |");
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|");
    for c in &r.calibrations {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            c.variant,
            c.implementation,
            c.wasm_bytes,
            m(c.decode_per_mib()),
            c.hash_per_byte(),
            m(c.floor_per_mib()),
            c.vectors
        );
    }

    // --- keepsake ---
    let floor = r.floor();
    let put = put_per_mib(&r.uploads);
    let (written_mean, written_max) = written_ratio(&r.uploads);
    let _ = writeln!(w, "\n## keepsake backend: one upload per file (chunks in order)\n");
    let _ = writeln!(w, "| file | messages | total | total /MiB | put_chunk /MiB | finish | largest message | largest / limit | stable written / chunk |");
    let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for u in &r.uploads {
        let (wm, _) = written_ratio(std::slice::from_ref(u));
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            mb(u.file.size),
            u.messages().count(),
            m(u.total() as f64),
            m(per_mib(u.total(), u.file.size)),
            if u.full_puts().count() > 0 {
                m(put_per_mib(std::slice::from_ref(u)))
            } else {
                "– (no full chunk)".into()
            },
            m(u.finish_instructions() as f64),
            m(u.largest() as f64),
            pct(u.largest() as f64 / UPDATE_LIMIT as f64),
            if wm.is_nan() { "– (no full chunk)".to_string() } else { format!("{wm:.4}") }
        );
    }
    let sys: u64 = r.uploads.iter().flat_map(|u| u.full_puts()).map(|m| m.system_api).sum();
    let bytes: u64 = r.uploads.iter().flat_map(|u| u.full_puts()).map(|m| m.payload).sum();
    let _ = writeln!(
        w,
        "\nput_chunk: {} per MiB, of which {} system API charges (Wasm alone: {}).",
        m(put),
        m(per_mib(sys, bytes)),
        m(put - per_mib(sys, bytes))
    );
    if let Some(f) = floor {
        let _ = writeln!(
            w,
            "Floor (`{}`/{}): {} per MiB → put_chunk = **{:.3} × floor**.",
            f.variant,
            f.implementation,
            m(f.floor_per_mib()),
            put / f.floor_per_mib()
        );
    }
    let _ = writeln!(
        w,
        "Stable memory written per put_chunk: mean {written_mean:.4} × chunk size, max {written_max:.4} ×."
    );
    if let Some(u) = &r.reverse {
        let fin = largest(&u.finishes);
        let _ = writeln!(
            w,
            "\nWorst order for the rolling hash ({} uploaded in **reverse** chunk order, hash budget {} bytes per \
             message): largest put {}, {} finish messages of up to {} ({} of the limit); whole upload {} ({} per MiB).",
            mb(u.file.size),
            r.config.as_ref().map_or(0, |c| c.hash_bytes_per_message),
            m(largest(&u.puts) as f64),
            u.finishes.len(),
            m(fin as f64),
            pct(fin as f64 / UPDATE_LIMIT as f64),
            m(u.total() as f64),
            m(per_mib(u.total(), u.file.size))
        );
    }

    if let Some(rd) = &r.reads {
        let _ = writeln!(w, "\n### Reads (queries on the {} blob)\n", mb(rd.blob_size));
        let _ = writeln!(w, "| query | bytes | instructions | per MiB |");
        let _ = writeln!(w, "|---|---:|---:|---:|");
        for (name, msg) in [
            ("blobs_read_chunk (one whole chunk)", &rd.chunk),
            ("blobs_read_range (unaligned, across a chunk boundary)", &rd.range),
        ] {
            let _ = writeln!(
                w,
                "| {name} | {} | {} | {} |",
                msg.payload,
                m(msg.instructions as f64),
                m(per_mib(msg.instructions, msg.payload))
            );
        }
    }

    // --- asset canister ---
    let _ = writeln!(w, "\n## DFINITY asset canister (ic-certified-assets 0.3.0), same files\n");
    let _ = writeln!(
        w,
        "Built like dfinity/sdk's ic-frontend-canister: release, `panic = \"abort\"`, LTO, opt-level \"z\" for the \
         canister crate (dependencies at the default opt-level 3). Upload = `create_batch` + one `create_chunk` \
         per chunk; then one `commit_batch` (CreateAsset + SetAssetContent). *trusted*: the client's SHA-256 is \
         passed and never checked; *canister hash*: `sha256 = null`, the commit hashes all content. \
         create_chunk: {:.2} instructions per byte.\n",
        r.assets.first().map_or(0.0, |a| a.create_chunk_per_byte())
    );
    let _ = writeln!(
        w,
        "| file | mode | upload | commit | total | total /MiB | largest message | largest / limit | result |"
    );
    let _ = writeln!(w, "|---|---|---:|---:|---:|---:|---:|---:|---|");
    for a in &r.assets {
        let hashed_largest = largest(&a.upload).max(a.hashed_commit.instructions);
        let trusted_largest = largest(&a.trusted_upload).max(a.trusted_commit.instructions);
        let _ = writeln!(
            w,
            "| {} | trusted | {} | {} | {} | {} | {} | {} | ok |",
            mb(a.file.size),
            m(total(&a.trusted_upload) as f64),
            m(a.trusted_commit.instructions as f64),
            m(a.trusted_total() as f64),
            m(per_mib(a.trusted_total(), a.file.size)),
            m(trusted_largest as f64),
            pct(trusted_largest as f64 / UPDATE_LIMIT as f64)
        );
        let result = match &a.hashed_error {
            None => "ok".to_string(),
            Some(e) if e.contains("instruction limit") => "**trap: instruction limit**".to_string(),
            Some(e) => format!("**error**: {}", e.chars().take(120).collect::<String>()),
        };
        let _ = writeln!(
            w,
            "| {} | canister hash | {} | {}{} | {} | {} | {} | {} | {} |",
            mb(a.file.size),
            m(total(&a.upload) as f64),
            if a.hashed_error.is_some() { "≥ " } else { "" },
            m(a.hashed_commit.instructions as f64),
            if a.hashed_error.is_some() { "–".into() } else { m(a.hashed_total() as f64) },
            if a.hashed_error.is_some() { "–".into() } else { m(per_mib(a.hashed_total(), a.file.size)) },
            m(hashed_largest as f64),
            pct(hashed_largest as f64 / UPDATE_LIMIT as f64),
            result
        );
    }
    if let Some(f) = &r.asset_failure {
        let show = |(size, res): &(u64, Result<u64, String>)| match res {
            Ok(i) => format!("{} bytes ({}): commit succeeds with {} instructions", size, mb(*size), m(*i as f64)),
            Err(e) if e.contains("instruction limit") => {
                format!("{} bytes ({}): commit traps at the instruction limit", size, mb(*size))
            }
            Err(e) => {
                format!("{} bytes ({}): commit fails: {}", size, mb(*size), e.chars().take(160).collect::<String>())
            }
        };
        let _ = writeln!(
            w,
            "\nWhere the canister-side-hash commit fails: the commit costs {:.2} instructions per byte \
             ({} per MiB), which reaches the limit at **{} ({:.0} MiB)** by extrapolation. Confirmed:\n\n- {}\n- {}",
            f.slope_per_byte,
            m(f.slope_per_byte * MIB),
            mb(f.predicted),
            f.predicted as f64 / MIB,
            show(&f.below),
            show(&f.above)
        );
    }

    if let Some(z) = &r.assets_all_z {
        let per_byte = z.commit.instructions as f64 / z.size as f64;
        let _ = writeln!(
            w,
            "\nThe same asset canister built with opt-level \"z\" for **every** crate (sha2 included), canister-hash mode, \
             {}: upload {}, commit {} ({} per MiB, {:.1} per byte), total {} per MiB; the commit would reach the limit \
             near {:.0} MiB.\n",
            mb(z.size),
            m(z.upload as f64),
            m(z.commit.instructions as f64),
            m(per_mib(z.commit.instructions, z.size)),
            per_byte,
            m(per_mib(z.upload + z.commit.instructions, z.size)),
            UPDATE_LIMIT as f64 / per_byte / MIB
        );
    }

    // --- throughput ---
    if let Some(t) = &r.throughput {
        let _ = writeln!(w, "\n## Host throughput\n");
        let _ = writeln!(
            w,
            "{} in {} sessions, puts interleaved, plus finishes: **{:.1} MB/s** end to end in the embedded host \
             ({:.1} s; largest message {}). Native sha2 on the same bytes, same run: **{:.1} MB/s**.",
            mb(t.bytes),
            t.sessions,
            t.bytes as f64 / 1e6 / t.host_s,
            t.host_s,
            m(t.largest as f64),
            t.bytes as f64 / 1e6 / t.native_s
        );
    }

    // --- other builds of the backend ---
    if !r.backend_variants.is_empty() {
        let _ = writeln!(w, "\n## Other builds of the backend ({} file)\n", mb(r.backend_variants[0].upload.file.size));
        let _ = writeln!(w, "| build | Wasm bytes | put_chunk /MiB | floor /MiB (same build) | put / floor | finish | largest message |");
        let _ = writeln!(w, "|---|---:|---:|---:|---:|---:|---:|");
        let size = r.backend_variants[0].upload.file.size;
        let cur = r
            .uploads
            .iter()
            .find(|u| u.file.size == size)
            .or_else(|| r.uploads.iter().find(|u| u.full_puts().count() > 0));
        if let (Some(u), Some(f)) = (cur, floor) {
            let p = put_per_mib(std::slice::from_ref(u));
            let _ = writeln!(
                w,
                "| current (`{BACKEND_BUILD}`, {}) | {} | {} | {} | {:.3} | {} | {} |",
                mb(u.file.size),
                r.backend_wasm_bytes,
                m(p),
                m(f.floor_per_mib()),
                p / f.floor_per_mib(),
                m(u.finish_instructions() as f64),
                m(u.largest() as f64)
            );
        }
        for v in &r.backend_variants {
            let p = put_per_mib(std::slice::from_ref(&v.upload));
            let f = r.calib(&v.calib, "sha2").map(|c| c.floor_per_mib());
            let _ = writeln!(
                w,
                "| {} | {} | {} | {} | {} | {} | {} |",
                v.name,
                v.wasm_bytes,
                m(p),
                f.map_or("–".into(), m),
                f.map_or("–".into(), |f| format!("{:.3}", p / f)),
                m(v.upload.finish_instructions() as f64),
                m(v.upload.largest() as f64)
            );
        }
    }

    // --- targets ---
    let _ = writeln!(w, "\n## Targets\n");
    let _ = writeln!(w, "| target | measured | |");
    let _ = writeln!(w, "|---|---|---|");
    if let Some(f) = floor {
        let ratio = put / f.floor_per_mib();
        let _ = writeln!(
            w,
            "| put_chunk ≤ 1.1 × floor | {ratio:.3} × ({} vs {} per MiB) | {} |",
            m(put),
            m(f.floor_per_mib()),
            yes(ratio <= 1.1)
        );
    }
    let _ = writeln!(
        w,
        "| stable bytes written ≤ 1.05 × chunk | mean {written_mean:.4} ×, max {written_max:.4} × | {} |",
        yes(written_max <= 1.05)
    );
    let (first, last) = (r.uploads.first(), r.uploads.last());
    if let (Some(a), Some(b)) = (first, last) {
        let ratio = b.finish_instructions() as f64 / a.finish_instructions() as f64;
        let _ = writeln!(
            w,
            "| finish({}) / finish({}) ≤ 2 | {ratio:.3} ({} / {}) | {} |",
            mb(b.file.size),
            mb(a.file.size),
            m(b.finish_instructions() as f64),
            m(a.finish_instructions() as f64),
            yes(ratio <= 2.0)
        );
    }
    let worst_in_order =
        r.uploads.iter().map(|u| u.largest()).chain(r.throughput.as_ref().map(|t| t.largest)).max().unwrap_or(0);
    let asset_fails_last = r.assets.last().is_some_and(|a| a.hashed_error.is_some());
    let largest_file = last.map_or("–".into(), |u| mb(u.file.size));
    let _ = writeln!(
        w,
        "| no message > 0.5 % of the limit ({}), any size, chunks in order; the largest file works | largest {} ({}); {} uploaded and verified{} | {} |",
        m(MESSAGE_TARGET as f64),
        m(worst_in_order as f64),
        pct(worst_in_order as f64 / UPDATE_LIMIT as f64),
        largest_file,
        if asset_fails_last { "; the asset canister's verified commit fails there" } else { "" },
        yes(worst_in_order <= MESSAGE_TARGET)
    );
    if let Some(u) = &r.reverse {
        let _ = writeln!(
            w,
            "| the same, chunks in reverse order ({}) | largest {} ({}) | {} |",
            mb(u.file.size),
            m(u.largest() as f64),
            pct(u.largest() as f64 / UPDATE_LIMIT as f64),
            yes(u.largest() <= MESSAGE_TARGET)
        );
    }
    let pair =
        r.uploads.iter().rev().find_map(|u| {
            r.assets.iter().find(|a| a.file.size == u.file.size && a.hashed_error.is_none()).map(|a| (u, a))
        });
    if let Some((u, a)) = pair {
        let ours = per_mib(u.total(), u.file.size);
        let theirs = per_mib(a.hashed_total(), a.file.size);
        let _ = writeln!(
            w,
            "| verified ingest /MiB ≤ 0.75 × asset canister (canister hash), {} | {:.3} × ({} vs {}) | {} |",
            mb(u.file.size),
            ours / theirs,
            m(ours),
            m(theirs),
            yes(ours / theirs <= 0.75)
        );
        if let Some(z) = &r.assets_all_z {
            let theirs = per_mib(z.upload + z.commit.instructions, z.size);
            let _ = writeln!(
                w,
                "| the same against the asset canister built with opt-level \"z\" everywhere ({}) | {:.3} × ({} vs {}) | {} |",
                mb(z.size),
                ours / theirs,
                m(ours),
                m(theirs),
                yes(ours / theirs <= 0.75)
            );
        }
    }
    if let Some(c) = r.floor() {
        let _ = writeln!(
            w,
            "| SHA-256 ≤ 60 instr/byte (stretch 50), backend build today (`{}`/{}) | {:.1} | {} |",
            c.variant,
            c.implementation,
            c.hash_per_byte(),
            yes(c.hash_per_byte() <= 60.0)
        );
    }
    if let Some(c) = r.fastest() {
        let stretch = if c.hash_per_byte() <= 50.0 { " (stretch met)" } else { "" };
        let _ = writeln!(
            w,
            "| SHA-256 ≤ 60 instr/byte (stretch 50), fastest measured (`{}`/{}) | {:.1} | {}{} |",
            c.variant,
            c.implementation,
            c.hash_per_byte(),
            yes(c.hash_per_byte() <= 60.0),
            stretch
        );
    }

    // --- recommendation (from the figures) ---
    if let (Some(best), Some(cur)) = (r.fastest(), r.floor()) {
        let _ = writeln!(w, "\n## SHA-256 in Wasm: what to adopt\n");
        let _ = writeln!(
            w,
            "Fastest correct implementation measured: **{}** in build **`{}`**: {:.1} instructions per byte, \
             floor {} per MiB, against {:.1} per byte and {} per MiB for the backend's build today \
             (`{}`/{}): {:.0} % fewer instructions for the hash.",
            best.implementation,
            best.variant,
            best.hash_per_byte(),
            m(best.floor_per_mib()),
            cur.hash_per_byte(),
            m(cur.floor_per_mib()),
            cur.variant,
            cur.implementation,
            (1.0 - best.hash_per_byte() / cur.hash_per_byte()) * 100.0
        );
    }
    let _ = writeln!(w, "\n![instructions against file size]({chart})");
    s
}

const KEEPSAKE: RGBColor = RGBColor(0, 114, 178);
const KEEPSAKE_2: RGBColor = RGBColor(86, 180, 233);
const ASSET: RGBColor = RGBColor(213, 94, 0);
const ASSET_2: RGBColor = RGBColor(230, 159, 0);

pub fn chart(r: &Report, path: &std::path::Path) -> anyhow::Result<()> {
    let pts = |f: &dyn Fn(&Upload) -> u64| r.uploads.iter().map(|u| (u.file.size as f64, f(u) as f64)).collect();
    let mut series = vec![
        Series {
            label: "keepsake: whole verified upload".into(),
            color: KEEPSAKE,
            points: pts(&|u| u.total()),
            dashed: false,
        },
        Series {
            label: "keepsake: largest message".into(),
            color: KEEPSAKE_2,
            points: pts(&|u| u.largest()),
            dashed: true,
        },
        Series {
            label: "asset canister, trusted hash: whole upload".into(),
            color: ASSET_2,
            points: r.assets.iter().map(|a| (a.file.size as f64, a.trusted_total() as f64)).collect(),
            dashed: false,
        },
    ];
    let ok: Vec<&AssetRun> = r.assets.iter().filter(|a| a.hashed_error.is_none()).collect();
    series.push(Series {
        label: "asset canister, canister hash: whole upload".into(),
        color: ASSET,
        points: ok.iter().map(|a| (a.file.size as f64, a.hashed_total() as f64)).collect(),
        dashed: false,
    });
    series.push(Series {
        label: "asset canister, canister hash: commit (largest message)".into(),
        color: ASSET,
        points: ok.iter().map(|a| (a.file.size as f64, a.hashed_commit.instructions as f64)).collect(),
        dashed: true,
    });
    let failures: Vec<Failure> = r
        .assets
        .iter()
        .filter(|a| a.hashed_error.is_some())
        .map(|a| Failure {
            label: format!("asset canister, canister hash: commit traps ({})", mb(a.file.size)),
            at: (a.file.size as f64, UPDATE_LIMIT as f64),
        })
        .take(1)
        .collect();
    let limits = vec![
        ("40 B instruction limit of one message".to_string(), UPDATE_LIMIT as f64),
        ("0.5 % of the limit".to_string(), MESSAGE_TARGET as f64),
    ];
    chart::draw(path, "Instructions against file size (embedded IC host)", &series, &failures, &limits)
}
