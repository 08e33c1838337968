//! What the benchmark's figures cost in cycles and dollars on a 13-node application
//! subnet, from the IC's fee table.
//!
//! Fees: `CyclesAccountManagerConfig::application_subnet` in dfinity/ic
//! `rs/config/src/subnet_config.rs` (read in 2026; the same figures as the IC docs'
//! "Cycles cost formulas" / "gas cost" pages for a 13-node subnet).

use std::fmt::Write;

use crate::keepsake::Upload;
use crate::meter::Msg;

/// Per update message executed (`update_message_execution_fee`).
pub const UPDATE_MESSAGE: u64 = 5_000_000;
/// Per instruction of an update (`ten_update_instructions_execution_fee` = 10 per 10).
pub const PER_INSTRUCTION: f64 = 1.0;
/// Per ingress message received (`ingress_message_reception_fee`).
pub const INGRESS_MESSAGE: u64 = 1_200_000;
/// Per byte of an ingress message (`ingress_byte_reception_fee`).
pub const INGRESS_BYTE: u64 = 2_000;
/// Per GiB of canister memory per second (`gib_storage_per_second_fee`: 10 XDR per
/// GiB-year).
pub const GIB_SECOND: u64 = 317_500;
/// Cycles per XDR.
pub const CYCLES_PER_XDR: f64 = 1e12;
/// USD per XDR used for the dollar figures (the IC docs' rate of May 2025).
pub const USD_PER_XDR: f64 = 1.35;

const GB: f64 = 1e9;
const GIB: f64 = 1_073_741_824.0;
const MONTH_SECONDS: f64 = 30.0 * 86_400.0;

/// Cycles an ingress update message costs: reception (per message and per byte) and
/// execution (per message and per instruction). Queries cost nothing today.
pub fn update(m: &Msg) -> f64 {
    (INGRESS_MESSAGE + INGRESS_BYTE * m.ingress_bytes + UPDATE_MESSAGE) as f64 + PER_INSTRUCTION * m.instructions as f64
}

pub fn total<'a>(msgs: impl IntoIterator<Item = &'a Msg>) -> f64 {
    msgs.into_iter().map(update).sum()
}

/// The ingress floor of `bytes` content bytes: what their own reception costs.
pub fn ingress_floor(bytes: u64) -> f64 {
    (INGRESS_BYTE * bytes) as f64
}

/// Storage of one GB for 30 days.
pub fn storage_gb_month() -> f64 {
    GIB_SECOND as f64 * GB / GIB * MONTH_SECONDS
}

fn usd(cycles: f64) -> f64 {
    cycles / CYCLES_PER_XDR * USD_PER_XDR
}

fn t(cycles: f64) -> String {
    format!("{:.3} T (${:.3})", cycles / 1e12, usd(cycles))
}

/// One way of uploading a file: its messages.
pub struct Ingest<'a> {
    pub who: &'a str,
    pub size: u64,
    pub msgs: Vec<&'a Msg>,
}

impl Ingest<'_> {
    pub fn cycles(&self) -> f64 {
        total(self.msgs.iter().copied())
    }
    pub fn per_gb(&self) -> f64 {
        self.cycles() * GB / self.size as f64
    }
    /// Cycles over the ingress floor of the content.
    pub fn over_floor(&self) -> f64 {
        self.cycles() / ingress_floor(self.size)
    }
}

pub fn of_upload(up: &Upload) -> Ingest<'_> {
    Ingest { who: "keepsake", size: up.file.size, msgs: up.messages().collect() }
}

/// The report's cycles section. `stored`: (content bytes, stable memory bytes) of the
/// largest upload; `read`: a `blobs_read_range`/`blobs_read_chunk` query of `n` bytes.
pub fn markdown(ingests: &[Ingest<'_>], stored: Option<(u64, u64)>, churn: Option<&crate::keepsake::Churn>, read: Option<(&Msg, u64)>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Cycles: what a user pays\n\n\
         Fee table of a 13-node application subnet (dfinity/ic `rs/config/src/subnet_config.rs`, \
         `CyclesAccountManagerConfig::application_subnet`): {UPDATE_MESSAGE} cycles per update message \
         executed + {PER_INSTRUCTION} per instruction; {INGRESS_MESSAGE} per ingress message received + \
         {INGRESS_BYTE} per ingress byte (method name + argument; the envelope is not counted here); \
         storage {GIB_SECOND} per GiB-second (10 XDR per GiB-year); queries free. 1 XDR = 10^12 cycles = \
         ${USD_PER_XDR} (the IC docs' rate of May 2025).\n"
    );
    let _ = writeln!(s, "| upload | file | cycles | per GB | × ingress floor (target ≤ 1.05) |");
    let _ = writeln!(s, "|---|---:|---:|---:|---|");
    for i in ingests {
        let ok = if i.over_floor() <= 1.05 { "met" } else { "**not met**" };
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.4} × {} |",
            i.who,
            crate::data::mb(i.size),
            t(i.cycles()),
            t(i.per_gb()),
            i.over_floor(),
            ok
        );
    }
    let _ = writeln!(
        s,
        "\nThe ingress floor is {} cycles per content byte ({} per GB): reception dominates ingest; \
         execution adds the instructions (1 cycle each).\n",
        INGRESS_BYTE,
        t(ingress_floor(1_000_000_000))
    );
    let month = storage_gb_month();
    let _ = write!(s, "Storage: {} per GB-month of canister memory", t(month));
    if let Some((content, stable)) = stored {
        let ratio = stable as f64 / content as f64;
        let _ = write!(
            s,
            "; after the largest upload the canister holds {} of stable memory for {} of content \
             ({:.4} ×, target ≤ 1.01 {}), i.e. {} per GB-month of content",
            crate::data::mb(stable),
            crate::data::mb(content),
            ratio,
            if ratio <= 1.01 { "met" } else { "**not met**" },
            t(month * ratio)
        );
    }
    match churn {
        Some(c) => {
            let ratio = c.stable as f64 / c.content as f64;
            let _ = writeln!(
                s,
                ". After a delete/re-upload churn (10 files of uneven sizes, every other one deleted and freed, 5 \
                 new ones of other sizes uploaded: {} files alive) it holds {} of stable memory for {} of content \
                 ({:.4} ×, target ≤ 1.01 {}; {} of it free extents the churn left in the arena). Heap memory (a few \
                 MiB) also counts.\n",
                c.files,
                crate::data::mb(c.stable),
                crate::data::mb(c.content),
                ratio,
                if ratio <= 1.01 { "met" } else { "**not met**" },
                crate::data::mb(c.free)
            );
        }
        None => {
            let _ = writeln!(s, ". The delete/re-upload churn is not measured (heap memory, a few MiB, also counts).\n");
        }
    }
    if let Some((m, n)) = read {
        let per_gb = m.instructions as f64 * GB / n as f64;
        let _ = writeln!(
            s,
            "Serving: reads are queries (`blobs_read_range`, and `http_request` through the HTTP gateway), \
             free for the caller and the canister today: 0 cycles per GB served. Their work, {:.0} M \
             instructions per GB (measured on a query of {}), would cost {} per GB if charged as updates.\n",
            per_gb / 1e6,
            crate::data::mb(n),
            t(per_gb * PER_INSTRUCTION)
        );
    }
    s
}
