#!/usr/bin/env bash
# Heap profile of the server: ingests N facts (default 10 million) through
# HTTP batches of 1,000 over 4 connections into a server run under heaptrack,
# stops it with SIGTERM, restarts it under heaptrack on the same data, and
# prints for each run the peak heap, the peak RSS and the allocation sites
# that held the most memory at the peak. The profiled server is built with
# the system allocator (`--no-default-features`), since heaptrack follows
# malloc and mimalloc bypasses it. Loopback only; every process started here
# is stopped by PID on exit.
#
# usage: bench/heap.sh [--facts N] [--keep DIR]   (defaults 10000000, no copy)
#   --keep DIR   copy the two heaptrack files to DIR (view with heaptrack_gui
#                or heaptrack_print)
set -euo pipefail
cd "$(dirname "$0")/.."
FACTS=10000000
KEEP=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --facts) FACTS="$2"; shift 2 ;;
    --keep) KEEP="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
command -v heaptrack >/dev/null || { echo "heaptrack is missing (apt-get install heaptrack)" >&2; exit 2; }
PORT=17795
TMP_PREFIX=cairn-heap
source bench/lib.sh
# lib.sh built the load generator with mimalloc; the profiled server is a
# copy built without it. Building the default again afterwards puts the
# usual binary back for the other scripts.
cargo build --release --quiet -p cairn-cli --no-default-features
cp "$BIN" "$TMP/cairn-system-alloc"
cargo build --release --quiet -p cairn-cli
PROFILED="$TMP/cairn-system-alloc"

# Starts the profiled server under heaptrack, its output named after $1;
# sets SERVER_PID (heaptrack's wrapper execs into the server's process).
start_profiled() {
  heaptrack -o "$TMP/heap-$1" "$PROFILED" serve --data "$TMP/data" --listen "127.0.0.1:$PORT" \
    >"$TMP/heaptrack-$1.log" 2>>"$TMP/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 6000); do
    if curl -sf "$URL/v1/health" >/dev/null; then return 0; fi
    sleep 0.01
  done
  echo "server did not start" >&2; tail "$TMP/server.log" >&2; exit 1
}

# heaptrack's wrapper is a shell script that runs the program as its child:
# the server's own PID is the child of the wrapper's.
server_pid() { pgrep -P "$SERVER_PID" -f cairn-system-alloc | head -1; }

# Stops the profiled server with SIGTERM and waits until heaptrack has
# written its file (the wrapper exits after that).
stop_profiled() {
  kill "$(server_pid)"; wait "$SERVER_PID" || true; SERVER_PID=""
}
trap 'if [[ -n "$SERVER_PID" ]]; then kill "$(server_pid)" 2>/dev/null || true; fi; cleanup' EXIT

# Prints the summary and the 12 allocation sites with the largest peak.
report() {
  local file; file=$(ls "$TMP"/heap-"$1".*)
  heaptrack_print --file "$file" --print-peaks 1 --print-allocators 0 --print-temporary 0 \
    --print-leaks 0 --peak-limit 12 --print-histogram '' 2>/dev/null \
    | awk '/^PEAK MEMORY CONSUMERS/ {on=1} on' | head -150
  heaptrack_print --file "$file" --print-peaks 0 --print-allocators 0 --print-temporary 0 \
    --print-leaks 0 2>/dev/null | grep -E "^(peak heap memory consumption|peak RSS|total memory leaked|calls to allocation functions)"
  if [[ -n "$KEEP" ]]; then mkdir -p "$KEEP"; cp "$file" "$KEEP/"; fi
}

echo "bench=heap facts=$FACTS date=$(date -u +%FT%TZ) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
start_profiled ingest
"$BIN" bench --server "$URL" --clients 4 --batch 1000 --requests-max $((FACTS / 1000)) --duration 100000 2>/dev/null \
  | tr '\n' ' ' | sed 's/^/heap ingest /'; echo
echo "heap ingest peak_rss_mib=$(( $(awk '/VmHWM/ {print $2}' /proc/"$(server_pid)"/status) / 1024 ))"
stop_profiled
echo "== ingest of $FACTS facts"; report ingest
start_profiled restart
echo "heap restart rss_mib=$(( $(awk '/VmRSS/ {print $2}' /proc/"$(server_pid)"/status) / 1024 ))"
stop_profiled
echo "== restart on $FACTS facts"; report restart
echo "bench=heap done=1 loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
