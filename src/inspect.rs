//! `canister_inspect_message`: large ingress that can never succeed is turned away
//! before the canister executes (and pays for) it: chunks from callers who may not put
//! into that session (anonymous, not its creator, or no longer a writer: the case that
//! costs, 2 MiB a message), arguments that are not the method's Candid, and arguments
//! larger than any valid one. Everything else runs and gets its typed answer (an
//! expired session's `Expired`, say, which a client needs to restart).
//!
//! A cycle saving, not a security boundary: the IC does not run it for calls from
//! other canisters, a replica may skip it, and every endpoint checks everything again.

use candid::utils::ArgumentDecoder;
use candid::{DecoderConfig, Principal};
use serde_bytes::ByteBuf;

use crate::api::{AssetInput, AssetKind, BeginArgs, CapsuleCreateArgs, ConfigUpdate, DirectoryCapsuleArgs, MemoryCreateArgs, MemoryMeta, Role};
use crate::domain::records::{MAX_CHUNK_SIZE, MAX_INLINE_BYTES};

/// Every update method; `arg_decodes` knows the argument types of each.
pub const UPDATE_METHODS: [&str; 19] = [
    "admin_gc",
    "admin_set_config",
    "blobs_delete",
    "capsules_accept",
    "capsules_create",
    "directory_capsules_create",
    "capsules_remove_member",
    "capsules_rotate_link_key",
    "capsules_set_member",
    "memories_add_asset",
    "memories_create",
    "memories_delete",
    "memories_remove_asset",
    "memories_set_public",
    "memories_update",
    "uploads_abort",
    "uploads_begin",
    "uploads_finish",
    "uploads_put_chunk",
];

/// Arguments larger than this are refused for every method but `uploads_put_chunk`
/// (the largest valid one, a memory with seven 32 KiB inline assets, is ~240 KB).
pub const MAX_OTHER_ARG_BYTES: usize = 16 * MAX_INLINE_BYTES;

/// Decodes like ic-cdk's endpoint macros do.
fn decode<T: for<'a> ArgumentDecoder<'a>>(arg: &[u8]) -> Option<T> {
    let arg: &[u8] = if arg.is_empty() { b"DIDL\x00\x00" } else { arg };
    let mut cfg = DecoderConfig::new();
    cfg.set_skipping_quota(10_000);
    candid::utils::decode_args_with_config(arg, &cfg).ok()
}

/// Whether `arg` is valid Candid for `method`'s arguments (`None`: not an update).
pub fn arg_decodes(method: &str, arg: &[u8]) -> Option<bool> {
    let ok = match method {
        "admin_gc" => decode::<()>(arg).is_some(),
        "admin_set_config" => decode::<(ConfigUpdate,)>(arg).is_some(),
        "blobs_delete" | "capsules_accept" | "capsules_rotate_link_key" | "memories_delete" | "uploads_abort" => decode::<(u64,)>(arg).is_some(),
        "capsules_create" => decode::<(CapsuleCreateArgs,)>(arg).is_some(),
        "directory_capsules_create" => decode::<(DirectoryCapsuleArgs,)>(arg).is_some(),
        "capsules_remove_member" => decode::<(u64, Principal)>(arg).is_some(),
        "capsules_set_member" => decode::<(u64, Principal, Role)>(arg).is_some(),
        "memories_add_asset" => decode::<(u64, AssetInput)>(arg).is_some(),
        "memories_create" => decode::<(MemoryCreateArgs,)>(arg).is_some(),
        "memories_remove_asset" => decode::<(u64, AssetKind)>(arg).is_some(),
        "memories_set_public" => decode::<(u64, bool)>(arg).is_some(),
        "memories_update" => decode::<(u64, MemoryMeta)>(arg).is_some(),
        "uploads_begin" => decode::<(BeginArgs,)>(arg).is_some(),
        "uploads_finish" => decode::<(u64, ByteBuf, u64)>(arg).is_some(),
        "uploads_put_chunk" => decode::<(u64, u32, ByteBuf)>(arg).is_some(),
        _ => return None,
    };
    Some(ok)
}

/// The decision, given whether the caller may put chunks into a session.
pub fn admits(method: &str, caller: Principal, arg: &[u8], may_put: impl FnOnce(u64) -> bool) -> bool {
    if !UPDATE_METHODS.contains(&method) {
        return true; // queries called as updates, unknown methods: the system answers
    }
    if method == "uploads_put_chunk" {
        return caller != Principal::anonymous()
            && match decode::<(u64, u32, ByteBuf)>(arg) {
                Some((session_id, _, bytes)) => bytes.len() <= MAX_CHUNK_SIZE as usize && may_put(session_id),
                None => false,
            };
    }
    arg.len() <= MAX_OTHER_ARG_BYTES && arg_decodes(method, arg) == Some(true)
}

#[ic_cdk::inspect_message]
fn inspect_message() {
    let method = ic_cdk::api::msg_method_name();
    let ctx = crate::ctx();
    let arg = ic_cdk::api::msg_arg_data();
    let may_put = |session_id| crate::with_state(|s| s.may_put_chunks(&ctx, session_id));
    if admits(&method, ctx.caller, &arg, may_put) {
        ic_cdk::api::accept_message();
    }
}
