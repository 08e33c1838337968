#!/usr/bin/env bash
# What an upload costs: the keepsake backend against the floor (Candid decode + SHA-256)
# and against DFINITY's asset canister, in the embedded IC host (crates/ic-host).
#
#   bash scripts/bench.sh           full run (1 MB .. 1 GB files; several minutes)
#   bash scripts/bench.sh --smoke   tiny files, a few seconds once built (CI runs it)
#   bash scripts/bench.sh --canbench   only the calibration against stable-structures'
#                                      canbench results (add --smoke for a few of them)
#   bash scripts/bench.sh --scale      only the per-call costs, heap, upgrade cost and the
#                                      first verified response after it at 1k, 10k and
#                                      100k memories (writes its section of bench/scale.md;
#                                      ~20 min); --smoke runs it at 100 and 1,000
#   bash scripts/bench.sh --scale-responses   a canister filled to 1 M certified responses
#                                      (125 memories of 4 assets over a 2,000-part blob;
#                                      slow, each create ~9 B instructions; writes its
#                                      section of bench/scale.md); combines with --scale;
#                                      --smoke runs it over a 20-part blob
#
# Prints the report and writes bench/report.md + bench/upload-instructions.png at the
# repo root (--smoke writes to target/bench/smoke/ instead, unless BENCH_OUT is set).
# Environment: KEEPSAKE_WASM = a backend Wasm to measure instead of building it with
# scripts/build.sh; BENCH_TARGET_DIR = where the fixture canisters and the bench binary
# are built (default target/bench; the bench binary itself shares the workspace target);
# BENCH_NO_VARIANTS=1 skips building and measuring the backend with -C target-feature=+simd128.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/crates/bench"
cd "$ROOT"

SMOKE=0
CANBENCH=0
SCALE=0
SCALE_RESPONSES=0
for a in "$@"; do
  case "$a" in
    --smoke) SMOKE=1 ;;
    --canbench) CANBENCH=1 ;;
    --scale) SCALE=1 ;;
    --scale-responses) SCALE_RESPONSES=1 ;;
    *) echo "usage: bash scripts/bench.sh [--smoke] [--canbench | --scale | --scale-responses]" >&2; exit 2 ;;
  esac
done

export BENCH_TARGET_DIR="${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/bench}"
export BENCH_WASM_DIR="$BENCH_TARGET_DIR/wasm"
source "$HERE/build-canisters.sh"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

if [ "$CANBENCH" = 1 ]; then
  build_stable
  FLAGS=(--canbench --wasm-dir "$BENCH_WASM_DIR")
  if [ "$SMOKE" = 1 ]; then FLAGS+=(--smoke); fi
  exec cargo run --quiet --locked -p keepsake-bench -- "${FLAGS[@]}"
fi

if [ "$SCALE" = 1 ] || [ "$SCALE_RESPONSES" = 1 ]; then
  bash scripts/build.sh >&2
  FLAGS=(--backend "$ROOT/target/canister/backend.wasm" --out "${BENCH_OUT:-$ROOT/bench}")
  if [ "$SCALE" = 1 ]; then FLAGS+=(--scale); fi
  if [ "$SCALE_RESPONSES" = 1 ]; then FLAGS+=(--scale-responses); fi
  if [ "$SMOKE" = 1 ]; then FLAGS+=(--smoke); fi
  export IC_HOST_CACHE_DIR="${IC_HOST_CACHE_DIR:-$BENCH_TARGET/ic-host-cache}"
  exec cargo run --quiet --locked -p keepsake-bench -- "${FLAGS[@]}"
fi

echo "bench: building the fixture canisters" >&2
if [ "$SMOKE" = 1 ]; then
  build_all_canisters z-hash3 # the backend's build settings only
else
  build_all_canisters
  build_assets_all_z
fi

# The backend as scripts/build.sh builds it today.
if [ -n "${KEEPSAKE_WASM:-}" ]; then
  BACKEND="$KEEPSAKE_WASM"
else
  echo "bench: building the backend (scripts/build.sh)" >&2
  bash scripts/build.sh >&2
  BACKEND="$ROOT/target/canister/backend.wasm"
fi

ARGS=(--wasm-dir "$BENCH_WASM_DIR" --backend "$BACKEND")
if [ "$SMOKE" = 1 ]; then
  ARGS+=(--smoke --out "${BENCH_OUT:-$BENCH_TARGET/smoke}")
else
  ARGS+=(--out "${BENCH_OUT:-$ROOT/bench}")
  if [ "${BENCH_NO_VARIANTS:-0}" != 1 ]; then
    # For comparison: the same backend with Wasm SIMD (.cargo/config.toml leaves it off).
    echo "bench: building the backend with simd128" >&2
    RUSTFLAGS="-C target-feature=+simd128" cargo build --quiet --locked --release \
      --target wasm32-unknown-unknown -p backend --target-dir "$BENCH_TARGET/backend-simd"
    source scripts/tools.sh
    SIMD_WASM="$BENCH_WASM_DIR/backend-simd.wasm"
    "$(ensure_ic_wasm)" "$BENCH_TARGET/backend-simd/wasm32-unknown-unknown/release/backend.wasm" -o "$SIMD_WASM" shrink
    ARGS+=(--backend-variant "simd128=$SIMD_WASM=z-hash3-simd")
  fi
fi

echo "bench: building and running keepsake-bench" >&2
# ic-host caches compiled modules under the target dir: a second run skips compilation.
export IC_HOST_CACHE_DIR="${IC_HOST_CACHE_DIR:-$BENCH_TARGET/ic-host-cache}"
cargo run --quiet --locked -p keepsake-bench -- "${ARGS[@]}"
if [ "$SMOKE" = 1 ]; then
  # The page store's durability figures (scripts/bench-store.sh runs them in full).
  STORE_DIR="$BENCH_TARGET/store-smoke"
  cargo run --quiet --locked -p keepsake-bench -- --backend "$BACKEND" --store "$STORE_DIR" --smoke
  rm -rf "$STORE_DIR"
  # Per-call costs as a capsule fills (bash scripts/bench.sh --scale runs them to 100k).
  cargo run --quiet --locked -p keepsake-bench -- --backend "$BACKEND" --scale --scale-responses --smoke
fi
