#!/usr/bin/env bash
# Cairn's delivery benchmarks: durable consumption (pull + durable ack, in
# batches) with 1 and 4 consumers, publish-to-handler latency at a fixed
# rate, and the server's peak memory while a backlog of a million messages
# waits and is consumed. Fresh server and data directory per scenario, on
# loopback; every process started here is stopped by PID on exit.
#
# usage: bench/delivery.sh [--messages N] [--backlog N] [--latency-secs S]
#        defaults: 200000 messages per consume run, 1000000 backlog, 10 s
# Output: one `cairn ...` key=value line per scenario on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
MESSAGES=200000
BACKLOG=1000000
LATENCY_SECS=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --messages) MESSAGES="$2"; shift 2 ;;
    --backlog) BACKLOG="$2"; shift 2 ;;
    --latency-secs) LATENCY_SECS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PORT=17791
TMP_PREFIX=cairn-delivery-bench
source bench/lib.sh

rss_mib() { echo $(( $(awk "/$1/ {print \$2}" /proc/$SERVER_PID/status) / 1024 )); }
bench_line() {
  local label="$1"; shift
  echo "cairn scenario=$label $("$BIN" bench --server "$URL" "$@" 2>/dev/null | tr '\n' ' ')"
}

echo "bench=cairn_delivery messages=$MESSAGES backlog=$BACKLOG date=$(date -u +%FT%TZ) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
start_fresh() { rm -rf "$TMP/data"; start_server; }
start_fresh; bench_line consume_1 --workload consume --clients 1 --batch 1000 --preload "$MESSAGES" --duration 120; stop_server
start_fresh; bench_line consume_4 --workload consume --clients 4 --batch 1000 --preload "$MESSAGES" --duration 120; stop_server
start_fresh; bench_line latency_1000 --workload latency --rate 1000 --batch 100 --duration "$LATENCY_SECS"; stop_server

# Memory with a large backlog: the consume workload preloads the backlog
# (the subscription exists first, so every message is pending for it),
# then drains it; the peak RSS covers both phases.
start_fresh
echo "cairn scenario=backlog_rss rss_mib_at_start=$(rss_mib VmRSS)"
bench_line backlog_consume --workload consume --clients 4 --batch 1000 --preload "$BACKLOG" --duration 600
echo "cairn scenario=backlog_rss peak_rss_mib=$(rss_mib VmHWM) rss_mib_after=$(rss_mib VmRSS)"
stop_server
echo "loadavg_1m_end=$(cut -d' ' -f1 /proc/loadavg)"
