//! A checked-in `.did` file against the interface the code generates (shared by
//! `backend.did` and the directory's `directory.did`): with `UPDATE_DID=1` it rewrites
//! the file, refusing a change that breaks existing clients unless `ALLOW_BREAKING_DID=1`;
//! otherwise it fails on a breaking change, then on any drift. `regenerate` is the
//! command that fixes drift.

use std::path::Path;

use candid_parser::utils::{service_compatible, service_equal, CandidSource};

pub fn check_did_file(generated: &str, path: &Path, regenerate: &str) {
    let name = path.file_name().unwrap().to_string_lossy();
    let checked_in = std::fs::read_to_string(path).unwrap_or_default();
    if std::env::var_os("UPDATE_DID").is_some() {
        if !checked_in.is_empty() && std::env::var_os("ALLOW_BREAKING_DID").is_none() {
            service_compatible(CandidSource::Text(generated), CandidSource::Text(&checked_in))
                .unwrap_or_else(|e| panic!("the new interface breaks existing clients; refusing to write {name}: {e}"));
        }
        std::fs::write(path, format!("{}\n", generated.trim_end())).unwrap_or_else(|e| panic!("write {name}: {e}"));
        return;
    }
    assert!(!checked_in.is_empty(), "{name} is missing; run {regenerate}");
    // Compatible first, so a breaking change reports as such rather than as drift.
    service_compatible(CandidSource::Text(generated), CandidSource::Text(&checked_in))
        .unwrap_or_else(|e| panic!("the code's interface breaks clients of the checked-in {name}: {e}"));
    service_equal(CandidSource::Text(generated), CandidSource::Text(&checked_in))
        .unwrap_or_else(|e| panic!("{name} differs from the code; run {regenerate}: {e}"));
    assert_eq!(generated.trim(), checked_in.trim(), "{name} text differs from the code; run {regenerate}");
}
