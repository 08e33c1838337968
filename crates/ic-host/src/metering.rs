//! Approximate IC charges for system API calls (off by default).
//!
//! wasmtime fuel counts the canister's own Wasm instructions only; a system call is
//! one instruction however many bytes it copies. The IC charges a fixed overhead per
//! call plus, for calls that copy data between the canister and the system, one
//! instruction per byte. With [`crate::Host::set_system_api_metering`] on, the host
//! charges the same, from the table below, against the message's instruction budget
//! (a message can run out of instructions in a system call, as on the IC).
//!
//! Source: the overheads of the IC replica's "new" metering
//! (`rs/embedders/src/wasmtime_embedder/system_api_complexity.rs`, `overhead::new`
//! and `overhead_native::new`: 500 for most calls, 20 for the stable memory
//! calls), and one instruction per byte copied (the variable part the same module
//! describes). Approximations: calls not listed cost nothing; the per-byte
//! dirty-page overhead of system subnets is not modelled; Wasm `memory.copy` and
//! `memory.fill` inside the canister still cost one instruction each.

/// Instructions per byte copied by a copy-type call.
pub const PER_BYTE: u64 = 1;

/// Fixed overhead of a call to `ic0.<api>` (0 for calls not modelled).
pub fn overhead(api: &str) -> u64 {
    match api {
        "stable_read" | "stable_write" | "stable64_read" | "stable64_write" | "stable_size" | "stable64_size" => 20,
        "stable_grow" | "stable64_grow" => 100,
        "performance_counter" | "debug_print" => 200,
        "is_controller" => 1_000,
        "call_new" => 1_500,
        "call_perform" => 5_000,
        "msg_arg_data_size"
        | "msg_arg_data_copy"
        | "msg_caller_size"
        | "msg_caller_copy"
        | "msg_method_name_size"
        | "msg_method_name_copy"
        | "msg_reply_data_append"
        | "msg_reply"
        | "msg_reject"
        | "msg_reject_code"
        | "msg_reject_msg_size"
        | "msg_reject_msg_copy"
        | "accept_message"
        | "canister_self_size"
        | "canister_self_copy"
        | "canister_cycle_balance128"
        | "canister_status"
        | "canister_version"
        | "certified_data_set"
        | "data_certificate_present"
        | "data_certificate_size"
        | "data_certificate_copy"
        | "global_timer_set"
        | "time"
        | "trap"
        | "call_data_append"
        | "call_on_cleanup"
        | "call_cycles_add128"
        | "msg_cycles_available128"
        | "msg_cycles_refunded128"
        | "msg_cycles_accept128" => 500,
        _ => 0,
    }
}

/// Instructions charged for one call to `ic0.<api>` that copies `bytes` bytes.
pub fn cost(api: &str, bytes: u64) -> u64 {
    overhead(api).saturating_add(bytes.saturating_mul(PER_BYTE))
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_calls_cost_overhead_plus_bytes() {
        assert_eq!(super::cost("msg_arg_data_copy", 1_000), 1_500);
        assert_eq!(super::cost("stable64_write", 4_096), 4_116);
        assert_eq!(super::cost("not_a_call", 10), 10);
    }
}
