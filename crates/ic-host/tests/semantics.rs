//! IC message semantics, each checked with a purpose-built WAT canister.

mod common;

use std::time::Duration;

use common::*;
use ic_host::{reject_code, Host, Limit, MessageKind, Principal, DEFAULT_CONTROLLER, MAX_INGRESS_ARG};

// ---------------------------------------------------------------------------
// 1 + 2 + 8: heap / global / stable state, rollback, query discard, persistence
// ---------------------------------------------------------------------------

/// Mutations shared by `set_then_trap` and the `mutate` query: heap, a mutable
/// global, stable growth + writes, and a Wasm memory.grow.
const MUTATE_ALL: &str = r#"
    (i64.store (i32.const 100) (i64.const 999))
    (global.set $g (i64.const 999))
    (drop (call $stable_grow (i64.const 3)))
    (call $stable_write (i64.const 0) (i64.const 100) (i64.const 8))
    (call $stable_write (i64.const 131072) (i64.const 100) (i64.const 8))
    (drop (memory.grow (i32.const 1)))
    (i64.store (i32.const 70000) (i64.const 5))
"#;

fn state_canister() -> Vec<u8> {
    canister(&format!(
        r#"
  (global $g (mut i64) (i64.const 0))
  (data (i32.const 3000) "boom")
  (func (export "canister_update set")
    (i64.store (i32.const 100) (call $arg_i64))
    (global.set $g (i64.load (i32.const 100)))
    (if (i64.eqz (call $stable_size)) (then (drop (call $stable_grow (i64.const 1)))))
    (call $stable_write (i64.const 0) (i64.const 100) (i64.const 8))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  (func (export "canister_update set_then_trap")
    {MUTATE_ALL}
    (call $trap (i32.const 3000) (i32.const 4)))
  (func (export "canister_update set_then_unreachable")
    {MUTATE_ALL}
    (unreachable))
  (func (export "canister_query mutate")
    {MUTATE_ALL}
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  (func (export "canister_post_upgrade")
    (i64.store (i32.const 110) (i64.const 1)))
  ;; [heap, global, stable[0..8] (-1 if empty), stable pages, heap[70000] (0 if 1 page), post_upgrade ran]
  (func (export "canister_query read")
    (i64.store (i32.const 200) (i64.load (i32.const 100)))
    (i64.store (i32.const 208) (global.get $g))
    (i64.store (i32.const 216) (i64.const -1))
    (if (i64.ne (call $stable_size) (i64.const 0))
      (then (call $stable_read (i64.const 216) (i64.const 0) (i64.const 8))))
    (i64.store (i32.const 224) (call $stable_size))
    (i64.store (i32.const 232) (i64.const 0))
    (if (i32.gt_u (memory.size) (i32.const 1))
      (then (i64.store (i32.const 232) (i64.load (i32.const 70000)))))
    (i64.store (i32.const 240) (i64.load (i32.const 110)))
    (call $reply_bytes (i32.const 200) (i32.const 48)))
"#
    ))
}

fn read_state(host: &mut Host) -> Vec<i64> {
    i64s(&q(host, "read", &[]))
}

#[test]
fn trapping_update_rolls_back_heap_globals_and_stable() {
    let mut host = Host::new(&state_canister(), &[]).unwrap();
    assert_eq!(read_state(&mut host), vec![0, 0, -1, 0, 0, 0]);
    ok(&mut host, "set", &i64_arg(7));
    let before = vec![7, 7, 7, 1, 0, 0];
    assert_eq!(read_state(&mut host), before);
    let stable_before = host.stable_size_bytes();
    let memory_before = host.heap_size_bytes();

    for method in ["set_then_trap", "set_then_unreachable"] {
        let r = host.update(user(), method, &[]);
        let err = r.reply.expect_err("must trap");
        assert_eq!(err.code, reject_code::CANISTER_ERROR, "{err}");
        assert!(r.stable_bytes_written == 16, "writes are counted even when rolled back");
        assert_eq!(read_state(&mut host), before, "{method}: state must be unchanged");
        assert_eq!(host.stable_size_bytes(), stable_before);
        assert_eq!(host.heap_size_bytes(), memory_before, "{method}: the Wasm memory is its old size again");
    }
    let err = host.update(user(), "set_then_trap", &[]).reply.unwrap_err();
    assert!(err.message.contains("Canister called `ic0.trap` with message: 'boom'"), "{err}");
    assert!(host.logs().iter().any(|l| l.contains("boom")));
    // The canister keeps working normally after traps (stack pointer etc. restored).
    ok(&mut host, "set", &i64_arg(8));
    assert_eq!(read_state(&mut host), vec![8, 8, 8, 1, 0, 0]);
}

#[test]
fn queries_never_commit() {
    let mut host = Host::new(&state_canister(), &[]).unwrap();
    ok(&mut host, "set", &i64_arg(7));
    let before = read_state(&mut host);
    let memory_before = host.heap_size_bytes();
    let r = host.query(user(), "mutate", &[]);
    assert!(r.reply.is_ok());
    assert_eq!(r.stable_bytes_written, 16);
    assert_eq!(read_state(&mut host), before);
    assert_eq!(host.heap_size_bytes(), memory_before, "the query grew memory: the instance is its old size again");
    // A query method called through the update path (replicated query) doesn't commit either.
    let r = host.update(user(), "mutate", &[]);
    assert!(r.reply.is_ok(), "{:?}", r.reply);
    assert_eq!(r.kind, MessageKind::ReplicatedQuery);
    assert_eq!(read_state(&mut host), before);
    // An update after the queries sees the committed state only.
    ok(&mut host, "set", &i64_arg(9));
    assert_eq!(read_state(&mut host), vec![9, 9, 9, 1, 0, 0]);
}

/// `tests/fixtures/legacy-v1.state` was written by the old `save_state` (see the
/// fixtures' README) after `set 7`, a time and a controller change.
fn legacy_fixture() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/legacy-v1.state")
}

#[test]
fn legacy_state_file_is_imported() {
    let wasm = state_canister();
    let dir = tempfile::tempdir().unwrap();
    let mut in_memory = Host::load_state(&legacy_fixture(), &wasm).unwrap();
    let mut on_disk = Host::open(&dir.path().join("host")).unwrap();
    assert_eq!(on_disk.import_legacy_state(&legacy_fixture(), &wasm).unwrap(), ic_host::DEFAULT_CANISTER_ID);
    for loaded in [&mut in_memory, &mut on_disk] {
        // Heap is fresh (as after an upgrade), stable memory kept, post_upgrade ran.
        assert_eq!(read_state(loaded), vec![0, 0, 7, 1, 0, 1]);
        assert_eq!(loaded.time(), 1_800_000_000_000_000_000);
        assert_eq!(loaded.controllers(), &[user()]);
        assert_eq!(loaded.stable_size_bytes(), 65536);
    }
    // The imported canister lives on in the directory.
    drop(on_disk);
    let mut reopened = Host::open(&dir.path().join("host")).unwrap();
    assert_eq!(read_state(&mut reopened), vec![0, 0, 7, 1, 0, 1]);

    // Corruption and truncation are detected, and nothing is imported.
    let bytes = std::fs::read(legacy_fixture()).unwrap();
    let path = dir.path().join("bad.state");
    let mut flipped = bytes.clone();
    flipped[bytes.len() - 40] ^= 0xff;
    for bad in [&flipped[..], &bytes[..bytes.len() - 1]] {
        std::fs::write(&path, bad).unwrap();
        assert!(Host::load_state(&path, &wasm).is_err());
        let mut fresh = Host::in_memory();
        assert!(fresh.import_legacy_state(&path, &wasm).is_err());
        assert!(fresh.canister_ids().is_empty(), "a failed import leaves no canister behind");
    }
}

// ---------------------------------------------------------------------------
// 3: upgrades
// ---------------------------------------------------------------------------

fn upgrade_canister(version: i64, post_upgrade: &str) -> Vec<u8> {
    canister(&format!(
        r#"
  (func (export "canister_init") (drop (call $stable_grow (i64.const 1))))
  (func (export "canister_update set_heap")
    (i64.store (i32.const 100) (call $arg_i64))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  (func (export "canister_update arm_pre_trap")
    (i64.store (i32.const 300) (call $arg_i64))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  ;; saves the heap value into stable[8..16] and grows, then traps if armed
  (func (export "canister_pre_upgrade")
    (call $stable_write (i64.const 8) (i64.const 100) (i64.const 8))
    (drop (call $stable_grow (i64.const 1)))
    (if (i64.ne (i64.load (i32.const 300)) (i64.const 0)) (then (unreachable))))
  (func (export "canister_post_upgrade") {post_upgrade})
  ;; [version, heap, stable[8..16], stable pages, post_upgrade marker]
  (func (export "canister_query read")
    (i64.store (i32.const 200) (i64.const {version}))
    (i64.store (i32.const 208) (i64.load (i32.const 100)))
    (call $stable_read (i64.const 216) (i64.const 8) (i64.const 8))
    (i64.store (i32.const 224) (call $stable_size))
    (i64.store (i32.const 232) (i64.load (i32.const 120)))
    (call $reply_bytes (i32.const 200) (i32.const 40)))
"#
    ))
}

#[test]
fn upgrade_keeps_only_stable_memory_and_failures_change_nothing() {
    let v1 = upgrade_canister(1, "(i64.store (i32.const 120) (i64.const 1))");
    let v2 = upgrade_canister(2, "(i64.store (i32.const 120) (i64.const 1))");
    let v3_trapping_post = upgrade_canister(
        3,
        r#"(i64.store (i32.const 4000) (i64.const 77))
           (call $stable_write (i64.const 8) (i64.const 4000) (i64.const 8))
           (drop (call $stable_grow (i64.const 5)))
           (unreachable)"#,
    );
    let mut host = Host::new(&v1, &[]).unwrap();
    ok(&mut host, "set_heap", &i64_arg(5));
    let before = vec![1, 5, 0, 1, 0];
    assert_eq!(i64s(&q(&mut host, "read", &[])), before);

    // post_upgrade traps: old module, old heap, old stable memory (pre_upgrade's
    // stable write + growth undone).
    let err = host.upgrade(&v3_trapping_post, &[]).unwrap_err();
    assert_eq!(err.code, reject_code::CANISTER_ERROR);
    assert!(err.message.contains("post_upgrade"), "{err}");
    assert_eq!(i64s(&q(&mut host, "read", &[])), before);

    // pre_upgrade traps: same.
    ok(&mut host, "arm_pre_trap", &i64_arg(1));
    let err = host.upgrade(&v2, &[]).unwrap_err();
    assert!(err.message.contains("pre_upgrade"), "{err}");
    assert_eq!(i64s(&q(&mut host, "read", &[])), before);
    ok(&mut host, "arm_pre_trap", &i64_arg(0));

    // Successful upgrade: new module, heap gone, stable (written by pre_upgrade) kept.
    let cost = host.upgrade(&v2, &[]).unwrap();
    assert!(cost.pre_upgrade > 0 && cost.post_upgrade > 0);
    assert_eq!(cost.instructions, cost.pre_upgrade + cost.compilation + cost.post_upgrade);
    assert!(cost.compilation > 0, "the IC counts compiling the new module");
    assert_eq!(i64s(&q(&mut host, "read", &[])), vec![2, 0, 5, 2, 1]);
}

// ---------------------------------------------------------------------------
// 4: the global timer
// ---------------------------------------------------------------------------

#[test]
fn global_timer_fires_once_at_its_deadline() {
    let wasm = canister(
        r#"
  (func (export "canister_update arm") (call $reply_i64 (call $timer_set (call $arg_i64))))
  (func (export "canister_global_timer")
    (i64.store (i32.const 100) (i64.add (i64.load (i32.const 100)) (i64.const 1)))
    (i64.store (i32.const 108) (call $time)))
  (func (export "canister_query count") (call $reply_bytes (i32.const 100) (i32.const 16)))
"#,
    );
    let mut host = Host::new(&wasm, &[]).unwrap();
    let t0 = host.time() as i64;
    let deadline = t0 + 10_000_000_000;
    assert_eq!(as_i64(&ok(&mut host, "arm", &i64_arg(deadline))), 0, "no previous timer");
    assert!(host.advance_time(Duration::from_secs(5)).is_empty(), "not before the deadline");
    assert_eq!(i64s(&q(&mut host, "count", &[])), vec![0, 0]);
    let fired = host.advance_time(Duration::from_secs(5));
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].kind, MessageKind::GlobalTimer);
    assert!(fired[0].reply.is_ok() && fired[0].instructions > 0);
    assert_eq!(i64s(&q(&mut host, "count", &[])), vec![1, deadline]);
    assert!(host.advance_time(Duration::from_secs(100)).is_empty(), "one-shot");
    assert_eq!(i64s(&q(&mut host, "count", &[]))[0], 1);

    // global_timer_set returns the previous value (0 once fired); 0 deactivates.
    let now = host.time() as i64;
    assert_eq!(as_i64(&ok(&mut host, "arm", &i64_arg(now + 1_000))), 0);
    assert_eq!(as_i64(&ok(&mut host, "arm", &i64_arg(now + 2_000))), now + 1_000);
    assert_eq!(as_i64(&ok(&mut host, "arm", &i64_arg(0))), now + 2_000);
    assert!(host.advance_time(Duration::from_secs(10)).is_empty());
    assert_eq!(i64s(&q(&mut host, "count", &[]))[0], 1);
}

// ---------------------------------------------------------------------------
// 5: self-calls and callbacks
// ---------------------------------------------------------------------------

fn call_canister() -> Vec<u8> {
    canister(
        r#"
  (table 4 funcref)
  (elem (i32.const 0) $on_reply $on_reject $on_cleanup $trapping_reply)
  (data (i32.const 3000) "target")
  (data (i32.const 3010) "boom")
  (data (i32.const 3020) "ping")
  (data (i32.const 3030) "\aa\bb\cc\01")
  (func $self_id (result i32)
    (call $self_copy (i32.const 3100) (i32.const 0) (call $self_size))
    (call $self_size))
  ;; call callee/name with reply_fun (env 11), reject fun 1 (env 22), cleanup 2 (env 33), arg "ping"
  (func $do_call (param $callee i32) (param $callee_len i32) (param $name i32) (param $name_len i32) (param $reply_fun i32)
    (call $call_new (local.get $callee) (local.get $callee_len) (local.get $name) (local.get $name_len)
      (local.get $reply_fun) (i32.const 11) (i32.const 1) (i32.const 22))
    (call $call_on_cleanup (i32.const 2) (i32.const 33))
    (call $call_data_append (i32.const 3020) (i32.const 4))
    (if (call $call_perform) (then (unreachable))))
  (func (export "canister_update call_self")
    (call $do_call (i32.const 3100) (call $self_id) (i32.const 3000) (i32.const 6) (i32.const 0)))
  (func (export "canister_update call_other")
    (call $do_call (i32.const 3030) (i32.const 4) (i32.const 3000) (i32.const 6) (i32.const 0)))
  (func (export "canister_update call_boom")
    (call $do_call (i32.const 3100) (call $self_id) (i32.const 3010) (i32.const 4) (i32.const 0)))
  (func (export "canister_update call_self_bad_callback")
    (call $do_call (i32.const 3100) (call $self_id) (i32.const 3000) (i32.const 6) (i32.const 3)))
  ;; counts runs, records the caller, replies "pong" ++ arg
  (func (export "canister_update target")
    (i64.store (i32.const 500) (i64.add (i64.load (i32.const 500)) (i64.const 1)))
    (i32.store (i32.const 620) (call $caller_size))
    (call $caller_copy (i32.const 600) (i32.const 0) (call $caller_size))
    (i32.store (i32.const 700) (i32.const 0x676e6f70))
    (call $arg_copy (i32.const 704) (i32.const 0) (call $arg_size))
    (call $reply_bytes (i32.const 700) (i32.add (i32.const 4) (call $arg_size))))
  (func (export "canister_update boom")
    (i64.store (i32.const 500) (i64.const 1000))
    (unreachable))
  ;; replies to the original call with env ++ response
  (func $on_reply (param $env i32)
    (i32.store (i32.const 800) (local.get $env))
    (call $arg_copy (i32.const 804) (i32.const 0) (call $arg_size))
    (call $reply_bytes (i32.const 800) (i32.add (i32.const 4) (call $arg_size))))
  ;; replies to the original call with env ++ reject code ++ reject message
  (func $on_reject (param $env i32)
    (i32.store (i32.const 800) (local.get $env))
    (i32.store (i32.const 804) (call $reject_code))
    (call $reject_msg_copy (i32.const 808) (i32.const 0) (call $reject_msg_size))
    (call $reply_bytes (i32.const 800) (i32.add (i32.const 8) (call $reject_msg_size))))
  (func $on_cleanup (param $env i32)
    (i64.store (i32.const 2200) (i64.add (i64.load (i32.const 2200)) (i64.const 1)))
    (i32.store (i32.const 2208) (local.get $env)))
  (func $trapping_reply (param $env i32)
    (i64.store (i32.const 2220) (i64.const 1))
    (unreachable))
  ;; [target runs, cleanup runs, cleanup env, trapping-callback marker] ++ target's caller
  (func (export "canister_query probe")
    (i64.store (i32.const 1000) (i64.load (i32.const 500)))
    (i64.store (i32.const 1008) (i64.load (i32.const 2200)))
    (i64.store (i32.const 1016) (i64.extend_i32_u (i32.load (i32.const 2208))))
    (i64.store (i32.const 1024) (i64.load (i32.const 2220)))
    (call $append (i32.const 1000) (i32.const 32))
    (call $append (i32.const 600) (i32.load (i32.const 620)))
    (call $reply))
"#,
    )
}

fn probe(host: &mut Host) -> (Vec<i64>, Vec<u8>) {
    let r = q(host, "probe", &[]);
    (i64s(&r[..32]), r[32..].to_vec())
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}

#[test]
fn self_calls_run_as_separate_messages_with_callbacks() {
    let mut host = Host::new(&call_canister(), &[]).unwrap();
    let own = host.canister_id();

    // Reply path: target runs as its own message (caller = the canister), the
    // reply callback gets its reply and answers the original call.
    let reply = ok(&mut host, "call_self", &[]);
    assert_eq!(u32_at(&reply, 0), 11, "reply callback with its env");
    assert_eq!(&reply[4..], b"pongping");
    let kinds: Vec<_> = host.last_messages().iter().map(|m| (m.kind, m.method.clone())).collect();
    assert_eq!(
        kinds,
        vec![
            (MessageKind::Update, "call_self".to_string()),
            (MessageKind::Update, "target".to_string()),
            (MessageKind::ReplyCallback, String::new()),
        ]
    );
    let (p, caller) = probe(&mut host);
    assert_eq!(p, vec![1, 0, 0, 0]);
    assert_eq!(caller, own.as_slice());

    // Another canister: reject callback, code 3.
    let reply = ok(&mut host, "call_other", &[]);
    assert_eq!((u32_at(&reply, 0), u32_at(&reply, 4)), (22, reject_code::DESTINATION_INVALID));
    assert_eq!(probe(&mut host).0[0], 1, "target did not run");

    // Target traps: reject callback, code 5; the target's writes are rolled back.
    let reply = ok(&mut host, "call_boom", &[]);
    assert_eq!((u32_at(&reply, 0), u32_at(&reply, 4)), (22, reject_code::CANISTER_ERROR));
    assert!(String::from_utf8_lossy(&reply[8..]).contains("unreachable"));
    assert_eq!(probe(&mut host).0[0], 1);

    // Reply callback traps: its changes are rolled back, the cleanup callback
    // runs (and commits), the original call is rejected with the trap.
    let r = host.update(user(), "call_self_bad_callback", &[]);
    assert_eq!(r.reply.unwrap_err().code, reject_code::CANISTER_ERROR);
    let kinds: Vec<_> = host.last_messages().iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![MessageKind::Update, MessageKind::Update, MessageKind::ReplyCallback, MessageKind::Cleanup]);
    assert_eq!(probe(&mut host).0, vec![2, 1, 33, 0]);
}

