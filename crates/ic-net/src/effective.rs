//! The effective canister id rules of the interface specification: a call to a
//! canister names that canister in the URL; a call to the management canister names
//! the canister its argument acts on (`canister_id`, or `target_canister` for
//! `install_chunked_code`), except `provisional_create_canister_with_cycles`, which
//! any id of the subnet's range may carry.

use candid::types::value::{IDLValue, IDLField};
use candid::types::Label;
use candid::{IDLArgs, Principal};

/// Why a request's effective canister id does not fit it (HTTP 400).
pub fn check(canister: Principal, method: &str, arg: &[u8], effective: Principal, update: bool) -> Result<(), String> {
    if canister != Principal::management_canister() {
        if canister != effective {
            return Err(format!("Specified CanisterId {canister} does not match effective canister id in URL {effective}"));
        }
        return Ok(());
    }
    if update && method == "provisional_create_canister_with_cycles" {
        return Ok(());
    }
    let field = if update && method == "install_chunked_code" { "target_canister" } else { "canister_id" };
    match principal_field(arg, field) {
        Some(p) if p == effective => Ok(()),
        Some(p) => Err(format!(
            "the effective canister id in the URL ({effective}) must be the `{field}` of the argument ({p}) for management canister method {method}"
        )),
        None => Err(format!(
            "management canister method {method} cannot be called this way: its argument has no `{field}` record field"
        )),
    }
}

/// The principal in record field `name` of the first Candid argument.
fn principal_field(arg: &[u8], name: &str) -> Option<Principal> {
    let args = IDLArgs::from_bytes(arg).ok()?;
    let IDLValue::Record(fields) = args.args.first()? else { return None };
    let id = Label::Named(name.to_string()).get_id();
    fields.iter().find_map(|IDLField { id: l, val }| match (l.get_id() == id, val) {
        (true, IDLValue::Principal(p)) => Some(*p),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ic_host::management_types as mgmt;

    #[test]
    fn management_calls_take_the_canister_they_act_on() {
        let mgmt_id = Principal::management_canister();
        let target = ic_host::canister_id_of(3);
        let other = ic_host::canister_id_of(4);
        let status = candid::encode_one(mgmt::CanisterIdRecord { canister_id: target }).unwrap();
        assert!(check(mgmt_id, "canister_status", &status, target, true).is_ok());
        assert!(check(mgmt_id, "canister_status", &status, other, true).unwrap_err().contains("must be the `canister_id`"));
        let create = candid::encode_one(mgmt::ProvisionalCreateCanisterWithCyclesArgs::default()).unwrap();
        assert!(check(mgmt_id, "provisional_create_canister_with_cycles", &create, other, true).is_ok());
        assert!(check(mgmt_id, "raw_rand", &candid::encode_args(()).unwrap(), other, true).unwrap_err().contains("cannot be called"));
        assert!(check(target, "greet", &[], target, true).is_ok());
        assert!(check(target, "greet", &[], other, false).unwrap_err().contains("does not match"));
    }
}
