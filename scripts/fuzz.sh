#!/usr/bin/env bash
# Long, coverage-guided fuzzing of every endpoint: libFuzzer through cargo-fuzz, on
# stable Rust (RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its flags; no sanitizer). The
# target (fuzz/fuzz_targets/endpoints.rs) runs each input on the real canister Wasm in
# the embedded host and natively over the same code, whose coverage guides it. The CI
# slice (tests/fuzz_endpoints.rs) runs the same driver with a fixed seed and replays
# the corpus this keeps.
#
#   bash scripts/fuzz.sh [seconds]        default 1800
#
# New inputs that add coverage are merged into fuzz/corpus/endpoints (commit them);
# crashing inputs land in fuzz/artifacts/endpoints. The last lines give the figures.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
source scripts/tools.sh
SECS="${1:-1800}"

bash scripts/build.sh >/dev/null
CARGO_FUZZ="$(ensure_cargo_fuzz)"
export KEEPSAKE_WASM="$ROOT/target/canister/backend.wasm"
export RUSTC_BOOTSTRAP=1

cd fuzz
"$CARGO_FUZZ" build -s none endpoints
mkdir -p corpus/endpoints corpus/run
# Seeds: a few random inputs long enough for whole call sequences.
for i in $(seq 1 16); do
  [ -e "corpus/run/seed-$i" ] || head -c $((256 * i)) /dev/urandom > "corpus/run/seed-$i"
done
LOG="$ROOT/target/fuzz-endpoints.log"
set +e
"$CARGO_FUZZ" run -s none endpoints corpus/run corpus/endpoints -- \
  -max_total_time="$SECS" -max_len=4096 -len_control=0 -rss_limit_mb=6144 -print_final_stats=1 \
  2>&1 | tee "$LOG" | grep -E "^#[0-9]+[[:space:]]+(INITED|pulse|DONE)" | tail -n 3
STATUS=${PIPESTATUS[0]}
set -e
# Keep only inputs that add coverage, for CI to replay.
"$CARGO_FUZZ" run -s none endpoints -- -merge=1 corpus/endpoints corpus/run >/dev/null 2>&1 || true
rm -rf corpus/run

echo "---- figures ($SECS s) ----"
grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)" "$LOG" || true
LAST="$(grep -E "^#[0-9]+[[:space:]]" "$LOG" | tail -n 1 || true)"
echo "last status: $LAST"
echo "corpus kept for CI: $(ls corpus/endpoints | wc -l) inputs"
if [ "$STATUS" -ne 0 ]; then
  echo "fuzz.sh: libFuzzer found a failure (see $LOG and fuzz/artifacts/endpoints)" >&2
  exit "$STATUS"
fi
echo "failures: 0"