// ---------------------------------------------------------------------------
// 6: limits
// ---------------------------------------------------------------------------

fn limits_canister() -> Vec<u8> {
    canister(
        r#"
  (func (export "canister_update spin")
    (local $n i64) (local $i i64)
    (local.set $n (call $arg_i64))
    (i64.store (i32.const 100) (i64.const 1))
    (drop (call $stable_grow (i64.const 1)))
    (block $done
      (loop $l
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $l)))
    (call $reply_i64 (call $perf (i32.const 0))))
  (func (export "canister_update arg_len") (call $reply_i64 (i64.extend_i32_u (call $arg_size))))
  (func (export "canister_query arg_len_q") (call $reply_i64 (i64.extend_i32_u (call $arg_size))))
  (func (export "canister_query read")
    (i64.store (i32.const 200) (i64.load (i32.const 100)))
    (i64.store (i32.const 208) (call $stable_size))
    (call $reply_bytes (i32.const 200) (i32.const 16)))
"#,
    )
}

#[test]
fn instruction_limits_counts_and_argument_size() {
    let mut host = Host::new(&limits_canister(), &[]).unwrap();
    host.set_instruction_limit(Limit::Update, 50_000);
    let r = host.update(user(), "spin", &i64_arg(1_000_000));
    let err = r.reply.unwrap_err();
    assert_eq!(err.code, reject_code::CANISTER_ERROR);
    assert!(err.message.contains("instruction limit exceeded"), "{err}");
    assert_eq!(r.instructions, 50_000);
    assert_eq!(i64s(&q(&mut host, "read", &[])), vec![0, 0], "rolled back");

    host.set_instruction_limit(Limit::Update, 40_000_000_000);
    let small = host.update(user(), "spin", &i64_arg(1_000));
    let big = host.update(user(), "spin", &i64_arg(100_000));
    let perf_small = as_i64(small.reply.as_ref().unwrap()) as u64;
    assert!(perf_small > 0 && perf_small <= small.instructions);
    assert!(big.instructions > 50 * small.instructions, "{} vs {}", big.instructions, small.instructions);
    assert_eq!(i64s(&q(&mut host, "read", &[])), vec![1, 2]);

    // Query limit.
    host.set_instruction_limit(Limit::Query, 10);
    let err = host.query(user(), "read", &[]).reply.unwrap_err();
    assert!(err.message.contains("instruction limit exceeded"));
    host.set_instruction_limit(Limit::Query, 5_000_000_000);

    // 2 MiB is the largest accepted argument.
    let max = vec![0u8; MAX_INGRESS_ARG];
    assert_eq!(as_i64(&ok(&mut host, "arg_len", &max)) as usize, MAX_INGRESS_ARG);
    let too_big = vec![0u8; MAX_INGRESS_ARG + 1];
    for r in [host.update(user(), "arg_len", &too_big), host.query(user(), "arg_len_q", &too_big)] {
        let err = r.reply.unwrap_err();
        assert_eq!(err.code, reject_code::CANISTER_REJECT);
        assert_eq!(r.instructions, 0, "refused before running");
    }
}

