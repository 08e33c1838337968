//! Calls between canisters of one host: replies, rejects, traps in the callee and in
//! callbacks (only the callback is rolled back; cleanup runs), cycles attached and
//! refunded, and the IC's ordering guarantee between a pair of canisters.

mod common;

use common::*;
use ic_host::{reject_code, Host, MessageKind, Principal, DEFAULT_CYCLES};

/// The caller. `call` takes `[n][callee; n][m][method; m][cycles u64][mode u8][payload]`
/// and calls `callee.method(payload)` with `cycles` attached; mode 1 uses a reply
/// callback that traps (and a cleanup callback). Replies:
/// reply callback: `'R' refunded(u128) response`; reject callback:
/// `'J' code(u32) refunded(u128) message`. `multi` takes `[n][callee; n][k]` and makes
/// `k` calls `callee.seq([i])`, replying at once; their callbacks only count.
fn caller_canister() -> Vec<u8> {
    canister(
        r#"
  (table 8 funcref)
  (elem (i32.const 0) $on_reply $on_reject $on_cleanup $trapping_reply $count_reply $count_reject)
  (data (i32.const 3000) "seq")
  (func (export "canister_update call")
    (local $n i32) (local $p i32) (local $m i32) (local $len i32) (local $q i32)
    (local.set $len (call $arg_size))
    (call $arg_copy (i32.const 0) (i32.const 0) (local.get $len))
    (local.set $n (i32.load8_u (i32.const 0)))
    (local.set $p (i32.add (i32.const 1) (local.get $n)))
    (local.set $m (i32.load8_u (local.get $p)))
    (i64.store (i32.const 5016) (i64.add (i64.load (i32.const 5016)) (i64.const 1)))
    (call $call_new (i32.const 1) (local.get $n) (i32.add (local.get $p) (i32.const 1)) (local.get $m)
      (select (i32.const 3) (i32.const 0) (i32.load8_u (i32.add (local.get $p) (i32.add (local.get $m) (i32.const 9)))))
      (i32.const 0) (i32.const 1) (i32.const 0))
    (call $call_on_cleanup (i32.const 2) (i32.const 0))
    (call $call_cycles_add (i64.const 0) (i64.load (i32.add (local.get $p) (i32.add (local.get $m) (i32.const 1)))))
    (local.set $q (i32.add (local.get $p) (i32.add (local.get $m) (i32.const 10))))
    (call $call_data_append (local.get $q) (i32.sub (local.get $len) (local.get $q)))
    (if (call $call_perform) (then (unreachable))))
  (func $on_reply (param $env i32)
    (i32.store8 (i32.const 8000) (i32.const 82))
    (call $cycles_refunded (i32.const 8001))
    (call $arg_copy (i32.const 8017) (i32.const 0) (call $arg_size))
    (call $reply_bytes (i32.const 8000) (i32.add (i32.const 17) (call $arg_size))))
  (func $on_reject (param $env i32)
    (i32.store8 (i32.const 8000) (i32.const 74))
    (i32.store (i32.const 8001) (call $reject_code))
    (call $cycles_refunded (i32.const 8005))
    (call $reject_msg_copy (i32.const 8021) (i32.const 0) (call $reject_msg_size))
    (call $reply_bytes (i32.const 8000) (i32.add (i32.const 21) (call $reject_msg_size))))
  (func $on_cleanup (param $env i32)
    (i64.store (i32.const 5008) (i64.add (i64.load (i32.const 5008)) (i64.const 1))))
  (func $trapping_reply (param $env i32)
    (i64.store (i32.const 5000) (i64.const 1))
    (unreachable))
  (func $count_reply (param $env i32)
    (i64.store (i32.const 5024) (i64.add (i64.load (i32.const 5024)) (i64.const 1))))
  (func $count_reject (param $env i32)
    (i64.store (i32.const 5032) (i64.add (i64.load (i32.const 5032)) (i64.const 1))))
  (func (export "canister_update multi") (local $n i32) (local $k i32) (local $i i32)
    (call $arg_copy (i32.const 0) (i32.const 0) (call $arg_size))
    (local.set $n (i32.load8_u (i32.const 0)))
    (local.set $k (i32.load8_u (i32.add (i32.const 1) (local.get $n))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $k)))
      (i32.store8 (i32.add (i32.const 9000) (local.get $i)) (local.get $i))
      (call $call_new (i32.const 1) (local.get $n) (i32.const 3000) (i32.const 3) (i32.const 4) (i32.const 0) (i32.const 5) (i32.const 0))
      (call $call_data_append (i32.add (i32.const 9000) (local.get $i)) (i32.const 1))
      (drop (call $call_perform))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  ;; `call2`: two calls `[n][callee; n][m][method; m][len u16][payload; len]` made in one
  ;; message, in that order (callbacks only count); replies at once.
  (func $spec (param $p i32) (result i32) (local $n i32) (local $m i32) (local $len i32)
    (local.set $n (i32.load8_u (local.get $p)))
    (local.set $m (i32.load8_u (i32.add (local.get $p) (i32.add (i32.const 1) (local.get $n)))))
    (local.set $len (i32.load16_u (i32.add (local.get $p) (i32.add (i32.const 2) (i32.add (local.get $n) (local.get $m))))))
    (call $call_new (i32.add (local.get $p) (i32.const 1)) (local.get $n)
      (i32.add (local.get $p) (i32.add (i32.const 2) (local.get $n))) (local.get $m)
      (i32.const 4) (i32.const 0) (i32.const 5) (i32.const 0))
    (call $call_data_append (i32.add (local.get $p) (i32.add (i32.const 4) (i32.add (local.get $n) (local.get $m)))) (local.get $len))
    (if (call $call_perform) (then (unreachable)))
    (i32.add (local.get $p) (i32.add (i32.const 4) (i32.add (local.get $n) (i32.add (local.get $m) (local.get $len))))))
  (func (export "canister_update call2")
    (call $arg_copy (i32.const 0) (i32.const 0) (call $arg_size))
    (drop (call $spec (call $spec (i32.const 0))))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  ;; [callback trap marker, cleanups, calls made, counted replies, counted rejects]
  (func (export "canister_query probe") (call $reply_bytes (i32.const 5000) (i32.const 40)))
"#,
    )
}

/// The callee. `relay([n][callee; n])` calls `callee.echo()` and answers with its reply.
fn callee_canister() -> Vec<u8> {
    canister(
        r#"
  (table 2 funcref)
  (elem (i32.const 0) $relay_reply $relay_reject)
  (data (i32.const 3000) "no")
  (data (i32.const 3010) "echo")
  (func (export "canister_update relay")
    (call $arg_copy (i32.const 400) (i32.const 0) (call $arg_size))
    (call $call_new (i32.const 401) (i32.load8_u (i32.const 400)) (i32.const 3010) (i32.const 4)
      (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0))
    (if (call $call_perform) (then (unreachable))))
  (func $relay_reply (param $env i32)
    (call $arg_copy (i32.const 400) (i32.const 0) (call $arg_size))
    (call $reply_bytes (i32.const 400) (call $arg_size)))
  (func $relay_reject (param $env i32) (call $reject (i32.const 3000) (i32.const 2)))
  (func (export "canister_update echo")
    (call $caller_copy (i32.const 100) (i32.const 0) (call $caller_size))
    (call $arg_copy (i32.add (i32.const 100) (call $caller_size)) (i32.const 0) (call $arg_size))
    (call $reply_bytes (i32.const 100) (i32.add (call $caller_size) (call $arg_size))))
  (func (export "canister_update reject") (call $reject (i32.const 3000) (i32.const 2)))
  ;; accepts every cycle, marks the heap, then traps
  (func (export "canister_update boom")
    (call $cycles_accept (i64.const 0) (i64.const -1) (i32.const 200))
    (i64.store (i32.const 5000) (i64.const 99))
    (unreachable))
  ;; accepts at most arg (u64) cycles; replies [accepted u128, still available u128]
  (func (export "canister_update accept")
    (call $cycles_accept (i64.const 0) (call $arg_i64) (i32.const 200))
    (call $cycles_available (i32.const 216))
    (call $reply_bytes (i32.const 200) (i32.const 32)))
  (func (export "canister_update seq") (local $c i32)
    (local.set $c (i32.load (i32.const 5990)))
    (call $arg_copy (i32.add (i32.const 6000) (local.get $c)) (i32.const 0) (i32.const 1))
    (i32.store (i32.const 5990) (i32.add (local.get $c) (i32.const 1)))
    (call $reply_bytes (i32.const 0) (i32.const 0)))
  (func (export "canister_query log") (call $reply_bytes (i32.const 6000) (i32.load (i32.const 5990))))
  (func (export "canister_query probe") (call $reply_bytes (i32.const 5000) (i32.const 8)))
"#,
    )
}

fn call_arg(callee: Principal, method: &str, cycles: u64, trapping_callback: bool, payload: &[u8]) -> Vec<u8> {
    let mut a = vec![callee.as_slice().len() as u8];
    a.extend_from_slice(callee.as_slice());
    a.push(method.len() as u8);
    a.extend_from_slice(method.as_bytes());
    a.extend_from_slice(&cycles.to_le_bytes());
    a.push(trapping_callback as u8);
    a.extend_from_slice(payload);
    a
}

fn u128_at(b: &[u8], i: usize) -> u128 {
    u128::from_le_bytes(b[i..i + 16].try_into().unwrap())
}

/// (host, caller A = default canister, callee B)
fn two_canisters() -> (Host, Principal, Principal) {
    let mut host = Host::new(&caller_canister(), &[]).unwrap();
    let a = host.canister_id();
    let b = add_canister(&mut host, &callee_canister(), DEFAULT_CYCLES);
    assert_ne!(a, b);
    (host, a, b)
}

#[test]
fn replies_and_rejects_cross_canisters() {
    let (mut host, a, b) = two_canisters();
    // Reply: B sees A as its caller; A's reply callback answers the ingress call.
    let r = ok(&mut host, "call", &call_arg(b, "echo", 0, false, b"hi"));
    assert_eq!(r[0], b'R');
    assert_eq!(u128_at(&r, 1), 0, "nothing attached, nothing refunded");
    assert_eq!(&r[17..], [a.as_slice(), b"hi"].concat());
    let kinds: Vec<_> = host.last_messages().iter().map(|m| (m.kind, m.canister)).collect();
    assert_eq!(kinds, vec![(MessageKind::Update, a), (MessageKind::Update, b), (MessageKind::ReplyCallback, a)]);

    // The callee rejects: reject callback with CANISTER_REJECT and the message.
    let r = ok(&mut host, "call", &call_arg(b, "reject", 0, false, b""));
    assert_eq!((r[0], u32::from_le_bytes(r[1..5].try_into().unwrap())), (b'J', reject_code::CANISTER_REJECT));
    assert_eq!(&r[21..], b"no");

    // No such method / no such canister: rejected, nothing ran.
    let r = ok(&mut host, "call", &call_arg(b, "nope", 0, false, b""));
    assert_eq!(u32::from_le_bytes(r[1..5].try_into().unwrap()), reject_code::DESTINATION_INVALID);
    let ghost = ic_host::canister_id_of(77);
    let r = ok(&mut host, "call", &call_arg(ghost, "echo", 0, false, b""));
    assert_eq!(u32::from_le_bytes(r[1..5].try_into().unwrap()), reject_code::DESTINATION_INVALID);
    assert!(String::from_utf8_lossy(&r[21..]).contains("not found"));
}

#[test]
fn a_trap_rolls_back_only_the_message_that_trapped() {
    let (mut host, a, b) = two_canisters();
    // The callee traps: its changes are gone, the caller gets CANISTER_ERROR.
    let r = ok(&mut host, "call", &call_arg(b, "boom", 0, false, b""));
    assert_eq!(u32::from_le_bytes(r[1..5].try_into().unwrap()), reject_code::CANISTER_ERROR);
    assert!(String::from_utf8_lossy(&r[21..]).contains("unreachable"));
    assert_eq!(host.query_call(b, user(), "probe", &[]).reply.unwrap(), 0i64.to_le_bytes());

    // The caller's reply callback traps: the callback's write is rolled back, the
    // cleanup callback runs and commits, the call that made the call stays committed,
    // and the ingress call is rejected with the trap.
    let r = host.update(user(), "call", &call_arg(b, "echo", 0, true, b"x"));
    let e = r.reply.unwrap_err();
    assert_eq!(e.code, reject_code::CANISTER_ERROR);
    assert!(e.message.contains(&a.to_text()), "{e}");
    let kinds: Vec<_> = host.last_messages().iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![MessageKind::Update, MessageKind::Update, MessageKind::ReplyCallback, MessageKind::Cleanup]);
    // [callback marker, cleanups, calls made (2 so far), counted replies, counted rejects]
    assert_eq!(i64s(&q(&mut host, "probe", &[])), vec![0, 1, 2, 0, 0]);
}

