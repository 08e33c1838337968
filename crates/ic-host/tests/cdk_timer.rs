//! A real ic-cdk 0.20 canister (tests/canisters/timer-canister) with an
//! ic-cdk-timers timer, which runs through the `<ic-cdk internal>
//! timer_executor` self-call.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ic_host::{Host, MessageKind, Principal};

/// The cargo target dir this test was built into (shared with the fixture build).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    // <target>/debug/deps/cdk_timer-<hash>
    let exe = std::env::current_exe().expect("test executable path");
    exe.ancestors().nth(3).expect("target dir above the test executable").to_path_buf()
}

fn build_timer_canister() -> Vec<u8> {
    // A workspace member: built with the workspace's release profile into the shared
    // target dir, next to the backend's wasm32 artifacts (so only the fixture compiles).
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "--locked", "--target", "wasm32-unknown-unknown", "--release", "-p", "timer-canister"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("running cargo to build the timer canister");
    assert!(status.success(), "building the timer canister failed");
    let wasm = target_dir().join("wasm32-unknown-unknown/release/timer_canister.wasm");
    std::fs::read(&wasm).unwrap_or_else(|e| panic!("reading {}: {e}", wasm.display()))
}

#[test]
fn ic_cdk_timer_fires_through_the_timer_executor_self_call() {
    let wasm = build_timer_canister();
    let mut host = Host::new(&wasm, &candid::encode_args(()).unwrap()).unwrap();
    let user = Principal::from_slice(&[0x42, 0x01]);

    let (): () = host.update_candid(user, "schedule", (10u64,)).unwrap();
    println!("schedule: {} instructions", host.last_messages()[0].instructions);
    assert_ne!(host.global_timer(), 0, "ic-cdk-timers armed the global timer");

    let (n,): (u64,) = host.query_candid(user, "counter", ()).unwrap();
    assert_eq!(n, 0);
    assert!(host.advance_time(Duration::from_secs(9)).is_empty(), "not due yet");

    let messages = host.advance_time(Duration::from_secs(2));
    for m in &messages {
        println!("{:?} {:?}: {} instructions ({:?})", m.kind, m.method, m.instructions, m.reply.as_ref().map(|r| r.len()));
    }
    let kinds: Vec<_> = messages.iter().map(|m| m.kind).collect();
    assert_eq!(kinds, vec![MessageKind::GlobalTimer, MessageKind::Update, MessageKind::ReplyCallback]);
    assert_eq!(messages[1].method, "<ic-cdk internal> timer_executor");
    assert!(messages.iter().all(|m| m.reply.is_ok()), "{messages:?}");

    let (n,): (u64,) = host.query_candid(user, "counter", ()).unwrap();
    assert_eq!(n, 1, "timer fired exactly once");
    assert!(host.logs().iter().any(|l| l.contains("timer fired, counter = 1")), "{:?}", host.logs());
    assert!(host.advance_time(Duration::from_secs(60)).is_empty());
    let (n,): (u64,) = host.query_candid(user, "counter", ()).unwrap();
    assert_eq!(n, 1);

    // Other ic-cdk plumbing: caller, candid errors, a method with a vector argument.
    let (who,): (Principal,) = host.query_candid(Principal::anonymous(), "whoami", ()).unwrap();
    assert_eq!(who, Principal::anonymous());
    let (sum,): (u64,) = host.update_candid(user, "checksum", (vec![1u8, 2, 3],)).unwrap();
    assert_eq!(sum, (31 + 2) * 31 + 3);
    let err = host.update_candid::<_, (u64,)>(user, "checksum", ("not bytes",)).unwrap_err();
    assert_eq!(err.code, ic_host::reject_code::CANISTER_ERROR, "{err}");

    // Upgrade onto itself: heap (and so the counter) is gone.
    host.upgrade(&wasm, &candid::encode_args(()).unwrap()).unwrap();
    let (n,): (u64,) = host.query_candid(user, "counter", ()).unwrap();
    assert_eq!(n, 0);
}
