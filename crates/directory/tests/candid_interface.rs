//! `directory.did` is generated from the code and checked in; this fails when they
//! drift, and refuses a regeneration that breaks existing clients.
//!
//! Regenerate: `UPDATE_DID=1 cargo test -p directory --test candid_interface`
//! (add `ALLOW_BREAKING_DID=1` only for a deliberate, announced breaking change).

use candid_parser::utils::{service_compatible, service_equal, CandidSource};

#[test]
fn directory_did_matches_the_code() {
    let generated = directory::candid_interface();
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("directory.did");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("UPDATE_DID").is_some() {
        if !checked_in.is_empty() && std::env::var_os("ALLOW_BREAKING_DID").is_none() {
            service_compatible(CandidSource::Text(&generated), CandidSource::Text(&checked_in))
                .expect("the new interface breaks existing clients; refusing to write directory.did");
        }
        std::fs::write(&path, format!("{}\n", generated.trim_end())).expect("write directory.did");
        return;
    }
    assert!(!checked_in.is_empty(), "directory.did is missing; run UPDATE_DID=1 cargo test -p directory --test candid_interface");
    service_compatible(CandidSource::Text(&generated), CandidSource::Text(&checked_in))
        .expect("the code's interface breaks clients of the checked-in directory.did");
    service_equal(CandidSource::Text(&generated), CandidSource::Text(&checked_in))
        .expect("directory.did differs from the code; run UPDATE_DID=1 cargo test -p directory --test candid_interface");
    assert_eq!(generated.trim(), checked_in.trim(), "directory.did text differs from the code");
}
