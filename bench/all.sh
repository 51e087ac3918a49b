#!/usr/bin/env bash
# One command for every benchmark: Cairn's and its peers', in one run on
# this machine, each Cairn measurement beside its peer (issue 18). Every
# result line goes to bench/results/<date>.txt, the PNGs (stalls, scaling
# curve) beside it, and bench/targets.py turns the file into the table of
# targets and ratios in bench/results/<date>-targets.md (the source of
# docs/benchmarks.md).
#
#   bench/cairn.sh          HTTP 1×1, 64×1, 4×1,000, embedded 4×1,000, reads
#   bench/peers.sh          PostgreSQL (pgbench), Redis, NATS: durable writes
#   bench/postgres.sh       Cairn on PostgreSQL against direct INSERT and COPY
#   bench/delivery.sh       Cairn's consumption, latency, 1 M-message backlog
#   bench/consume-peers.sh  RabbitMQ quorum, NATS JetStream, PostgreSQL queues
#   bench/scale.sh          10 M facts: RSS, disk, restart, reads, successors
#   bench/stalls.sh         latency over time through a 10 M-fact ingest
#   bench/curve.sh          1–256 clients; 1 M / 10 M / 50 M facts
#
# usage: bench/all.sh [--duration SECONDS] [--facts N] [--sizes LIST] [--quick]
#        defaults 20 s, 10000000 facts, sizes 1000000,10000000,50000000;
#        --quick is a smoke run of every script (minutes, numbers meaningless).
# Takes about 50 minutes with the defaults (49 on 2026-12-07, the 50 M-fact
# curve included); run it on a quiet machine (the load average is recorded
# at the start and end of every script).
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=20
FACTS=10000000
SIZES=1000000,10000000,50000000
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --facts) FACTS="$2"; shift 2 ;;
    --sizes) SIZES="$2"; shift 2 ;;
    --quick) QUICK=1; DURATION=3; FACTS=200000; SIZES=100000,200000; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if ((QUICK)); then
  POSTGRES_ARGS=(--facts 20000 --samples 500 --consume-messages 30000 --consume-processes no)
  DELIVERY_ARGS=(--messages 20000 --backlog 50000 --latency-secs 3)
  PEER_ARGS=(--messages 20000 --latency-secs 3)
  CURVE_ARGS=(--clients 1,4 --messages 20000)
else
  POSTGRES_ARGS=()
  DELIVERY_ARGS=()
  PEER_ARGS=()
  CURVE_ARGS=()
fi
mkdir -p bench/results
STAMP="$(date -u +%Y-%m-%dT%H%M)"
OUT="bench/results/$STAMP.txt"
{
  echo "# bench/all.sh --duration $DURATION --facts $FACTS --sizes $SIZES$( ((QUICK)) && echo ' --quick'); $(nproc) cores; $(uname -r)"
  bench/cairn.sh --duration "$DURATION"
  bench/peers.sh --duration "$DURATION"
  bench/postgres.sh "${POSTGRES_ARGS[@]}"
  bench/delivery.sh "${DELIVERY_ARGS[@]}"
  bench/consume-peers.sh "${PEER_ARGS[@]}"
  bench/scale.sh --facts "$FACTS" --duration "$DURATION"
  bench/stalls.sh --facts "$FACTS" --duration "$DURATION"
  bench/curve.sh --sizes "$SIZES" --duration "$DURATION" "${CURVE_ARGS[@]}"
} | tee "$OUT"
python3 bench/targets.py "$OUT" | tee "bench/results/$STAMP-targets.md"
echo "results in $OUT, targets in bench/results/$STAMP-targets.md" >&2
