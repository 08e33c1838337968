//! Counting like the IC: Wasm operators by the replica's weights, system API calls by
//! overhead plus bytes, 1,000 per newly dirtied stable page, and the IC's per-message
//! limits (replicated queries, dirtied/accessed stable pages, compilation at install).
//! Each test compares two runs that differ in one thing, so it fails under plain fuel
//! counting (every operator 1, system calls free).

mod common;

use common::*;
use ic_host::metering::{self, PageLimits};
use ic_host::{Host, Limit};

/// `copy`: copies its whole argument to the heap, writes it to stable memory at 0, and
/// replies with it. `twice`: the same, writing it twice to the same place.
/// `loop_add`/`loop_div`: a loop of `arg` iterations around an `i64.add` / `i64.div_u`.
/// `grow`/`size`: `memory.grow 0` / `memory.size`. `fill`: `memory.fill` of `arg` bytes.
/// `read`: reads `arg` bytes of stable memory. `query q`: the loop as a query.
fn test_canister() -> Vec<u8> {
    canister(
        r#"
        (func (export "canister_init") (drop (call $stable_grow (i64.const 4))))
        (func $copy (param $times i32) (local $n i32)
          (local.set $n (call $arg_size))
          (call $arg_copy (i32.const 0) (i32.const 0) (local.get $n))
          (loop $l
            (call $stable_write (i64.const 0) (i64.const 0) (i64.extend_i32_u (local.get $n)))
            (local.set $times (i32.sub (local.get $times) (i32.const 1)))
            (br_if $l (local.get $times)))
          (call $reply_bytes (i32.const 0) (local.get $n)))
        (func (export "canister_update copy") (call $copy (i32.const 1)))
        (func (export "canister_update twice") (call $copy (i32.const 2)))
        (func $loop (param $div i32) (local $i i64) (local $acc i64)
          (local.set $i (call $arg_i64))
          (local.set $acc (i64.const 1000000))
          (block $done
            (loop $l
              (br_if $done (i64.eqz (local.get $i)))
              (if (local.get $div)
                (then (local.set $acc (i64.div_u (local.get $acc) (i64.const 3))))
                (else (local.set $acc (i64.add (local.get $acc) (i64.const 3)))))
              (local.set $i (i64.sub (local.get $i) (i64.const 1)))
              (br $l)))
          (call $reply_i64 (local.get $acc)))
        (func (export "canister_update loop_add") (call $loop (i32.const 0)))
        (func (export "canister_update loop_div") (call $loop (i32.const 1)))
        (func (export "canister_query q") (call $loop (i32.const 0)))
        (func (export "canister_update grow") (drop (memory.grow (i32.const 0))) (call $reply_i64 (i64.const 0)))
        (func (export "canister_update size") (drop (memory.size)) (call $reply_i64 (i64.const 0)))
        (func (export "canister_update fill")
          (memory.fill (i32.const 8192) (i32.const 7) (i32.wrap_i64 (call $arg_i64)))
          (call $reply_i64 (i64.const 0)))
        (func (export "canister_update read")
          (call $stable_read (i64.const 8192) (i64.const 0) (call $arg_i64))
          (call $reply_i64 (i64.const 0)))
        "#,
    )
}

fn host() -> Host {
    Host::new(&test_canister(), &[]).unwrap()
}

fn instructions(host: &mut Host, method: &str, arg: &[u8]) -> u64 {
    let r = host.update(user(), method, arg);
    assert!(r.reply.is_ok(), "{method}: {:?}", r.reply);
    r.instructions
}

#[test]
fn operators_weigh_what_they_weigh_on_the_ic() {
    let mut host = host();
    // i64.div_u weighs 10, i64.add 1: 9 more per iteration, the rest is the same code.
    let n = 1_000u64;
    let add = instructions(&mut host, "loop_add", &i64_arg(n as i64));
    let div = instructions(&mut host, "loop_div", &i64_arg(n as i64));
    assert_eq!(div - add, 9 * n, "add {add}, div {div}");
    // One more iteration: br_if 2, if 2, br 2, and 11 operators of weight 1 (local.get x4,
    // i64.eqz, i64.const x2, i64.add, i64.sub, local.set x2) = 17; `block`/`loop`/`end` 0.
    let add1 = instructions(&mut host, "loop_add", &i64_arg(n as i64 + 1));
    assert_eq!(add1 - add, 17);
    // memory.grow weighs 300 (255 in wasmtime's table plus 45 inserted nops) and has an
    // operand (i32.const, 1); memory.size weighs 20.
    let grow = instructions(&mut host, "grow", &[]);
    let size = instructions(&mut host, "size", &[]);
    assert_eq!(grow - size, 300 + 1 - 20);
    // memory.fill: 100 plus its length.
    let fill0 = instructions(&mut host, "fill", &i64_arg(0));
    let fill = instructions(&mut host, "fill", &i64_arg(5_000));
    assert_eq!(fill - fill0, 5_000);
}

