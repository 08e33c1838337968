#!/usr/bin/env bash
# Builds the canisters, backend then directory: release Wasm (size-optimised; sha2 at opt-level 3),
# shrunk with ic-wasm, `candid:service` metadata embedded, gzipped at the path dfx.json
# names. Installs what it needs (the wasm32 target, ic-wasm from npm) on first run.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/tools.sh

ensure_wasm_target
IC_WASM="$(ensure_ic_wasm)"

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT_DIR="$ROOT/target/canister"
mkdir -p "$OUT_DIR"


# build_canister PACKAGE DID: release Wasm, shrunk, `candid:service` embedded, gzipped.
build_canister() {
  local pkg="$1" did="$2"
  cargo build --locked --release --target wasm32-unknown-unknown -p "$pkg"
  local raw="$TARGET_DIR/wasm32-unknown-unknown/release/$pkg.wasm"
  local wasm="$OUT_DIR/$pkg.wasm"
  "$IC_WASM" "$raw" -o "$wasm" shrink
  "$IC_WASM" "$wasm" -o "$wasm" metadata candid:service -f "$did" -v public
  # The Wasm must advertise exactly the checked-in interface.
  # ($(...) drops trailing newlines on both sides; ic-wasm prints one extra.)
  if [ "$("$IC_WASM" "$wasm" metadata candid:service)" != "$(cat "$did")" ]; then
    echo "build.sh: candid:service in $pkg.wasm differs from $did" >&2
    exit 1
  fi
  gzip -n -9 -c "$wasm" > "$wasm.gz"
  echo "built $wasm.gz ($(stat -c %s "$wasm") bytes raw, $(stat -c %s "$wasm.gz") gzipped)"
}

build_canister backend backend.did
build_canister directory crates/directory/directory.did