// ---------------------------------------------------------------------------
// 7: callers, controllers, reject codes
// ---------------------------------------------------------------------------

#[test]
fn callers_controllers_and_reject_codes() {
    let wasm = canister(
        r#"
  (data (i32.const 3000) "nope")
  (data (i32.const 3010) "boom")
  (func (export "canister_query whoami")
    (call $caller_copy (i32.const 200) (i32.const 0) (call $caller_size))
    (call $reply_bytes (i32.const 200) (call $caller_size)))
  (func (export "canister_query am_i_controller")
    (call $caller_copy (i32.const 200) (i32.const 0) (call $caller_size))
    (i32.store8 (i32.const 300) (call $is_controller (i32.const 200) (call $caller_size)))
    (call $reply_bytes (i32.const 300) (i32.const 1)))
  (func (export "canister_update noreply"))
  (func (export "canister_update reject") (call $reject (i32.const 3000) (i32.const 4)))
  (func (export "canister_update trap") (call $trap (i32.const 3010) (i32.const 4)))
  (func (export "canister_update double_reply") (call $reply_bytes (i32.const 0) (i32.const 0)) (call $reply))
  (func (export "canister_update unsupported") (call $unsupported (i64.const 0) (i64.const 0) (i32.const 0)))
  (func (export "canister_update oob") (call $reply_bytes (i32.const 65530) (i32.const 100)))
"#,
    );
    let mut host = Host::new(&wasm, &[]).unwrap();
    assert_eq!(host.query(Principal::anonymous(), "whoami", &[]).reply.unwrap(), vec![0x04]);
    assert_eq!(q(&mut host, "whoami", &[]), user().as_slice());

    assert_eq!(host.controllers(), &[DEFAULT_CONTROLLER]);
    assert_eq!(host.query(DEFAULT_CONTROLLER, "am_i_controller", &[]).reply.unwrap(), vec![1]);
    assert_eq!(q(&mut host, "am_i_controller", &[]), vec![0]);
    host.set_controllers(vec![user()]);
    assert_eq!(q(&mut host, "am_i_controller", &[]), vec![1]);
    assert_eq!(host.query(DEFAULT_CONTROLLER, "am_i_controller", &[]).reply.unwrap(), vec![0]);

    let code = |host: &mut Host, m: &str| host.update(user(), m, &[]).reply.unwrap_err();
    let e = code(&mut host, "no_such_method");
    assert_eq!(e.code, reject_code::DESTINATION_INVALID);
    assert!(e.message.contains("has no update method 'no_such_method'"), "{e}");
    let e = host.query(user(), "nope", &[]).reply.unwrap_err();
    assert_eq!(e.code, reject_code::DESTINATION_INVALID);
    assert!(e.message.contains("has no query method"), "{e}");
    // An update method cannot be called as a query.
    assert_eq!(host.query(user(), "noreply", &[]).reply.unwrap_err().code, reject_code::DESTINATION_INVALID);

    let e = code(&mut host, "noreply");
    assert_eq!(e.code, reject_code::CANISTER_ERROR);
    assert!(e.message.contains("did not reply"), "{e}");
    assert_eq!(code(&mut host, "reject"), ic_host::Reject::new(reject_code::CANISTER_REJECT, "nope"));
    let e = code(&mut host, "trap");
    assert_eq!(e.code, reject_code::CANISTER_ERROR);
    assert!(e.message.contains("boom"), "{e}");
    let e = code(&mut host, "double_reply");
    assert_eq!(e.code, reject_code::CANISTER_ERROR);
    assert!(e.message.contains("already replied"), "{e}");
    let e = code(&mut host, "unsupported");
    assert_eq!(e.code, reject_code::CANISTER_ERROR);
    assert!(e.message.contains("ic0.mint_cycles128 not supported by ic-host"), "{e}");
    let e = code(&mut host, "oob");
    assert_eq!(e.code, reject_code::CANISTER_ERROR);
    assert!(e.message.contains("out of bounds"), "{e}");
}

