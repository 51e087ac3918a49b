#!/usr/bin/env bash
# Saga throughput (issue 14): a release `cairn serve` on a fresh data
# directory, the checkout example's three services and its saga runner
# (separate processes), then `checkout bench`, which starts N good
# checkouts at once and reports three-step sagas completed per second.
# Every process started here is stopped by its PID on exit.
#
# usage: bench/sagas.sh [--sagas N] [--concurrency N]   (defaults 500, 64)
# Output: the bench's line, and one `sagas ...` key=value line.
set -euo pipefail
cd "$(dirname "$0")/.."
SAGAS=500
CONCURRENCY=64
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sagas) SAGAS="$2"; shift 2 ;;
    --concurrency) CONCURRENCY="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PORT=17795
TMP_PREFIX=cairn-sagas-bench
source bench/lib.sh
cargo build --release --quiet -p cairn-example-checkout
CHECKOUT="${CARGO_TARGET_DIR:-$PWD/target}/release/checkout"
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"
PIDS=()
stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  cleanup
}
trap stop_all EXIT

start_server
for service in stock payment shipping; do
  "$CHECKOUT" --cairn "$URL" service "$service" --effects "$TMP/$service.jsonl" 2>>"$TMP/$service.log" &
  PIDS+=($!)
done
"$CHECKOUT" --cairn "$URL" runner --concurrency "$CONCURRENCY" 2>>"$TMP/runner.log" &
PIDS+=($!)
echo "bench=sagas sagas=$SAGAS concurrency=$CONCURRENCY date=$(date -u +%FT%TZ) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
# The runner registers the definition as it starts; wait for it.
for _ in $(seq 1 600); do
  "$CHECKOUT" --cairn "$URL" place --order warm-up >/dev/null 2>&1 && break
  sleep 0.1
done
"$CHECKOUT" --cairn "$URL" bench --sagas "$SAGAS"
echo "sagas facts=$(metric cairn_facts_written_total) fsyncs=$(metric cairn_fsyncs_total)"
