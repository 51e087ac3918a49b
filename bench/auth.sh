#!/usr/bin/env bash
# What access control costs per request (issue 13): the same writes against
# `cairn serve` without and with `--auth` (a least-privilege token: write and
# read on `Bench.*`), in one run.
#
#  1. Instructions: the server runs under valgrind's callgrind with
#     instrumentation switched on only while the load runs (start-up and
#     shutdown are not counted); a fixed number of requests, so the count
#     per request is repeatable on this shared machine where wall-clock
#     throughput is not. Scenarios: 64 clients x 1 fact, 4 clients x
#     1,000-fact batches.
#  2. Throughput beside it: the same scenarios natively, plain and --auth
#     alternating, three rounds.
#
# usage: bench/auth.sh [--duration SECONDS] [--rounds N]  (defaults 10, 3)
# Output: key=value lines on stdout. Every process started here is stopped
# by its PID; the temporary directory is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=10
ROUNDS=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PORT=17796
TMP_PREFIX=cairn-bench-auth
source bench/lib.sh

# Requests per callgrind scenario (bounded; callgrind runs ~50x slower).
CALLGRIND_SINGLE_REQUESTS=6400
CALLGRIND_BATCH_REQUESTS=40

# Starts the server on a fresh data directory, with `--auth` and a token
# when $1 is "auth"; under callgrind (instrumentation off) when $2 is
# "callgrind". Sets SERVER_PID and TOKEN.
start_mode() {
  local mode="$1" tool="${2:-}"
  rm -rf "$TMP/data"
  TOKEN=""
  local auth_args=()
  if [[ "$mode" == auth ]]; then
    TOKEN="$("$BIN" tokens create --data "$TMP/data" --name bench --write 'Bench.*' --read 'Bench.*' 2>/dev/null | tail -n 1)"
    auth_args=(--auth)
  fi
  local wrapper=()
  if [[ "$tool" == callgrind ]]; then
    wrapper=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out" -q)
  fi
  "${wrapper[@]}" "$BIN" serve --data "$TMP/data" --listen "127.0.0.1:$PORT" "${auth_args[@]}" >/dev/null 2>>"$TMP/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 6000); do
    if curl -sf "$URL/v1/health" >/dev/null; then return 0; fi
    sleep 0.02
  done
  echo "server did not start" >&2; tail "$TMP/server.log" >&2; exit 1
}

bench_args() {
  if [[ -n "$TOKEN" ]]; then echo "--token $TOKEN"; fi
}

# Instructions per request of one scenario: $1 mode, $2 clients, $3 batch,
# $4 requests.
callgrind_scenario() {
  local mode="$1" clients="$2" batch="$3" requests="$4"
  start_mode "$mode" callgrind
  callgrind_control -i on "$SERVER_PID" >/dev/null
  # shellcheck disable=SC2046
  "$BIN" bench --server "$URL" --clients "$clients" --batch "$batch" --duration 3600 \
    --requests-max "$requests" $(bench_args) >"$TMP/bench.txt" 2>/dev/null
  callgrind_control -d "$SERVER_PID" >/dev/null
  callgrind_control -i off "$SERVER_PID" >/dev/null
  stop_server
  local instructions
  # `totals:` of every dump (the `summary:` of the file written at exit
  # is not meaningful after instrumentation was switched on and off).
  instructions="$(cat "$TMP"/callgrind.out* | awk '/^totals:/ {s += $2} END {printf "%d", s}')"
  local done_requests
  done_requests="$(grep -o 'requests=[0-9]*' "$TMP/bench.txt" | head -1 | cut -d= -f2)"
  rm -f "$TMP"/callgrind.out*
  echo "auth_callgrind mode=$mode clients=$clients batch=$batch requests=$done_requests instructions=$instructions instructions_per_request=$((instructions / done_requests)) instructions_per_fact=$((instructions / done_requests / batch))"
}

throughput_scenario() {
  local mode="$1" clients="$2" batch="$3"
  start_mode "$mode"
  # shellcheck disable=SC2046
  local result
  result="$("$BIN" bench --server "$URL" --clients "$clients" --batch "$batch" --duration "$DURATION" \
    --requests-max 100000000 $(bench_args) 2>/dev/null | tr '\n' ' ')"
  stop_server
  echo "auth_throughput mode=$mode $result"
}

echo "bench=auth duration_s=$DURATION rounds=$ROUNDS date=$(date -u +%FT%TZ) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
for mode in plain auth; do
  callgrind_scenario "$mode" 64 1 "$CALLGRIND_SINGLE_REQUESTS"
  callgrind_scenario "$mode" 4 1000 "$CALLGRIND_BATCH_REQUESTS"
done
[[ "${CAIRN_BENCH_CALLGRIND_ONLY:-}" == 1 ]] && exit 0
for _ in $(seq 1 "$ROUNDS"); do
  for mode in plain auth; do
    throughput_scenario "$mode" 64 1
    throughput_scenario "$mode" 4 1000
  done
done
echo "bench=auth end loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
