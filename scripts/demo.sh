#!/usr/bin/env bash
# keepsake main job, one command on a fresh machine: builds the canister Wasm and the
# keepsake CLI, generates a sample photo, uploads it with real derivatives into the
# embedded canister (state in a temp folder), lists it, fetches it back, verifies it
# byte for byte, and prints the canister's figures.
#   bash scripts/demo.sh            (KEEP=1 keeps the temp folder)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$HERE"
while [ ! -f "$ROOT/backend.did" ] && [ "$ROOT" != / ]; do ROOT="$(dirname "$ROOT")"; done
[ -f "$ROOT/backend.did" ] || { echo "demo.sh: cannot find the repository root" >&2; exit 1; }

echo "== building the canister (scripts/build.sh)"
bash "$ROOT/scripts/build.sh"

echo "== building the keepsake CLI"
cargo build -q --locked --manifest-path "$ROOT/Cargo.toml" -p keepsake --bin keepsake
keepsake() { cargo run -q --locked --manifest-path "$ROOT/Cargo.toml" -p keepsake --bin keepsake -- "$@"; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/keepsake-demo.XXXXXX")"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$WORK"' EXIT
export KEEPSAKE_STATE="$WORK/.keepsake"
export KEEPSAKE_WASM="$ROOT/target/canister/backend.wasm"

echo "== a sample photo"
keepsake sample-photo "$WORK/sunset.jpg"

echo "== upload with derivatives (display 2048 px, thumbnail 512 px, placeholder 32 px)"
keepsake upload "$WORK/sunset.jpg" --derivatives --title "Sunset (sample)" --json > "$WORK/upload.json"
MEMORY="$(grep -o '"memory_id":[0-9]*' "$WORK/upload.json" | head -1 | cut -d: -f2)"
[ -n "$MEMORY" ] || { echo "demo.sh: no memory id in $(cat "$WORK/upload.json")" >&2; exit 1; }
echo "memory $MEMORY"

echo "== ls"
keepsake ls

echo "== get (SHA-256 verified) and compare"
keepsake get "$MEMORY" -o "$WORK/back.jpg"
cmp "$WORK/sunset.jpg" "$WORK/back.jpg"
echo "byte-identical: $WORK/back.jpg == $WORK/sunset.jpg"
keepsake get "$MEMORY" --asset thumbnail -o "$WORK/thumb.jpg"
keepsake get "$MEMORY" --asset placeholder -o "$WORK/placeholder.jpg"

echo "== stats"
keepsake stats
echo "demo OK"
