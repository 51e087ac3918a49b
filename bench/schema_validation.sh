#!/usr/bin/env bash
# What schema validation costs (issue 16): writes of `Bench.Order` facts
# (`cairn bench --fact-shape order`: ten fields, a nested object, enums,
# patterns) with and without a schema for their type, in one run.
#
# Modes, each on a fresh server and data directory, so that every
# measurement starts from the same (empty) store and none profits or
# suffers from the facts an earlier one wrote:
#   plain   no schema registered at all;
#   schema  the realistic schema below registered as Bench.Order version 1
#           (every write is validated against it);
#   other   the same schema registered for another type (Bench.Other), so
#           the Bench.Order writes are of a type without a schema while the
#           registry is not empty.
# Scenarios: 64 clients x 1 fact, 4 clients x 1,000-fact batches.
#
#  1. Instructions (unless --no-callgrind): the server runs under
#     callgrind with instrumentation on only while a fixed number of
#     requests runs, in every mode; repeatable on this shared machine,
#     where wall-clock throughput is not.
#  2. Throughput: every mode and scenario natively for --duration seconds,
#     in the order plain, schema, other in odd rounds and the reverse in
#     even rounds (A B C C B A), so a drift of the machine's load over the
#     run does not favour one mode.
#
# usage: bench/schema_validation.sh [--duration SECONDS] [--rounds N] [--no-callgrind]
#        (defaults 20, 2)
# Output: key=value lines, then a summary table, on stdout. The server
# listens on a free loopback port; every process started here is stopped
# by its PID; the temporary directory is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=20
ROUNDS=2
CALLGRIND=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --rounds) ROUNDS="$2"; shift 2 ;;
    --no-callgrind) CALLGRIND=0; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if (( DURATION < 1 || DURATION > 600 || ROUNDS < 1 || ROUNDS > 10 )); then
  echo "--duration must be 1..600 and --rounds 1..10" >&2; exit 2
fi

cargo build --release --quiet -p cairn-cli
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"
TMP="$(mktemp -d /tmp/cairn-bench-schema.XXXXXX)"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
URL="http://127.0.0.1:$PORT"
SERVER_PID=""

cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# Requests per callgrind scenario (bounded; callgrind runs ~50x slower).
CALLGRIND_SINGLE_REQUESTS=6400
CALLGRIND_BATCH_REQUESTS=40

# The realistic schema of Bench.Order's fields: ten required members, no
# others, two enums, three patterns, integer ranges, and a nested address
# object with its own required members and no others.
cat >"$TMP/order-schema.json" <<'EOF'
{
  "schema": {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["order_id", "customer_id", "status", "currency", "total_cents",
                 "items_count", "express", "placed_at", "note", "shipping_address"],
    "additionalProperties": false,
    "properties": {
      "order_id": {"type": "string", "pattern": "^ORD-[0-9]+-[0-9]+-[0-9]+$", "maxLength": 64},
      "customer_id": {"type": "string", "pattern": "^CUST-[0-9]{6}$"},
      "status": {"enum": ["pending", "paid", "packed", "shipped", "delivered"]},
      "currency": {"type": "string", "enum": ["EUR", "USD", "GBP", "JPY"]},
      "total_cents": {"type": "integer", "minimum": 0, "maximum": 100000000},
      "items_count": {"type": "integer", "minimum": 1, "maximum": 1000},
      "express": {"type": "boolean"},
      "placed_at": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$"},
      "note": {"type": "string", "maxLength": 200},
      "shipping_address": {
        "type": "object",
        "required": ["street", "city", "postal_code", "country"],
        "additionalProperties": false,
        "properties": {
          "street": {"type": "string", "minLength": 1, "maxLength": 100},
          "city": {"type": "string", "minLength": 1, "maxLength": 60},
          "postal_code": {"type": "string", "pattern": "^[0-9A-Z -]{3,10}$"},
          "country": {"type": "string", "pattern": "^[A-Z]{2}$"}
        }
      }
    }
  },
  "compatibility": "none"
}
EOF

