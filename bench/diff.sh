#!/usr/bin/env bash
# `cairn diff` benchmark ("Issue 15: replication", "cairn diff" in
# docs/benchmarks.md): two embedded servers on loopback, the same
# --facts facts (default 1,000,000) written to both, then --extra facts
# (default 50) written to each alone, so they differ by 2 x --extra; then
# `cairn diff` (release build) is timed --runs times (wall clock of the
# whole command, process start included) and its exit status and counts
# are checked. Every process started here is stopped by its PID on exit.
#
# usage: bench/diff.sh [--facts N] [--extra N] [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
FACTS=1000000
EXTRA=50
RUNS=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --facts) FACTS="$2"; shift 2 ;;
    --extra) EXTRA="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet -p cairn-cli
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"
PORT_A=17796
PORT_B=17797
URL_A="http://127.0.0.1:$PORT_A"
URL_B="http://127.0.0.1:$PORT_B"
TMP="$(mktemp -d /tmp/cairn-diff-bench.XXXXXX)"
PID_A=""
PID_B=""

cleanup() {
  for pid in "$PID_A" "$PID_B"; do
    if [[ -n "$pid" ]]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

# start_server NAME PORT: starts `cairn serve` on $TMP/NAME; prints its PID.
start_server() {
  "$BIN" serve --data "$TMP/$1" --listen "127.0.0.1:$2" >/dev/null 2>>"$TMP/$1.log" &
  local pid=$!
  for _ in $(seq 1 3000); do
    if curl -sf "http://127.0.0.1:$2/v1/health" >/dev/null; then echo "$pid"; return 0; fi
    sleep 0.01
  done
  echo "server $1 did not start" >&2; tail "$TMP/$1.log" >&2; exit 1
}
PID_A=$(start_server a "$PORT_A")
PID_B=$(start_server b "$PORT_B")

# Batches of 1,000 facts as request bodies: the shared ones, then each side's own.
mkdir -p "$TMP/batches/shared" "$TMP/batches/a" "$TMP/batches/b"
python3 - "$TMP/batches" "$FACTS" "$EXTRA" <<'PY'
import json, sys
out, facts, extra = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def write(path, items):
    with open(path, "w") as f:
        json.dump({"facts": [{"type": "Bench.Diff", "fields": {"n": n}, "predecessors": {}} for n in items]}, f)
for start in range(0, facts, 1000):
    write(f"{out}/shared/{start:09d}.json", range(start, min(start + 1000, facts)))
write(f"{out}/a/extra.json", [f"a-{n}" for n in range(extra)])
write(f"{out}/b/extra.json", [f"b-{n}" for n in range(extra)])
PY

# post_all URL DIR: posts every batch of DIR, 4 at a time; fails on any non-200.
post_all() {
  find "$2" -name '*.json' -print0 | sort -z \
    | xargs -0 -P 4 -I{} curl -sf -o /dev/null -H 'content-type: application/json' --data-binary @{} "$1/v1/facts"
}
load_started=$(date +%s%N)
post_all "$URL_A" "$TMP/batches/shared" & LOAD_A=$!
post_all "$URL_B" "$TMP/batches/shared" & LOAD_B=$!
wait "$LOAD_A"; wait "$LOAD_B"
post_all "$URL_A" "$TMP/batches/a"
post_all "$URL_B" "$TMP/batches/b"
load_s=$(( ($(date +%s%N) - load_started) / 1000000000 ))
echo "loaded $FACTS shared facts into both and $EXTRA into each alone in ${load_s} s"

times=()
for run in $(seq 1 "$RUNS"); do
  started=$(date +%s%N)
  status=0
  "$BIN" diff "$URL_A" "$URL_B" --json > "$TMP/diff.json" || status=$?
  elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
  if [[ $status != 1 ]]; then echo "cairn diff exited with $status, expected 1" >&2; cat "$TMP/diff.json" >&2; exit 1; fi
  python3 - "$TMP/diff.json" "$FACTS" "$EXTRA" "$run" "$elapsed_ms" <<'PY'
import json, sys
answer = json.load(open(sys.argv[1]))
facts, extra = int(sys.argv[2]), int(sys.argv[3])
assert len(answer["only_in_a"]) == extra and len(answer["only_in_b"]) == extra, answer
assert answer["count_a"] == facts + extra and answer["count_b"] == facts + extra, answer
print(f"run {sys.argv[4]}: {sys.argv[5]} ms wall ({answer['seconds'] * 1000:.0f} ms comparing, "
      f"{answer['requests']} requests), {len(answer['only_in_a'])} only in A, {len(answer['only_in_b'])} only in B")
PY
  times+=("$elapsed_ms")
done
sorted=$(printf '%s\n' "${times[@]}" | sort -n)
median=$(echo "$sorted" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
echo "cairn diff on two stores of $((FACTS + EXTRA)) facts differing by $((2 * EXTRA)): median ${median} ms of $RUNS runs (min $(echo "$sorted" | head -1), max $(echo "$sorted" | tail -1))"
