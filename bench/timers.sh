#!/usr/bin/env bash
# Durable timer benchmarks ("Issue 14: timers" in docs/benchmarks.md), on
# the embedded store and on PostgreSQL, each on a fresh server and store:
#   - 10,000 one-shot timers due in the same second: time until all fired,
#     firing rate, lateness p50/p99 (`cairn bench --workload timers`);
#   - the server's resident memory with no timer, then after each quarter
#     of up to 1,000,000 pending one-shot timers far in the future (each
#     quarter created in at most --pending-secs / 4 seconds, by
#     `--workload timers-pending`), and again after a restart with all of
#     them pending: memory that stays flat while the count grows is bounded.
# Every process started here is stopped by its PID on exit.
#
# usage: bench/timers.sh [--timers N] [--pending N] [--pending-secs S] [--no-postgres] [--no-embedded]
#        defaults: 10000, 1000000, 600
# PostgreSQL: $CAIRN_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432/postgres),
# in which a database cairn_bench_timers_<pid> is created and dropped.
set -euo pipefail
cd "$(dirname "$0")/.."
TIMERS=10000
PENDING=1000000
PENDING_SECS=600
POSTGRES=1
EMBEDDED=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --timers) TIMERS="$2"; shift 2 ;;
    --pending) PENDING="$2"; shift 2 ;;
    --pending-secs) PENDING_SECS="$2"; shift 2 ;;
    --no-postgres) POSTGRES=0; shift ;;
    --no-embedded) EMBEDDED=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cargo build --release --quiet -p cairn-cli
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"
PORT=17795
URL="http://127.0.0.1:$PORT"
TMP="$(mktemp -d /tmp/cairn-timers-bench.XXXXXX)"
ADMIN_URL="${CAIRN_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432/postgres}"
DB="cairn_bench_timers_$$"
SERVER_PID=""
DB_CREATED=0

cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  if [[ $DB_CREATED == 1 ]]; then psql -X -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

start_server() {
  [[ -n "${KEEP_DATA:-}" ]] || rm -rf "$TMP/data"
  "$BIN" serve --data "$TMP/data" --listen "127.0.0.1:$PORT" "$@" >/dev/null 2>>"$TMP/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 3000); do
    if curl -sf "$URL/v1/health" >/dev/null; then return 0; fi
    sleep 0.01
  done
  echo "server did not start" >&2; tail "$TMP/server.log" >&2; exit 1
}
stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }
rss_mib() { echo $(( $(awk '/VmRSS/ {print $2}' "/proc/$SERVER_PID/status") / 1024 )); }

run_backend() {
  local backend="$1"; shift
  start_server "$@"
  echo "cairn backend=$backend scenario=same_second $("$BIN" bench --server "$URL" --workload timers --preload "$TIMERS" --clients 32 --duration 60 2>/dev/null | tr '\n' ' ')"
  stop_server
  start_server "$@"
  sleep 2
  local idle; idle=$(rss_mib)
  echo "cairn backend=$backend scenario=pending step=0 rss_mib=$idle"
  for step in 1 2 3 4; do
    local created; created=$("$BIN" bench --server "$URL" --workload timers-pending --preload $((PENDING / 4)) --clients 32 --duration $((PENDING_SECS / 4)) 2>/dev/null | tr '\n' ' ')
    sleep 2
    echo "cairn backend=$backend scenario=pending step=$step rss_mib=$(rss_mib) pending_gauge=$(curl -sf "$URL/metrics" | awk '/^cairn_timers_pending / {print $2}') $created"
  done
  stop_server
  # The same store again: what a restart with every timer pending costs.
  KEEP_DATA=1 start_server "$@"
  sleep 12
  echo "cairn backend=$backend scenario=pending step=restarted rss_mib=$(rss_mib) pending_gauge=$(curl -sf "$URL/metrics" | awk '/^cairn_timers_pending / {print $2}')"
  stop_server
}

echo "bench=cairn_timers timers=$TIMERS pending=$PENDING pending_secs=$PENDING_SECS date=$(date -u +%FT%TZ) cores=$(nproc) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
if [[ $EMBEDDED == 1 ]]; then run_backend embedded; fi
if [[ $POSTGRES == 1 ]]; then
  psql -X -q "$ADMIN_URL" -c "CREATE DATABASE $DB"
  DB_CREATED=1
  run_backend postgres --store "${ADMIN_URL%/*}/$DB"
fi
