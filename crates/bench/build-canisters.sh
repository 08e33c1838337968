#!/usr/bin/env bash
# Builds the benchmark's fixture canisters (sourced by bench.sh; usable alone).
# Writes $BENCH_WASM_DIR/{assets,calib-<variant>}.wasm. Variants of the calibration
# canister differ only in build settings: opt-level (global / for the hash crates)
# and the Wasm simd128 target feature (sha2 0.11 then uses its wasm32 SIMD backend).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BENCH_TARGET="${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-$HERE/../../target}/bench}"
BENCH_WASM_DIR="${BENCH_WASM_DIR:-$BENCH_TARGET/wasm}"
mkdir -p "$BENCH_WASM_DIR"

# name | global opt-level | opt-level of the hash crates | RUSTFLAGS
CALIB_VARIANTS=(
  "z|z|z|"
  "z-hash3|z|3|"
  "o3|3|3|"
  "z-hash3-simd|z|3|-C target-feature=+simd128"
  "o3-simd|3|3|-C target-feature=+simd128"
)

# The asset canister as dfinity/sdk builds it (profile in its Cargo.toml), and a variant
# with opt-level "z" for every crate (only its commit cost is measured).
build_assets() {
  (cd "$HERE/canisters/assets" &&
    RUSTFLAGS="" cargo build --quiet --release --target wasm32-unknown-unknown --target-dir "$BENCH_TARGET/assets")
  cp "$BENCH_TARGET/assets/wasm32-unknown-unknown/release/bench_assets.wasm" "$BENCH_WASM_DIR/assets.wasm"
}

build_assets_all_z() {
  (cd "$HERE/canisters/assets" &&
    RUSTFLAGS="" cargo build --quiet --release --target wasm32-unknown-unknown --target-dir "$BENCH_TARGET/assets-z" \
      --config 'profile.release.opt-level="z"')
  cp "$BENCH_TARGET/assets-z/wasm32-unknown-unknown/release/bench_assets.wasm" "$BENCH_WASM_DIR/assets-z.wasm"
}

# opt-level as a TOML value: digits bare, "s"/"z" quoted.
toml_opt() { case "$1" in [0-3]) echo "$1" ;; *) echo "\"$1\"" ;; esac; }

build_calib() { # variant spec
  local name opt hash flags
  IFS='|' read -r name opt hash flags <<<"$1"
  (cd "$HERE/canisters/calib" &&
    RUSTFLAGS="$flags" cargo build --quiet --release --target wasm32-unknown-unknown \
      --target-dir "$BENCH_TARGET/calib-$name" \
      --config "profile.release.opt-level=$(toml_opt "$opt")" \
      --config "profile.release.package.sha2.opt-level=$(toml_opt "$hash")" \
      --config "profile.release.package.hmac-sha256.opt-level=$(toml_opt "$hash")")
  cp "$BENCH_TARGET/calib-$name/wasm32-unknown-unknown/release/bench_calib.wasm" "$BENCH_WASM_DIR/calib-$name.wasm"
}

# DFINITY stable-structures' canbench workloads (the calibration against the IC), built
# as stable-structures builds them: release profile defaults, no simd128. (Its results
# were measured with rustc 1.84; see crates/bench/src/canbench.rs for what differs.)
build_stable() {
  (cd "$HERE/canisters/stable" &&
    RUSTFLAGS="" cargo build --quiet --locked --release --target wasm32-unknown-unknown --target-dir "$BENCH_TARGET/stable")
  cp "$BENCH_TARGET/stable/wasm32-unknown-unknown/release/bench_stable.wasm" "$BENCH_WASM_DIR/stable.wasm"
}

build_all_canisters() { # [variant names...] (default: all)
  build_assets
  build_stable
  local spec
  for spec in "${CALIB_VARIANTS[@]}"; do
    if [ $# -eq 0 ] || [[ " $* " == *" ${spec%%|*} "* ]]; then build_calib "$spec"; fi
  done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  if [ "${1:-}" = stable ]; then build_stable; else build_all_canisters "$@"; fi
  ls -l "$BENCH_WASM_DIR"
fi