#[test]
fn cycles_move_with_calls_and_come_back_unaccepted() {
    let (mut host, a, b) = two_canisters();
    let balance = |h: &Host, c| h.cycle_balance(c).unwrap();
    assert_eq!((balance(&host, a), balance(&host, b)), (DEFAULT_CYCLES, DEFAULT_CYCLES));

    // 1,000 attached, 400 accepted: 600 refunded to the caller's callback.
    let r = ok(&mut host, "call", &call_arg(b, "accept", 1_000, false, &400i64.to_le_bytes()));
    assert_eq!(u128_at(&r, 1), 600, "refunded");
    assert_eq!((u128_at(&r, 17), u128_at(&r, 33)), (400, 600), "accepted, then still available in the callee");
    assert_eq!(balance(&host, a), DEFAULT_CYCLES - 400);
    assert_eq!(balance(&host, b), DEFAULT_CYCLES + 400);

    // The callee accepts everything, then traps: all of it comes back.
    let r = ok(&mut host, "call", &call_arg(b, "boom", 5_000, false, b""));
    assert_eq!(u128_at(&r, 5), 5_000);
    assert_eq!(balance(&host, a), DEFAULT_CYCLES - 400);
    assert_eq!(balance(&host, b), DEFAULT_CYCLES + 400);

    // A call to nowhere: refunded.
    let r = ok(&mut host, "call", &call_arg(ic_host::canister_id_of(99), "x", 7_000, false, b""));
    assert_eq!(u128_at(&r, 5), 7_000);
    assert_eq!(balance(&host, a), DEFAULT_CYCLES - 400);

    // More than the balance: the caller traps, nothing moves.
    let too_much = u64::MAX;
    let e = host.update(user(), "call", &call_arg(b, "accept", too_much, false, &0i64.to_le_bytes())).reply.unwrap_err();
    assert!(e.message.contains("call_cycles_add128"), "{e}");
    assert_eq!(balance(&host, a), DEFAULT_CYCLES - 400);
}

