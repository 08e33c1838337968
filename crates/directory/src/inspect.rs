//! `canister_inspect_message`: ingress that can never succeed and would cost the
//! directory to refuse is turned away before it executes. The one argument of any size
//! is `admin_set_storage_wasm`'s Wasm (0.4–1.2 MB): from a caller who is not a
//! controller, an argument larger than any valid user call is refused here, so nobody
//! can make the directory decode megabytes again and again just to answer
//! `Unauthorized`. `capsules_create` must carry its Candid. Everything else runs and
//! gets its typed answer (an anonymous caller's `Unauthorized`, a too-long name's
//! `InvalidArgument`).
//!
//! A cycle saving, not a security boundary: the IC does not run it for calls from other
//! canisters, a replica may skip it, and every endpoint checks its caller again.

use candid::{DecoderConfig, Principal};

use crate::api::CapsuleCreateArgs;
use crate::MAX_NAME_LEN;

/// Largest argument taken from a caller who is not a controller: 16 × the longest
/// capsule name, so a name that is merely too long still gets its typed error.
pub const MAX_USER_ARG_BYTES: usize = 16 * MAX_NAME_LEN;

/// The decision for an update call of `method` by `caller`.
pub fn admits(method: &str, caller: Principal, arg: &[u8], is_controller: impl FnOnce(&Principal) -> bool) -> bool {
    if arg.len() > MAX_USER_ARG_BYTES && (caller == Principal::anonymous() || !is_controller(&caller)) {
        return false;
    }
    if method == "capsules_create" {
        let mut cfg = DecoderConfig::new();
        cfg.set_skipping_quota(1_000);
        let arg: &[u8] = if arg.is_empty() { b"DIDL\x00\x00" } else { arg };
        return candid::utils::decode_args_with_config::<(CapsuleCreateArgs,)>(arg, &cfg).is_ok();
    }
    true
}

#[ic_cdk::inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    let arg = ic_cdk::api::msg_arg_data();
    if admits(&method, ic_cdk::api::msg_caller(), &arg, ic_cdk::api::is_controller) {
        ic_cdk::api::accept_message();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Principal {
        Principal::from_slice(&[1, 2, 3])
    }

    fn create_arg(name: &str) -> Vec<u8> {
        candid::encode_one(CapsuleCreateArgs { name: name.into(), invite: None }).unwrap()
    }

    #[test]
    fn a_large_argument_only_from_a_controller() {
        let wasm = candid::encode_one(serde_bytes::ByteBuf::from(vec![0u8; 1 << 20])).unwrap();
        assert!(!admits("admin_set_storage_wasm", user(), &wasm, |_| false));
        assert!(!admits("admin_set_storage_wasm", Principal::anonymous(), &wasm, |_| true), "anonymous is no controller");
        assert!(admits("admin_set_storage_wasm", user(), &wasm, |p| *p == user()));
        // small admin calls from anyone run and get their typed Unauthorized
        assert!(admits("admin_refresh", user(), &candid::encode_args(()).unwrap(), |_| false));
    }

    #[test]
    fn capsules_create_carries_its_candid_and_a_name_of_sane_size() {
        assert!(admits("capsules_create", user(), &create_arg("family"), |_| false));
        assert!(admits("capsules_create", Principal::anonymous(), &create_arg("a"), |_| false), "typed Unauthorized");
        assert!(admits("capsules_create", user(), &create_arg(&"n".repeat(MAX_NAME_LEN + 1)), |_| false), "typed InvalidArgument");
        assert!(!admits("capsules_create", user(), &create_arg(&"n".repeat(MAX_USER_ARG_BYTES)), |_| false));
        assert!(!admits("capsules_create", user(), b"not candid", |_| false));
        assert!(!admits("capsules_create", user(), &[], |_| false));
        assert!(!admits("capsules_create", user(), &candid::encode_one(7u64).unwrap(), |_| false));
    }

    #[test]
    fn capsules_create_with_an_invite_and_as_older_clients_send_it() {
        let with = candid::encode_one(CapsuleCreateArgs { name: "family".into(), invite: Some("ab".repeat(16)) }).unwrap();
        assert!(admits("capsules_create", user(), &with, |_| false));
        // A client from before `invite` sends `record { name }`: still its Candid.
        #[derive(candid::CandidType)]
        struct Old {
            name: String,
        }
        let old = candid::encode_one(Old { name: "family".into() }).unwrap();
        assert!(admits("capsules_create", user(), &old, |_| false));
        let decoded: CapsuleCreateArgs = candid::decode_one(&old).unwrap();
        assert_eq!(decoded.invite, None);
    }

    #[test]
    fn other_methods_are_left_to_the_endpoint_or_the_system() {
        assert!(admits("capsules_locate", user(), &[], |_| false));
        assert!(admits("no_such_method", user(), &[], |_| false));
    }
}