# A Bench.Order fact the schema refuses (a status outside the enum): the
# proof, in every schema run, that validation is on.
BAD_ORDER='{"facts":[{"type":"Bench.Order","predecessors":{},"fields":{"order_id":"ORD-1-1-1","customer_id":"CUST-000001","status":"lost","currency":"EUR","total_cents":1,"items_count":1,"express":false,"placed_at":"2026-11-01T00:00:00Z","note":"","shipping_address":{"street":"1 Road","city":"Lyon","postal_code":"69002","country":"FR"}}}]}'

# Starts a server on a fresh data directory, under callgrind (with
# instrumentation off) when $2 is "callgrind", and registers the schema as
# $1 asks: plain (none), schema (for Bench.Order), other (for Bench.Other).
start_mode() {
  local mode="$1" tool="${2:-}"
  rm -rf "$TMP/data"
  local wrapper=()
  if [[ "$tool" == callgrind ]]; then
    wrapper=(valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/callgrind.out" -q)
  fi
  "${wrapper[@]}" "$BIN" serve --data "$TMP/data" --listen "127.0.0.1:$PORT" >/dev/null 2>>"$TMP/server.log" &
  SERVER_PID=$!
  local ready=0
  for _ in $(seq 1 6000); do
    if curl -sf "$URL/v1/health" >/dev/null; then ready=1; break; fi
    sleep 0.02
  done
  if (( ! ready )); then echo "server did not start" >&2; tail "$TMP/server.log" >&2; exit 1; fi
  local type_name=""
  case "$mode" in
    schema) type_name=Bench.Order ;;
    other) type_name=Bench.Other ;;
  esac
  if [[ -n "$type_name" ]]; then
    curl -sf -X PUT "$URL/v1/schemas/$type_name/1" -H 'content-type: application/json' \
      --data-binary @"$TMP/order-schema.json" >/dev/null \
      || { echo "registering the schema for $type_name failed" >&2; exit 1; }
  fi
  if [[ "$mode" == schema ]]; then
    local status
    status="$(curl -s -o "$TMP/refused.json" -w '%{http_code}' -X POST "$URL/v1/facts" \
      -H 'content-type: application/json' --data-binary "$BAD_ORDER")"
    if [[ "$status" != 422 ]] || ! grep -q schema_violation "$TMP/refused.json"; then
      echo "the schema did not refuse a bad order (HTTP $status: $(cat "$TMP/refused.json"))" >&2; exit 1
    fi
  fi
}

stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
}

# Runs `cairn bench` writing orders; $1 clients, $2 batch, then more
# options. Fails the script if any request failed (a refused order would
# mean the generator and the schema disagree).
bench_orders() {
  local clients="$1" batch="$2"; shift 2
  local result
  result="$("$BIN" bench --server "$URL" --workload write --fact-shape order \
    --clients "$clients" --batch "$batch" "$@" 2>"$TMP/bench.err" | tr '\n' ' ')"
  if [[ "$result" != *" failed=0 "* ]]; then
    echo "bench requests failed: $result $(head -c 2000 "$TMP/bench.err")" >&2; exit 1
  fi
  echo "$result"
}

# Instructions per request of one scenario: $1 mode, $2 clients, $3 batch,
# $4 requests.
callgrind_scenario() {
  local mode="$1" clients="$2" batch="$3" requests="$4"
  start_mode "$mode" callgrind
  callgrind_control -i on "$SERVER_PID" >/dev/null
  bench_orders "$clients" "$batch" --duration 3600 --requests-max "$requests" >"$TMP/bench.txt"
  callgrind_control -d "$SERVER_PID" >/dev/null
  callgrind_control -i off "$SERVER_PID" >/dev/null
  stop_server
  local instructions done_requests
  # `totals:` of every dump (the `summary:` of the file written at exit
  # is not meaningful after instrumentation was switched on and off).
  instructions="$(cat "$TMP"/callgrind.out* | awk '/^totals:/ {s += $2} END {printf "%d", s}')"
  done_requests="$(grep -o 'requests=[0-9]*' "$TMP/bench.txt" | head -1 | cut -d= -f2)"
  rm -f "$TMP"/callgrind.out*
  echo "schema_callgrind mode=$mode clients=$clients batch=$batch requests=$done_requests instructions=$instructions instructions_per_request=$((instructions / done_requests)) instructions_per_fact=$((instructions / done_requests / batch))"
}