#[test]
fn calls_between_a_pair_arrive_in_the_order_they_were_sent() {
    let (mut host, _a, b) = two_canisters();
    let c = add_canister(&mut host, &callee_canister(), DEFAULT_CYCLES);
    let multi = |callee: Principal, k: u8| {
        let mut a = vec![callee.as_slice().len() as u8];
        a.extend_from_slice(callee.as_slice());
        a.push(k);
        a
    };
    ok(&mut host, "multi", &multi(b, 20));
    ok(&mut host, "multi", &multi(c, 5));
    ok(&mut host, "multi", &multi(b, 3));
    let expected_b: Vec<u8> = (0..20).chain(0..3).collect();
    assert_eq!(host.query_call(b, user(), "log", &[]).reply.unwrap(), expected_b);
    assert_eq!(host.query_call(c, user(), "log", &[]).reply.unwrap(), (0..5).collect::<Vec<u8>>());
    // Every call's reply reached the caller's callbacks.
    assert_eq!(i64s(&q(&mut host, "probe", &[]))[3], 28);
}

fn spec(callee: Principal, method: &str, payload: &[u8]) -> Vec<u8> {
    let mut a = vec![callee.as_slice().len() as u8];
    a.extend_from_slice(callee.as_slice());
    a.push(method.len() as u8);
    a.extend_from_slice(method.as_bytes());
    a.extend_from_slice(&(payload.len() as u16).to_le_bytes());
    a.extend_from_slice(payload);
    a
}