#[test]
fn system_calls_cost_overhead_plus_bytes_and_dirtied_pages_1000() {
    let mut host = host();
    let arg = vec![7u8; 10_000];
    let r = host.update(user(), "copy", &arg);
    assert_eq!(r.reply.as_deref(), Ok(&arg[..]));
    let n = arg.len() as u64;
    let pages = n.div_ceil(4096);
    assert_eq!(r.stable_pages_dirtied, pages);
    let expected = metering::cost("msg_arg_data_size", 0)
        + metering::cost("msg_arg_data_copy", n)
        + metering::cost("stable64_write", n)
        + pages * metering::DIRTY_PAGE_OVERHEAD
        + metering::cost("msg_reply_data_append", n)
        + metering::cost("msg_reply", 0);
    assert_eq!(r.system_api_instructions, expected);
    assert!(r.instructions > expected);
    // The reply's bytes cost 50 each (they leave the canister), the argument's 1.
    assert_eq!(metering::cost("msg_reply_data_append", n), 500 + 50 * n);

    // Writing the same pages again in the same message does not dirty them again;
    // the next message does.
    let twice = host.update(user(), "twice", &arg);
    assert_eq!(twice.system_api_instructions, expected + metering::cost("stable64_write", n));
}

#[test]
fn a_system_call_can_exhaust_the_instruction_limit() {
    let mut host = host();
    host.set_instruction_limit(Limit::Update, 5_000);
    let r = host.update(user(), "copy", &vec![1u8; 10_000]);
    let err = r.reply.unwrap_err();
    assert!(err.message.contains("instruction limit"), "{err}");
    assert!(r.instructions <= 5_000);
}

#[test]
fn replicated_queries_run_under_the_query_limit() {
    let mut host = host();
    let arg = i64_arg(10_000);
    let cost = host.query(user(), "q", &arg).instructions;
    assert!(host.update(user(), "q", &arg).reply.is_ok());
    host.set_instruction_limit(Limit::Query, cost / 2);
    assert!(host.update(user(), "loop_add", &arg).reply.is_ok(), "updates keep their own limit");
    let r = host.update(user(), "q", &arg);
    let err = r.reply.unwrap_err();
    assert!(err.message.contains("instruction limit"), "{err}");
    assert_eq!(instruction_limit_defaults(), (40_000_000_000, 5_000_000_000, 300_000_000_000));
}

fn instruction_limit_defaults() -> (u64, u64, u64) {
    let h = host();
    (h.instruction_limit(Limit::Update), h.instruction_limit(Limit::Query), h.instruction_limit(Limit::Install))
}

#[test]
fn stable_pages_dirtied_and_accessed_per_message_are_limited() {
    let mut host = host();
    assert_eq!(host.stable_page_limits().0, metering::DIRTY_PAGE_LIMITS);
    assert_eq!(metering::DIRTY_PAGE_LIMITS.message, 2 * 1024 * 1024 * 1024 / 4096);
    let three = PageLimits { message: 3, upgrade: 3, query: 3 };
    host.set_stable_page_limits(three, PageLimits { message: 4, upgrade: 4, query: 4 });
    // Three pages may be dirtied, not four.
    assert!(host.update(user(), "copy", &vec![1u8; 3 * 4096]).reply.is_ok());
    let r = host.update(user(), "copy", &vec![1u8; 3 * 4096 + 1]);
    let err = r.reply.unwrap_err();
    assert!(err.message.contains("modified pages in the stable memory"), "{err}");
    assert_eq!(host.read_stable(3 * 4096, 1), Some(vec![0]), "the failed message changed nothing");
    // Reads count against the accessed limit: 4 pages, not 5.
    assert!(host.update(user(), "read", &i64_arg(4 * 4096)).reply.is_ok());
    let err = host.update(user(), "read", &i64_arg(4 * 4096 + 1)).reply.unwrap_err();
    assert!(err.message.contains("accessed pages in the stable memory"), "{err}");
}

#[test]
fn compilation_counts_against_install_and_upgrade() {
    let wasm = test_canister();
    let compile = metering::compilation_cost(&wasm).unwrap();
    let count = metering::instrumented_instruction_count(&wasm).unwrap();
    assert_eq!(compile, count * metering::COMPILE_COST_PER_INSTRUCTION);
    // More than the module's own operators: the IC's metering code is compiled too.
    assert!(count > 150, "{count}");

    let mut host = host();
    let cost = host.upgrade(&wasm, &[]).unwrap();
    assert_eq!(cost.compilation, compile);
    assert_eq!(cost.instructions, cost.pre_upgrade + compile + cost.post_upgrade);

    host.set_instruction_limit(Limit::Install, compile);
    let err = host.upgrade(&wasm, &[]).unwrap_err();
    assert!(err.message.contains("compiling the module"), "{err}");
    host.set_instruction_limit(Limit::Install, compile + 1_000_000);
    assert!(host.upgrade(&wasm, &[]).is_ok());
}
