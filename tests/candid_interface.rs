//! `backend.did` is generated from the code and checked in. This fails when they drift,
//! and refuses to regenerate it in a way that breaks existing clients.
//!
//! Regenerate: `UPDATE_DID=1 cargo test --test candid_interface`
//! (add `ALLOW_BREAKING_DID=1` only for a deliberate, announced breaking change).

mod common;
#[path = "common/did_file.rs"]
mod did_file;

use std::path::PathBuf;

use candid_parser::utils::{service_compatible, CandidSource};
use did_file::check_did_file;

#[test]
fn backend_did_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("backend.did");
    check_did_file(&backend::candid_interface(), &path, "UPDATE_DID=1 cargo test --test candid_interface");
}

#[test]
fn compatibility_check_refuses_a_breaking_change() {
    // The guard above is only worth something if it can say no: removing a method, or
    // changing an argument type, must be refused.
    let did = backend::candid_interface();
    let without_finish: String = did.lines().filter(|l| !l.contains("uploads_finish")).collect::<Vec<_>>().join("\n");
    assert!(service_compatible(CandidSource::Text(&without_finish), CandidSource::Text(&did)).is_err());
    let retyped = did.replace("uploads_abort : (nat64)", "uploads_abort : (text)");
    assert_ne!(retyped, did, "test must actually change the interface");
    assert!(service_compatible(CandidSource::Text(&retyped), CandidSource::Text(&did)).is_err());
}

/// `canister_inspect_message` decodes the arguments of every update method: its list
/// must be exactly the interface's update methods (a missing one would be let through
/// unchecked, an extra one would be a method that does not exist).
#[test]
fn inspect_message_knows_every_update_method() {
    let updates: Vec<String> = common::did_methods().into_iter().filter(|(_, query)| !query).map(|(name, _)| name).collect();
    let mut known: Vec<String> = backend::inspect::UPDATE_METHODS.iter().map(|m| m.to_string()).collect();
    known.sort();
    assert_eq!(known, updates);
}
