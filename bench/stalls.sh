#!/usr/bin/env bash
# Stalls under ingest (issue 18, target 1): a fresh `cairn serve` ingests
# N facts over HTTP in 1,000-fact batches on 4 connections, then takes 64
# clients × 1 fact for D seconds on the full store. Every request's latency
# goes to a CSV (`cairn bench --latency-log`), and bench/plot_latency.py
# draws latency over time as a PNG. With `--before BIN` the same runs go
# first against another build's server (e.g. the previous commit's
# binary), and the PNG shows both, one panel per run.
#
# usage: bench/stalls.sh [--facts N] [--duration D] [--before BIN] [--out DIR]
#        defaults: 10000000 facts, 30 s, no before run, bench/results
# stdout: one key=value line per run (the `cairn bench` report and the time
# the writer paced itself); the PNG goes to DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
FACTS=10000000
DURATION=30
BEFORE=""
OUT_DIR=bench/results
while [[ $# -gt 0 ]]; do
  case "$1" in
    --facts) FACTS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --before) BEFORE="$2"; shift 2 ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
PORT=17793
TMP_PREFIX=cairn-stalls
source bench/lib.sh
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib
mkdir -p "$OUT_DIR"
STAMP="$(date -u +%Y-%m-%dT%H%M)"
# The CSVs (one line per request: hundreds of thousands for 64×1) stay in
# the temporary directory; KEEP_CSV=DIR keeps them there instead.
CSV_DIR="${KEEP_CSV:-$TMP}"
mkdir -p "$CSV_DIR"
BENCH_BIN="$BIN"
PLOTS=()

# run_build LABEL SERVER_BIN: both loads against a fresh server of that build.
run_build() {
  local label="$1" server_bin="$2"
  BIN="$server_bin"
  rm -rf "$TMP/data"
  start_server
  local batch_csv="$CSV_DIR/$label-4x1000.csv"
  local single_csv="$CSV_DIR/$label-64x1.csv"
  "$BENCH_BIN" bench --server "$URL" --clients 4 --batch 1000 --requests-max $((FACTS / 1000)) \
    --duration 100000 --latency-log "$batch_csv" 2>/dev/null | tr '\n' ' ' | sed "s/^/stalls $label 4x1000 /"
  echo "paced_s=$(metric cairn_write_paced_seconds_total)"
  "$BENCH_BIN" bench --server "$URL" --clients 64 --batch 1 --duration "$DURATION" \
    --latency-log "$single_csv" 2>/dev/null | tr '\n' ' ' | sed "s/^/stalls $label 64x1 /"
  echo "paced_s=$(metric cairn_write_paced_seconds_total)"
  stop_server
  PLOTS+=("$label 4×1000, $FACTS facts=$batch_csv" "$label 64×1, ${DURATION} s=$single_csv")
}

echo "bench=stalls facts=$FACTS duration=$DURATION date=$(date -u +%FT%TZ) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
if [[ -n "$BEFORE" ]]; then run_build before "$BEFORE"; fi
run_build after "$BENCH_BIN"
python3 bench/plot_latency.py "$OUT_DIR/$STAMP-stalls.png" "${PLOTS[@]}"
echo "bench=stalls done=1 png=$OUT_DIR/$STAMP-stalls.png loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
