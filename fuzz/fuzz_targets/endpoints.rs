//! Coverage-guided fuzzing of every endpoint (libFuzzer through cargo-fuzz). The
//! driver is the one the CI slice runs (`tests/fuzzing/driver.rs`): each input is a
//! sequence of calls run on the real canister Wasm in the embedded host and natively
//! over the same domain code, whose coverage guides the fuzzer. Any failure (a trap
//! other than undecodable Candid, a divergence, a reply over the IC's limits, a
//! refused call that wrote stable memory) aborts with its description.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/common/mod.rs"]
#[allow(dead_code)]
mod common;
#[path = "../../tests/fuzzing/driver.rs"]
#[allow(dead_code)]
mod driver;

fn wasm() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        let path = std::env::var("KEEPSAKE_WASM")
            .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/canister/backend.wasm").to_string());
        std::fs::read(&path).unwrap_or_else(|e| panic!("read {path} (run scripts/build.sh): {e}"))
    })
}

fuzz_target!(|data: &[u8]| {
    let mut figures = driver::Figures::default();
    driver::Driver::run(wasm(), data, &mut figures);
    assert!(figures.failures.is_empty(), "{}", figures.failures.join("\n"));
});
