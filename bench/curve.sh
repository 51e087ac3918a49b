#!/usr/bin/env bash
# Scaling curve (issue 18, target 8): how the cost grows with the work.
#   * clients: for each count C (default 1,4,16,64,256) a fresh server takes
#     C clients × 1 fact for D seconds (durable writes), and then a fresh
#     server's subscription is drained by C consumers (pull 100, durable ack)
#     from a backlog of M messages;
#   * store size: one server ingests 4 × 1,000-fact batches up to each size
#     (default 1M, 10M, 50M facts; about 400 bytes of disk per fact — the
#     script checks free disk first), and at each size measures 64 × 1-fact
#     writes and 32-connection reads by hash for D seconds, the peak RSS
#     and the disk used.
# A table goes to stdout (key=value lines), a PNG (bench/plot_curve.py) to
# DIR. Loopback only; every process started here is stopped by PID.
#
# usage: bench/curve.sh [--clients 1,4,16,64,256] [--sizes 1000000,10000000,50000000]
#                       [--duration D] [--messages M] [--out DIR]
#        defaults: D = 20 s, M = 200000, DIR = bench/results
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=1,4,16,64,256
SIZES=1000000,10000000,50000000
DURATION=20
MESSAGES=200000
OUT_DIR=bench/results
while [[ $# -gt 0 ]]; do
  case "$1" in
    --clients) CLIENTS="$2"; shift 2 ;;
    --sizes) SIZES="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --messages) MESSAGES="$2"; shift 2 ;;
    --out) OUT_DIR="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
is_list() { [[ "$1" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]]; }
is_list "$CLIENTS" || { echo "--clients must be a comma-separated list of counts" >&2; exit 2; }
is_list "$SIZES" || { echo "--sizes must be a comma-separated list of fact counts" >&2; exit 2; }
[[ "$DURATION" =~ ^[1-9][0-9]*$ && "$DURATION" -le 3600 ]] || { echo "--duration must be 1..3600 s" >&2; exit 2; }
[[ "$MESSAGES" =~ ^[1-9][0-9]*$ && "$MESSAGES" -le 10000000 ]] || { echo "--messages must be 1..10000000" >&2; exit 2; }
IFS=, read -ra CLIENT_COUNTS <<<"$CLIENTS"
IFS=, read -ra STORE_SIZES <<<"$SIZES"
for c in "${CLIENT_COUNTS[@]}"; do ((c <= 1024)) || { echo "at most 1024 clients" >&2; exit 2; }; done
PORT=17794
TMP_PREFIX=cairn-curve
source bench/lib.sh
python3 -c 'import matplotlib' 2>/dev/null || pip install --quiet matplotlib

# About 400 bytes of disk per fact at 256-byte fields (bench/scale.sh measured
# 1.14 × the canonical bytes), twice over for compaction's temporary files.
LARGEST=$(printf '%s\n' "${STORE_SIZES[@]}" | sort -n | tail -1)
NEED_MIB=$(( LARGEST * 800 / 1048576 ))
FREE_MIB=$(df -Pm "$TMP" | awk 'NR == 2 {print $4}')
if (( FREE_MIB < NEED_MIB )); then
  echo "curve needs about $NEED_MIB MiB free for $LARGEST facts; $FREE_MIB MiB are free" >&2; exit 1
fi

STAMP="$(date -u +%Y-%m-%dT%H%M)"
mkdir -p "$OUT_DIR"
TABLE="$TMP/curve.txt"
row() { echo "$*" | tee -a "$TABLE"; }
# field NAME LINE: the value of NAME= in a `cairn bench` report.
field() { tr ' ' '\n' <<<"$2" | awk -F= -v name="$1" '$1 == name {print $2}'; }
bench_report() { "$BIN" bench --server "$URL" "$@" 2>/dev/null | tr '\n' ' '; }

echo "bench=curve clients=$CLIENTS sizes=$SIZES duration=$DURATION messages=$MESSAGES date=$(date -u +%FT%TZ) loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
for c in "${CLIENT_COUNTS[@]}"; do
  rm -rf "$TMP/data"; start_server
  write=$(bench_report --clients "$c" --batch 1 --duration "$DURATION")
  stop_server
  rm -rf "$TMP/data"; start_server
  consume=$(bench_report --workload consume --clients "$c" --batch 100 --preload "$MESSAGES" --duration 300)
  stop_server
  row "curve clients=$c write_facts_per_s=$(field facts_per_s "$write") write_p50_ms=$(field p50_ms "$write")" \
      "write_p99_ms=$(field p99_ms "$write") write_max_ms=$(field max_ms "$write")" \
      "consume_messages_per_s=$(field messages_per_s "$consume") consume_cycle_p99_ms=$(field cycle_p99_ms "$consume")" \
      "consume_cycle_max_ms=$(field cycle_max_ms "$consume")"
done

rm -rf "$TMP/data"; start_server
stored=0
for size in $(printf '%s\n' "${STORE_SIZES[@]}" | sort -n); do
  batches=$(( (size - stored) / 1000 ))
  ingest_rate=""
  if (( batches > 0 )); then
    ingest=$(bench_report --clients 4 --batch 1000 --requests-max "$batches" --duration 100000)
    ingest_rate=$(field facts_per_s "$ingest")
  fi
  write=$(bench_report --clients 64 --batch 1 --duration "$DURATION")
  read=$(bench_report --workload get --clients 32 --duration "$DURATION")
  stored=$(metric cairn_store_last_seq)
  row "curve store_facts=$size last_seq=$stored ingest_facts_per_s=$ingest_rate" \
      "write64_facts_per_s=$(field facts_per_s "$write") write64_p99_ms=$(field p99_ms "$write")" \
      "get32_per_s=$(field requests_per_s "$read") get32_p99_ms=$(field p99_ms "$read")" \
      "peak_rss_mib=$(( $(awk '/VmHWM/ {print $2}' /proc/$SERVER_PID/status) / 1024 ))" \
      "disk_mib=$(( $(du -sb "$TMP/data" | cut -f1) / 1048576 ))"
done
stop_server
python3 bench/plot_curve.py "$OUT_DIR/$STAMP-curve.png" "$TABLE"
echo "bench=curve done=1 png=$OUT_DIR/$STAMP-curve.png loadavg_1m=$(cut -d' ' -f1 /proc/loadavg)"
