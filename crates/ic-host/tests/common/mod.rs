//! Shared helpers: purpose-built canisters written in WAT.
#![allow(dead_code)]

use ic_host::management_types::{CanisterInstallMode, CanisterSettings, InstallCodeArgs, ProvisionalCreateCanisterWithCyclesArgs};
use ic_host::{Host, Principal, DEFAULT_CONTROLLER};

/// Imports + memory + small helpers shared by every test canister. Memory and
/// table are deliberately NOT exported: the host must find them itself.
pub const PRELUDE: &str = r#"
  (import "ic0" "msg_arg_data_size" (func $arg_size (result i32)))
  (import "ic0" "msg_arg_data_copy" (func $arg_copy (param i32 i32 i32)))
  (import "ic0" "msg_caller_size" (func $caller_size (result i32)))
  (import "ic0" "msg_caller_copy" (func $caller_copy (param i32 i32 i32)))
  (import "ic0" "msg_reply_data_append" (func $append (param i32 i32)))
  (import "ic0" "msg_reply" (func $reply))
  (import "ic0" "msg_reject" (func $reject (param i32 i32)))
  (import "ic0" "msg_reject_code" (func $reject_code (result i32)))
  (import "ic0" "msg_reject_msg_size" (func $reject_msg_size (result i32)))
  (import "ic0" "msg_reject_msg_copy" (func $reject_msg_copy (param i32 i32 i32)))
  (import "ic0" "canister_self_size" (func $self_size (result i32)))
  (import "ic0" "canister_self_copy" (func $self_copy (param i32 i32 i32)))
  (import "ic0" "stable64_size" (func $stable_size (result i64)))
  (import "ic0" "stable64_grow" (func $stable_grow (param i64) (result i64)))
  (import "ic0" "stable64_write" (func $stable_write (param i64 i64 i64)))
  (import "ic0" "stable64_read" (func $stable_read (param i64 i64 i64)))
  (import "ic0" "time" (func $time (result i64)))
  (import "ic0" "global_timer_set" (func $timer_set (param i64) (result i64)))
  (import "ic0" "performance_counter" (func $perf (param i32) (result i64)))
  (import "ic0" "is_controller" (func $is_controller (param i32 i32) (result i32)))
  (import "ic0" "debug_print" (func $print (param i32 i32)))
  (import "ic0" "trap" (func $trap (param i32 i32)))
  (import "ic0" "call_new" (func $call_new (param i32 i32 i32 i32 i32 i32 i32 i32)))
  (import "ic0" "call_on_cleanup" (func $call_on_cleanup (param i32 i32)))
  (import "ic0" "call_data_append" (func $call_data_append (param i32 i32)))
  (import "ic0" "call_perform" (func $call_perform (result i32)))
  (import "ic0" "call_cycles_add128" (func $call_cycles_add (param i64 i64)))
  (import "ic0" "msg_cycles_accept128" (func $cycles_accept (param i64 i64 i32)))
  (import "ic0" "msg_cycles_refunded128" (func $cycles_refunded (param i32)))
  (import "ic0" "msg_cycles_available128" (func $cycles_available (param i32)))
  (import "ic0" "canister_status" (func $canister_status (result i32)))
  ;; A real IC API ic-host does not implement: must link, trap when called.
  (import "ic0" "mint_cycles128" (func $unsupported (param i64 i64 i32)))
  (memory $memory 1)
  (func $reply_bytes (param $p i32) (param $n i32)
    (call $append (local.get $p) (local.get $n))
    (call $reply))
  (func $reply_i64 (param $v i64)
    (i64.store (i32.const 4000) (local.get $v))
    (call $reply_bytes (i32.const 4000) (i32.const 8)))
  (func $arg_i64 (result i64)
    (call $arg_copy (i32.const 4008) (i32.const 0) (i32.const 8))
    (i64.load (i32.const 4008)))
"#;

/// Parses a canister module from `body` (appended to [`PRELUDE`]).
pub fn canister(body: &str) -> Vec<u8> {
    wat::parse_str(format!("(module {PRELUDE} {body})")).expect("test canister WAT must parse")
}

pub fn user() -> Principal {
    Principal::from_slice(&[0x11, 0x22, 0x33, 0x01])
}

pub fn i64_arg(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

pub fn as_i64(bytes: &[u8]) -> i64 {
    i64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
}

/// Little-endian i64s of a reply.
pub fn i64s(bytes: &[u8]) -> Vec<i64> {
    bytes.chunks_exact(8).map(as_i64).collect()
}

pub fn ok(host: &mut Host, method: &str, arg: &[u8]) -> Vec<u8> {
    let r = host.update(user(), method, arg);
    match r.reply {
        Ok(b) => b,
        Err(e) => panic!("update {method} failed: {e}"),
    }
}

pub fn q(host: &mut Host, method: &str, arg: &[u8]) -> Vec<u8> {
    let r = host.query(user(), method, arg);
    match r.reply {
        Ok(b) => b,
        Err(e) => panic!("query {method} failed: {e}"),
    }
}

/// Creates a canister through the management canister (controller: [`DEFAULT_CONTROLLER`])
/// with `cycles`, and installs `wasm` in it.
pub fn add_canister(host: &mut Host, wasm: &[u8], cycles: u128) -> Principal {
    let args = ProvisionalCreateCanisterWithCyclesArgs {
        amount: Some(cycles.into()),
        settings: Some(CanisterSettings { controllers: Some(vec![DEFAULT_CONTROLLER]), ..Default::default() }),
        ..Default::default()
    };
    let created: ic_host::management_types::CanisterIdRecord =
        host.management(DEFAULT_CONTROLLER, "provisional_create_canister_with_cycles", &args).expect("create canister");
    let install = InstallCodeArgs {
        mode: CanisterInstallMode::Install,
        canister_id: created.canister_id,
        wasm_module: wasm.to_vec(),
        arg: Vec::new(),
        sender_canister_version: None,
    };
    let () = host.management(DEFAULT_CONTROLLER, "install_code", &install).expect("install code");
    created.canister_id
}
