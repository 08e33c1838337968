#!/usr/bin/env bash
# Builds the backend canister: release Wasm (size-optimised; sha2 at opt-level 3),
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

cargo build --locked --release --target wasm32-unknown-unknown -p backend
RAW="$TARGET_DIR/wasm32-unknown-unknown/release/backend.wasm"
WASM="$OUT_DIR/backend.wasm"

"$IC_WASM" "$RAW" -o "$WASM" shrink
"$IC_WASM" "$WASM" -o "$WASM" metadata candid:service -f backend.did -v public

# The Wasm must advertise exactly the checked-in interface.
# ($(...) drops trailing newlines on both sides; ic-wasm prints one extra.)
if [ "$("$IC_WASM" "$WASM" metadata candid:service)" != "$(cat backend.did)" ]; then
  echo "build.sh: candid:service in the Wasm differs from backend.did" >&2
  exit 1
fi

gzip -n -9 -c "$WASM" > "$WASM.gz"
echo "built $WASM.gz ($(stat -c %s "$WASM") bytes raw, $(stat -c %s "$WASM.gz") gzipped)"