#[test]
fn invalid_modules_are_errors_not_panics() {
    assert!(Host::new(b"not wasm", &[]).is_err());
    // An import from a foreign module links (stub) but traps when called.
    let wasm = wat::parse_str(
        r#"(module
             (import "env" "foo" (func $foo))
             (import "ic0" "msg_reply" (func $reply))
             (memory 1)
             (func (export "canister_update f") (call $foo)))"#,
    )
    .unwrap();
    let mut host = Host::new(&wasm, &[]).unwrap();
    let e = host.update(user(), "f", &[]).reply.unwrap_err();
    assert!(e.message.contains("env.foo not supported by ic-host"), "{e}");
    // init trap = install failure.
    let wasm = wat::parse_str(r#"(module (func (export "canister_init") unreachable))"#).unwrap();
    assert!(Host::new(&wasm, &[]).is_err());
}

// ---------------------------------------------------------------------------
// Wasm features a rustc 1.95 ic-cdk canister may use; the module cache.
// ---------------------------------------------------------------------------

#[test]
fn simd_bulk_memory_sign_ext_and_multi_value_work() {
    let wasm = canister(
        r#"
  (func $pair (result i64 i64) (i64.const 40) (i64.const 2))
  (func (export "canister_query features")
    ;; bulk memory: fill + copy
    (memory.fill (i32.const 100) (i32.const 7) (i32.const 16))
    (memory.copy (i32.const 200) (i32.const 100) (i32.const 16))
    ;; simd: add two i32x4 vectors loaded from memory
    (v128.store (i32.const 300)
      (i32x4.add (v128.load (i32.const 200)) (v128.const i32x4 1 2 3 4)))
    ;; sign-ext
    (i64.store (i32.const 316) (i64.extend8_s (i64.const 0xff)))
    ;; multi-value
    (i64.store (i32.const 324) (i64.add (call $pair)))
    (call $reply_bytes (i32.const 300) (i32.const 32)))
"#,
    );
    let mut host = Host::new(&wasm, &[]).unwrap();
    let r = q(&mut host, "features", &[]);
    let lanes: Vec<u32> = r[..16].chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect();
    assert_eq!(lanes, vec![0x07070708, 0x07070709, 0x0707070a, 0x0707070b]);
    assert_eq!(as_i64(&r[16..24]), -1);
    assert_eq!(as_i64(&r[24..32]), 42);
}

#[test]
fn compiled_modules_are_cached_on_disk() {
    // A module no other test uses, so this test controls its first compilation.
    let wasm = canister(&format!(
        r#"(func (export "canister_query nonce") (call $reply_i64 (i64.const {})))"#,
        std::process::id() as i64 * 1_000_003 + 17
    ));
    let dir = ic_host::module_cache_dir();
    let count = || std::fs::read_dir(&dir).map(|d| d.filter_map(Result::ok).filter(|e| {
        e.path().extension().is_some_and(|x| x == "cwasm")
    }).count()).unwrap_or(0);
    let before = count();
    let mut host = Host::new(&wasm, &[]).unwrap();
    assert!(!q(&mut host, "nonce", &[]).is_empty());
    assert!(count() > before, "a serialized module appeared in {}", dir.display());
    // Loading the same bytes again reuses the cached module.
    let mut again = Host::new(&wasm, &[]).unwrap();
    assert!(!q(&mut again, "nonce", &[]).is_empty());
}
