//! System API metering: off by default; when on, copy-type calls cost their overhead
//! plus one instruction per byte, and can exhaust the message's instructions.

mod common;

use common::*;
use ic_host::{metering, Host};

/// `copy`: copies its whole argument to the heap, writes it to stable memory, and
/// replies with it.
fn copy_canister() -> Vec<u8> {
    canister(
        r#"
        (func (export "canister_init") (drop (call $stable_grow (i64.const 1))))
        (func (export "canister_update copy") (local $n i32)
          (local.set $n (call $arg_size))
          (call $arg_copy (i32.const 0) (i32.const 0) (local.get $n))
          (call $stable_write (i64.const 0) (i64.const 0) (i64.extend_i32_u (local.get $n)))
          (call $reply_bytes (i32.const 0) (local.get $n)))
        "#,
    )
}

#[test]
fn copies_are_charged_per_byte_when_metering_is_on() {
    let mut host = Host::new(&copy_canister(), &[]).unwrap();
    assert!(!host.system_api_metering());
    let arg = vec![7u8; 10_000];
    let off = host.update(user(), "copy", &arg);
    assert_eq!(off.reply.as_deref(), Ok(&arg[..]));
    assert_eq!(off.system_api_instructions, 0);

    host.set_system_api_metering(true);
    let on = host.update(user(), "copy", &arg);
    assert_eq!(on.reply.as_deref(), Ok(&arg[..]));
    let n = arg.len() as u64;
    let expected = metering::cost("msg_arg_data_size", 0)
        + metering::cost("msg_arg_data_copy", n)
        + metering::cost("stable64_write", n)
        + metering::cost("msg_reply_data_append", n)
        + metering::cost("msg_reply", 0);
    assert_eq!(on.system_api_instructions, expected);
    assert_eq!(on.instructions, off.instructions + expected);
}

#[test]
fn a_system_call_can_exhaust_the_instruction_limit() {
    let mut host = Host::new(&copy_canister(), &[]).unwrap();
    host.set_system_api_metering(true);
    host.set_instruction_limit(ic_host::Limit::Update, 5_000);
    let r = host.update(user(), "copy", &vec![1u8; 10_000]);
    let err = r.reply.unwrap_err();
    assert!(err.message.contains("instruction limit"), "{err}");
    assert!(r.instructions <= 5_000);
}
