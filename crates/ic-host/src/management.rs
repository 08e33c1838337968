//! The few management-canister (`aaaaa-aa`) methods a canister calls on itself during
//! normal operation. Only `raw_rand` so far: canisters need it to seed secrets.

use candid::Principal;

/// Answers a call to the management canister, or `None` when the host does not
/// implement `method` (the caller then gets "destination invalid").
pub(crate) fn call(callee: &[u8], method: &str, _arg: &[u8]) -> Option<Result<Vec<u8>, String>> {
    if callee != Principal::management_canister().as_slice() {
        return None;
    }
    match method {
        "raw_rand" => {
            let mut bytes = [0u8; 32];
            Some(
                getrandom::fill(&mut bytes)
                    .map_err(|e| format!("raw_rand: no randomness available: {e}"))
                    .map(|_| candid::encode_one(serde_bytes::ByteBuf::from(bytes.to_vec())).expect("a blob encodes")),
            )
        }
        _ => None,
    }
}
