#!/usr/bin/env bash
# Builds the canisters, backend then directory: release Wasm (size-optimised; sha2 at opt-level 3),
# shrunk with ic-wasm, `candid:service` metadata embedded, gzipped at the path dfx.json
# names. Installs what it needs (the wasm32 target, ic-wasm from npm) on first run.
# Safe to run concurrently (tests build from several threads): runs take turns on a lock,
# and every output appears by rename, so a reader never sees a half-written Wasm.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/tools.sh

TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT_DIR="$ROOT/target/canister"
mkdir -p "$OUT_DIR"
exec 9>"$OUT_DIR/.build.lock"
flock 9

ensure_wasm_target
IC_WASM="$(ensure_ic_wasm)"

# build_canister PACKAGE DID: release Wasm, shrunk, `candid:service` embedded, gzipped.
build_canister() {
  local pkg="$1" did="$2"
  cargo build --locked --release --target wasm32-unknown-unknown -p "$pkg"
  local raw="$TARGET_DIR/wasm32-unknown-unknown/release/$pkg.wasm"
  local wasm="$OUT_DIR/$pkg.wasm" tmp="$OUT_DIR/.$pkg.wasm.tmp"
  "$IC_WASM" "$raw" -o "$tmp" shrink
  "$IC_WASM" "$tmp" -o "$tmp" metadata candid:service -f "$did" -v public
  # The Wasm must advertise exactly the checked-in interface.
  # ($(...) drops trailing newlines on both sides; ic-wasm prints one extra.)
  if [ "$("$IC_WASM" "$tmp" metadata candid:service)" != "$(cat "$did")" ]; then
    echo "build.sh: candid:service in $pkg.wasm differs from $did" >&2
    exit 1
  fi
  gzip -n -9 -c "$tmp" > "$tmp.gz"
  mv -f "$tmp.gz" "$wasm.gz"
  mv -f "$tmp" "$wasm"
  echo "built $wasm.gz ($(stat -c %s "$wasm") bytes raw, $(stat -c %s "$wasm.gz") gzipped)"
}

build_canister backend backend.did
build_canister directory crates/directory/directory.did
