//! The binary's commands beyond upload / ls / get: each connects, calls the library
//! (`keepsake::{members, links, remove, export, import}`) and prints text or `--json`.

pub mod capsule;
pub mod directory;
pub mod links;
pub mod rm;
pub mod serve;
pub mod transfer;

use indicatif::DecimalBytes;

/// `12.3 MB`: decimal units, as `stats` users read them.
pub fn bytes(n: u64) -> String {
    DecimalBytes(n).to_string()
}
