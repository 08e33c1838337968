#!/usr/bin/env bash
# All the tests: builds the canister Wasm (the Wasm-level tests load it), then runs
# every test of the workspace.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/build.sh
cargo test --locked --workspace