/// A canister that controls another stops it while that one still waits for a call of
/// its own: the stop is answered once the open call finishes, and not before.
#[test]
fn stop_canister_waits_for_open_calls() {
    let (mut host, a, b) = two_canisters();
    let c = add_canister(&mut host, &callee_canister(), DEFAULT_CYCLES);
    let settings = ic_host::management_types::UpdateSettingsArgs {
        canister_id: b,
        settings: ic_host::management_types::CanisterSettings { controllers: Some(vec![a]), ..Default::default() },
        sender_canister_version: None,
    };
    let () = host.management(ic_host::DEFAULT_CONTROLLER, "update_settings", &settings).unwrap();
    let relay = [vec![c.as_slice().len() as u8], c.as_slice().to_vec()].concat();
    let stop = candid::encode_one(ic_host::management_types::CanisterIdRecord { canister_id: b }).unwrap();
    let arg = [spec(b, "relay", &relay), spec(Principal::management_canister(), "stop_canister", &stop)].concat();
    ok(&mut host, "call2", &arg);
    let order: Vec<_> = host.last_messages().iter().map(|m| (m.canister, m.kind)).collect();
    assert_eq!(
        order,
        vec![
            (a, MessageKind::Update),         // call2: relay, then stop
            (b, MessageKind::Update),         // relay calls C (its context stays open)
            (c, MessageKind::Update),         // stop arrived in between: B is stopping
            (b, MessageKind::ReplyCallback),  // B gets its answer while stopping, replies
            (a, MessageKind::ReplyCallback),  // relay's reply
            (a, MessageKind::ReplyCallback),  // then the stop's: B had stopped
        ]
    );
    assert_eq!(i64s(&q(&mut host, "probe", &[]))[3..], [2, 0], "both calls replied");
    assert_eq!(host.status(b), Some(ic_host::CanisterStatus::Stopped));
}

