#!/usr/bin/env bash
# Cairn's own benchmarks: durable writes over HTTP (1 client × 1 fact,
# 64 clients × 1 fact, 4 clients × 1,000-fact batches), embedded writes,
# and reads. Each write scenario gets a fresh server and data directory on
# loopback; every process started here is stopped by PID on exit.
#
# usage: bench/cairn.sh [--duration SECONDS]     (default 20)
# Output: one `cairn ...` key=value line per scenario on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=20
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PORT=17790
TMP_PREFIX=cairn-bench
source bench/lib.sh

# Starts a server on an empty data directory.
start_fresh_server() { rm -rf "$TMP/data"; start_server; }

# Prints the bench result as one line, prefixed, with the sync statistics.
run_bench() {
  local label="$1"; shift
  local result
  result="$("$BIN" bench --server "$URL" --duration "$DURATION" "$@" 2>/dev/null | tr '\n' ' ')"
  local syncs facts
  syncs="$(metric cairn_fsyncs_total)"
  facts="$(metric cairn_facts_written_total)"
  echo "cairn scenario=$label $result fsyncs=$syncs facts_per_fsync=$(awk -v f="$facts" -v s="$syncs" 'BEGIN{ if (s>0) printf "%.1f", f/s; else print 0 }')"
}

echo "bench=cairn duration_s=$DURATION date=$(date -u +%FT%TZ) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
start_fresh_server; run_bench http_1x1 --clients 1 --batch 1; stop_server
start_fresh_server; run_bench http_64x1 --clients 64 --batch 1; stop_server
start_fresh_server; run_bench http_4x1000 --clients 4 --batch 1000
run_bench http_get_32 --workload get --clients 32
run_bench http_successors_1000 --workload successors --clients 1 --batch 1000
stop_server
# The same single-fact writes driven by wrk (a lighter client than
# `cairn bench`, so less of the two cores goes to the load generator).
run_wrk() {
  local label="$1" connections="$2" threads="$3"
  start_fresh_server
  local out
  out="$(wrk -t"$threads" -c"$connections" -d"${DURATION}s" --latency -s bench/wrk-write.lua "$URL" 2>&1)"
  echo "cairn scenario=$label client=wrk connections=$connections requests_per_s=$(awk '/Requests\/sec/ {print $2}' <<<"$out") p50=$(awk '$1=="50%" {print $2}' <<<"$out") p99=$(awk '$1=="99%" {print $2}' <<<"$out") facts_written=$(metric cairn_facts_written_total) fsyncs=$(metric cairn_fsyncs_total)"
  stop_server
}
if command -v wrk >/dev/null; then
  run_wrk wrk_1x1 1 1
  run_wrk wrk_64x1 64 2
else
  echo "cairn scenario=wrk skipped=1 reason=no-wrk (apt-get install wrk)"
fi
echo "cairn scenario=embedded_4x1000 $("$BIN" bench --embedded "$TMP/embedded" --clients 4 --batch 1000 --duration "$DURATION" 2>/dev/null | tr '\n' ' ')"
echo "bench=cairn done=1 loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
