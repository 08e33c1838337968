#!/usr/bin/env bash
# The embedded host's page store, measured as a user runs the release CLI: wall time
# and peak RSS (/usr/bin/time -v) of `keepsake upload`, `ls` and `get` for a 1 GB and a
# 4 GB file, `ls` with nothing stored and with 10 GB stored; then what durability costs
# per committed message (keepsake-bench --store).
#
#   bash scripts/bench-store.sh           full run (about 15 GB of scratch disk, minutes)
#   bash scripts/bench-store.sh --quick   100 MB and 400 MB files, 1 GB stored
#
# Prints the report and writes bench/store.md ($BENCH_OUT/store.md if set). Scratch
# files go to ${BENCH_STORE_DIR:-target/bench/store} and are removed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

QUICK=0
for a in "$@"; do
  case "$a" in
    --quick) QUICK=1 ;;
    *) echo "usage: bash scripts/bench-store.sh [--quick]" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then
  SMALL=100000000; LARGE=400000000; FILL=5
else
  SMALL=1000000000; LARGE=4000000000; FILL=5
fi

[ -x /usr/bin/time ] || { echo "bench-store: needs /usr/bin/time (Debian package 'time')" >&2; exit 1; }
echo "bench-store: building the canister and the release CLI" >&2
bash scripts/build.sh >&2
cargo build --release --locked -p keepsake -p keepsake-bench >&2
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
KS="$TARGET/release/keepsake"
WASM="$TARGET/canister/backend.wasm"
WORK="${BENCH_STORE_DIR:-$TARGET/bench/store}"
OUT="${BENCH_OUT:-$ROOT/bench}"
rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
trap 'rm -rf "$WORK"' EXIT
ROWS="$WORK/rows.md"
: > "$ROWS"

# run LABEL ARGS...: the CLI under /usr/bin/time -v; one table row; stdout in $WORK/out.json
run() {
  local label="$1"; shift
  /usr/bin/time -v -o "$WORK/time.txt" "$KS" --state "$WORK/state" --wasm "$WASM" --json "$@" > "$WORK/out.json"
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ { n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; printf "%.1f", s }' "$WORK/time.txt")
  rss=$(awk -F': ' '/Maximum resident set size/ { printf "%.0f", $2 / 1024 }' "$WORK/time.txt")
  echo "| $label | $wall s | $rss MB |" | tee -a "$ROWS" >&2
}

gen() { head -c "$2" /dev/urandom > "$1"; }
memory_of() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"][0]["memory_id"])' "$WORK/out.json"; }
stored() { "$KS" --state "$WORK/state" --wasm "$WASM" --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["stats"]["blob_bytes"])'; }
human() { python3 -c 'import sys; n=int(sys.argv[1]); print(f"{n/1e9:.1f} GB" if n >= 1e9 else f"{n/1e6:.0f} MB")' "$1"; }

# Durability first, on a quiet disk (the big uploads leave gigabytes to write back).
echo "bench-store: durability per committed message" >&2
DURABILITY=$("$TARGET/release/keepsake-bench" --backend "$WASM" --store "$WORK/durability" $([ "$QUICK" = 1 ] && echo --smoke))
rm -rf "$WORK/durability"

"$KS" --state "$WORK/state" --wasm "$WASM" --json stats > /dev/null # installs the canister
run "\`ls\`, nothing stored" ls

for size in "$SMALL" "$LARGE"; do
  name="$(human "$size")"
  gen "$WORK/file.bin" "$size"
  sum=$(sha256sum < "$WORK/file.bin")
  run "\`upload\` a $name file" upload "$WORK/file.bin"
  rm -f "$WORK/file.bin" # (scratch disk: the original is not kept, its digest is)
  id=$(memory_of)
  run "\`ls\` afterwards" ls
  run "\`get\` the $name file" get "$id" -o "$WORK/back.bin"
  [ "$(sha256sum < "$WORK/back.bin")" = "$sum" ] || { echo "bench-store: the $name file did not read back identical" >&2; exit 1; }
  rm -f "$WORK/back.bin"
done

for i in $(seq 1 "$FILL"); do
  gen "$WORK/fill.bin" "$SMALL"
  "$KS" --state "$WORK/state" --wasm "$WASM" --json upload "$WORK/fill.bin" > /dev/null
  rm -f "$WORK/fill.bin"
done
run "\`ls\` with $(human "$(stored)") stored" ls
du_state=$(du -sb "$WORK/state" | cut -f1)


{
  echo "# The embedded host's page store"
  echo
  echo "Release CLI, embedded mode, \`/usr/bin/time -v\` (wall time, maximum resident set size);"
  echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM. Made by \`bash scripts/bench-store.sh$([ "$QUICK" = 1 ] && echo " --quick")\`."
  echo
  echo "| step | wall time | peak RSS |"
  echo "|---|---:|---:|"
  cat "$ROWS"
  echo
  echo "State folder at the end: $(human "$du_state") on disk for $(human "$(stored)") of blobs."
  echo
  echo "Before the page store (issue 9, same machine class): \`upload\` 1 GB 15.2 s / 1.15 GB,"
  echo "\`ls\` afterwards 2.2 s / 1.1 GB, \`get\` 1 GB 190 s / 7.1 GB."
  echo
  echo "$DURABILITY"
} > "$OUT/store.md"
cat "$OUT/store.md"
echo "bench-store: wrote $OUT/store.md" >&2
