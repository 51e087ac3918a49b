#!/usr/bin/env bash
# Scale benchmark: ingests N facts (default 10 million, 256-byte fields) into
# a fresh server through HTTP batches of 1,000 over 4 connections, then
# reports peak server memory, disk use against canonical bytes, restart time
# (after SIGTERM and after kill -9), point reads on the full store and a
# successors query of 1,000 facts. Loopback only; every process started here
# is stopped by PID on exit.
#
# usage: bench/scale.sh [--facts N] [--duration SECONDS]   (defaults 10000000, 20)
set -euo pipefail
cd "$(dirname "$0")/.."
FACTS=10000000
DURATION=20
while [[ $# -gt 0 ]]; do
  case "$1" in
    --facts) FACTS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PORT=17791
TMP_PREFIX=cairn-scale
source bench/lib.sh

echo "bench=scale facts=$FACTS date=$(date -u +%FT%TZ) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
start_server
INGEST_STARTED=$(date +%s)
"$BIN" bench --server "$URL" --clients 4 --batch 1000 --requests-max $((FACTS / 1000)) --duration 100000 2>/dev/null \
  | tr '\n' ' ' | sed 's/^/scale ingest /'; echo
INGEST_SECONDS=$(( $(date +%s) - INGEST_STARTED ))
PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' /proc/$SERVER_PID/status)
CANONICAL_BYTES=$(metric cairn_fact_bytes_written_total)
LAST_SEQ=$(metric cairn_store_last_seq)
echo "scale ingest_seconds=$INGEST_SECONDS last_seq=$LAST_SEQ peak_rss_mib=$((PEAK_RSS_KB / 1024)) canonical_mib=$((CANONICAL_BYTES / 1048576))"
"$BIN" bench --server "$URL" --workload get --clients 32 --duration "$DURATION" 2>/dev/null | tr '\n' ' ' | sed 's/^/scale read /'; echo
"$BIN" bench --server "$URL" --workload successors --clients 1 --batch 1000 --duration "$DURATION" 2>/dev/null | tr '\n' ' ' | sed 's/^/scale successors /'; echo
PEAK_RSS_KB=$(awk '/VmHWM/ {print $2}' /proc/$SERVER_PID/status)
kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
DISK_BYTES=$(du -sb "$TMP/data" | cut -f1)
echo "scale peak_rss_mib_after_reads=$((PEAK_RSS_KB / 1024)) disk_mib=$((DISK_BYTES / 1048576)) disk_over_canonical=$(awk -v d="$DISK_BYTES" -v c="$CANONICAL_BYTES" 'BEGIN{printf "%.2f", d/c}')"
start_server
echo "scale restart_after_sigterm_ms=$READY_MS rss_mib_after_restart=$(( $(awk '/VmRSS/ {print $2}' /proc/$SERVER_PID/status) / 1024 ))"
# Write more so the journal holds unflushed data, then crash and restart.
"$BIN" bench --server "$URL" --clients 4 --batch 1000 --requests-max 200 --duration 60 2>/dev/null | tr '\n' ' ' | sed 's/^/scale before_kill9 /'; echo
kill -9 "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true; SERVER_PID=""
start_server
echo "scale restart_after_kill9_ms=$READY_MS last_seq=$(metric cairn_store_last_seq)"
kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
echo "bench=scale done=1 loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
