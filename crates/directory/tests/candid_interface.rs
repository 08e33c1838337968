//! `directory.did` is generated from the code and checked in; this fails when they
//! drift, and refuses a regeneration that breaks existing clients.
//!
//! Regenerate: `UPDATE_DID=1 cargo test -p directory --test candid_interface`
//! (add `ALLOW_BREAKING_DID=1` only for a deliberate, announced breaking change).

#[path = "../../../tests/common/did_file.rs"]
mod did_file;

#[test]
fn directory_did_matches_the_code() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("directory.did");
    did_file::check_did_file(&directory::candid_interface(), &path, "UPDATE_DID=1 cargo test -p directory --test candid_interface");
}
