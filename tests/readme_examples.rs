//! Every `dfx canister call backend …` example in README.md must type-check against
//! `backend.did`, and every method of the interface must have one: the API is meant to
//! be usable by hand.

use std::collections::BTreeSet;

use candid::types::{Type, TypeInner};
use candid_parser::utils::CandidSource;

#[path = "common/readme.rs"]
mod readme;
use readme::examples;

#[test]
fn readme_examples_type_check_against_backend_did() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let did = std::fs::read_to_string(format!("{root}/backend.did")).unwrap();
    let (env, actor) = CandidSource::Text(&did).load().unwrap();
    let actor = actor.expect("service");
    let service = match env.trace_type(&actor).unwrap().as_ref() {
        TypeInner::Class(_, service) => service.clone(), // `service : () -> { … }`
        _ => actor.clone(),
    };
    let all: BTreeSet<String> = match env.trace_type(&service).unwrap().as_ref() {
        TypeInner::Service(methods) => methods.iter().map(|(name, _): &(String, Type)| name.clone()).collect(),
        other => panic!("not a service: {other:?}"),
    };
    let examples = examples(&readme);
    let mut covered = BTreeSet::new();
    for (method, args) in &examples {
        let func = env.get_method(&service, method).unwrap_or_else(|_| panic!("README calls unknown method {method}"));
        let parsed = candid_parser::parse_idl_args(args).unwrap_or_else(|e| panic!("{method}: {args}: {e}"));
        parsed.to_bytes_with_types(&env, &func.args).unwrap_or_else(|e| panic!("{method}: {args}: {e}"));
        covered.insert(method.clone());
    }
    let missing: Vec<_> = all.difference(&covered).collect();
    assert!(missing.is_empty(), "methods without a dfx example in README.md: {missing:?}");
    println!("{} README examples cover all {} methods", examples.len(), all.len());
}