/// `create_canister` from a canister: the attached cycles become the new canister's
/// balance and the caller its controller, who can install code in it.
#[test]
fn a_canister_creates_and_installs_another() {
    let (mut host, a, _b) = two_canisters();
    let create = candid::encode_one(ic_host::management_types::CreateCanisterArgs::default()).unwrap();
    let r = ok(&mut host, "call", &call_arg(Principal::management_canister(), "create_canister", 1_000_000, false, &create));
    assert_eq!(r[0], b'R', "{}", String::from_utf8_lossy(&r));
    assert_eq!(u128_at(&r, 1), 0, "all attached cycles went to the new canister");
    let rec: ic_host::management_types::CanisterIdRecord = candid::decode_one(&r[17..]).unwrap();
    let new = rec.canister_id;
    assert_eq!(host.cycle_balance(new), Some(1_000_000));
    assert_eq!(host.cycle_balance(a), Some(DEFAULT_CYCLES - 1_000_000));
    let status = host.canister_status(new).unwrap();
    assert_eq!(status.settings.controllers, vec![a]);

    let install = ic_host::management_types::InstallCodeArgs {
        mode: ic_host::management_types::CanisterInstallMode::Install,
        canister_id: new,
        wasm_module: callee_canister(),
        arg: Vec::new(),
        sender_canister_version: None,
    };
    let install = candid::encode_one(install).unwrap();
    let r = ok(&mut host, "call", &call_arg(Principal::management_canister(), "install_code", 0, false, &install));
    assert_eq!(r[0], b'R');
    let r = host.update_call(new, user(), "echo", b"!").reply.unwrap();
    assert_eq!(r, [user().as_slice(), b"!"].concat());
    // The host's own controller does not control it.
    let e = host
        .management::<_, ()>(ic_host::DEFAULT_CONTROLLER, "stop_canister", &ic_host::management_types::CanisterIdRecord { canister_id: new })
        .unwrap_err();
    assert!(e.message.contains("Only the controllers"), "{e}");
}