throughput_scenario() {
  local mode="$1" clients="$2" batch="$3"
  start_mode "$mode"
  local result
  result="$(bench_orders "$clients" "$batch" --duration "$DURATION" --requests-max 100000000)"
  stop_server
  echo "schema_throughput mode=$mode loadavg_1m=$(cut -d' ' -f1 /proc/loadavg) $result"
}

echo "bench=schema_validation duration_s=$DURATION rounds=$ROUNDS date=$(date -u +%FT%TZ) port=$PORT uptime=\"$(uptime)\""
if (( CALLGRIND )); then
  for mode in plain schema other; do
    callgrind_scenario "$mode" 64 1 "$CALLGRIND_SINGLE_REQUESTS" | tee -a "$TMP/lines.txt"
    callgrind_scenario "$mode" 4 1000 "$CALLGRIND_BATCH_REQUESTS" | tee -a "$TMP/lines.txt"
  done
fi
for round in $(seq 1 "$ROUNDS"); do
  modes=(plain schema other)
  if (( round % 2 == 0 )); then modes=(other schema plain); fi
  for mode in "${modes[@]}"; do
    throughput_scenario "$mode" 64 1 | tee -a "$TMP/lines.txt"
    throughput_scenario "$mode" 4 1000 | tee -a "$TMP/lines.txt"
  done
done
echo "bench=schema_validation end uptime=\"$(uptime)\""

# The summary: per scenario and mode, the mean facts/s over the rounds,
# the median p50 and p99 of the runs, and the ratio against plain; then
# the instructions per fact.
echo
awk '
  function value(key,   i, pair) {
    for (i = 1; i <= NF; i++) { split($i, pair, "="); if (pair[1] == key) return pair[2] }
    return ""
  }
  function median_of(list,   parts, n, i, j, t) {
    n = split(list, parts, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (parts[j] + 0 < parts[i] + 0) { t = parts[i]; parts[i] = parts[j]; parts[j] = t }
    return (n % 2) ? parts[(n + 1) / 2] : (parts[n / 2] + parts[n / 2 + 1]) / 2
  }
  $1 == "schema_throughput" {
    key = value("clients") "x" value("batch") " " value("mode")
    sum[key] += value("facts_per_s"); runs[key]++
    all[key] = all[key] sprintf("%.0f ", value("facts_per_s"))
    p50[key] = p50[key] value("p50_ms") " "; p99[key] = p99[key] value("p99_ms") " "
  }
  $1 == "schema_callgrind" { instructions[value("clients") "x" value("batch") " " value("mode")] = value("instructions_per_fact") }
  END {
    print "| scenario | mode | runs (facts/s) | mean facts/s | vs plain | p50 ms | p99 ms |"
    print "|---|---|---|---|---|---|---|"
    split("64x1 4x1000", scenarios, " "); split("plain schema other", modes, " ")
    for (s = 1; s <= 2; s++) for (m = 1; m <= 3; m++) {
      key = scenarios[s] " " modes[m]
      if (!runs[key]) continue
      mean = sum[key] / runs[key]; base = sum[scenarios[s] " plain"] / runs[scenarios[s] " plain"]
      printf "| %s | %s | %s| %.0f | %.3f | %s | %s |\n", scenarios[s], modes[m], all[key], mean, mean / base, median_of(p50[key]), median_of(p99[key])
    }
    if (length(instructions) > 0) {
      print ""
      print "| scenario | plain instructions/fact | schema | schema / plain | other | other / plain |"
      print "|---|---|---|---|---|---|"
      for (s = 1; s <= 2; s++) {
        a = instructions[scenarios[s] " plain"]; b = instructions[scenarios[s] " schema"]; c = instructions[scenarios[s] " other"]
        if (a > 0) printf "| %s | %d | %d | %.3f | %d | %.3f |\n", scenarios[s], a, b, b / a, c, c / a
      }
    }
  }
' "$TMP/lines.txt"
