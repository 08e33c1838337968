//! Test fixture for ic-host: an ic-cdk 0.20 canister using ic-cdk-timers.
use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static COUNTER: Cell<u64> = const { Cell::new(0) };
}

/// Schedules a one-shot timer that increments the counter after `secs` seconds.
#[ic_cdk::update]
fn schedule(secs: u64) {
    ic_cdk_timers::set_timer(Duration::from_secs(secs), async {
        COUNTER.with(|c| c.set(c.get() + 1));
        ic_cdk::println!("timer fired, counter = {}", COUNTER.with(|c| c.get()));
    });
}

#[ic_cdk::query]
fn counter() -> u64 {
    COUNTER.with(|c| c.get())
}

#[ic_cdk::query]
fn whoami() -> candid::Principal {
    ic_cdk::api::msg_caller()
}

/// Some SIMD-friendly work so the module exercises the compiler's vector paths.
#[ic_cdk::update]
fn checksum(data: Vec<u8>) -> u64 {
    data.iter().fold(0u64, |acc, &b| acc.wrapping_mul(31).wrapping_add(b as u64))
}
