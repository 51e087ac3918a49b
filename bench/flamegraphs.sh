#!/usr/bin/env bash
# Flame graphs of the server's write, read and consume paths (issue 18): a
# fresh `cairn serve` (release build, with debug line tables) is sampled
# with `perf record` (software clock, DWARF call graphs) while `cairn
# bench` drives one path at a time, and inferno turns each profile into an
# SVG. The load generator is not sampled, only the server.
#
#   write    4 clients × 1,000-fact batches
#   read     GET /v1/facts/{hash}, 32 clients, on the store the write left
#   consume  pull 1,000 and ack, 4 consumers, over a preloaded backlog of
#            1,000,000 messages (sampled once the preload is written)
#
# usage: bench/flamegraphs.sh [--seconds S] [--out DIR]   (defaults 10, bench/results)
# needs perf (Debian's linux-perf) and inferno (`cargo install inferno`,
# done here when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_SAMPLED=10
OUT_DIR=bench/results
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) SECONDS_SAMPLED="$2"; shift 2 ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PORT=17794
TMP_PREFIX=cairn-flame
source bench/lib.sh
command -v perf >/dev/null || { echo "perf is missing (Debian package linux-perf)" >&2; exit 1; }
command -v inferno-flamegraph >/dev/null || cargo install --quiet --locked inferno
mkdir -p "$OUT_DIR"

# profile NAME FACTS_BEFORE BENCH_ARGS...: starts the bench, waits until
# the server has written FACTS_BEFORE new facts in all (a preload) and two
# more seconds, samples the server, then writes $OUT_DIR/flame-NAME.svg.
profile() {
  local name="$1" facts_before="$2"; shift 2
  "$BIN" bench --server "$URL" --duration $((SECONDS_SAMPLED + 4)) "$@" > "$TMP/$name.txt" 2>/dev/null &
  local bench_pid=$!
  for _ in $(seq 1 600); do
    [[ "$(metric cairn_facts_written_total)" -ge "$facts_before" ]] && break
    sleep 0.5
  done
  sleep 2
  perf record -q -e cpu-clock -F 249 --call-graph dwarf,16384 -p "$SERVER_PID" -o "$TMP/$name.data" \
    -- sleep "$SECONDS_SAMPLED" 2>/dev/null
  wait "$bench_pid"
  perf script -i "$TMP/$name.data" 2>/dev/null | inferno-collapse-perf \
    | inferno-flamegraph --minwidth 0.5 --title "cairn serve: $name ($(tr '\n' ' ' < "$TMP/$name.txt" | cut -c1-120))" \
    > "$OUT_DIR/flame-$name.svg"
  echo "flame $name svg=$OUT_DIR/flame-$name.svg $(tr '\n' ' ' < "$TMP/$name.txt")"
}

start_server
profile write 0 --clients 4 --batch 1000
WRITTEN="$(metric cairn_facts_written_total)"
profile read "$WRITTEN" --workload get --clients 32
WRITTEN="$(metric cairn_facts_written_total)"
profile consume $((WRITTEN + 1000000)) --workload consume --clients 4 --batch 1000 --preload 1000000
stop_server
