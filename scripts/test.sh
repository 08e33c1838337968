#!/usr/bin/env bash
# All the tests: builds the canister Wasm (the Wasm-level tests load it), then runs
# every test of the workspace.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
bash scripts/build.sh
# agent-js (npm) for the tests that run it against `keepsake serve`.
source scripts/tools.sh
ensure_agent_js >/dev/null
if [ -n "${POCKET_IC_BIN:-}" ]; then
  # The Wasm-level suite also runs on PocketIC (its tests are ignored otherwise).
  cargo test --locked --workspace -- --include-ignored
else
  echo "POCKET_IC_BIN is not set: the PocketIC variants of the Wasm-level suite are skipped (ignored)."
  cargo test --locked --workspace
fi
