#!/usr/bin/env bash
# Runs Cairn's benchmarks and the peers' in one run, on this machine, and
# keeps every result line in bench/results/<date>.txt (the source of the
# tables in docs/benchmarks.md).
#
# usage: bench/all.sh [--duration SECONDS] [--facts N]   (defaults 20, 10000000)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=20
FACTS=10000000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --facts) FACTS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
mkdir -p bench/results
OUT="bench/results/$(date -u +%Y-%m-%dT%H%M).txt"
{
  echo "# bench/all.sh --duration $DURATION --facts $FACTS; $(nproc) cores; $(uname -r)"
  bench/cairn.sh --duration "$DURATION"
  bench/peers.sh --duration "$DURATION"
  bench/scale.sh --facts "$FACTS" --duration "$DURATION"
} | tee "$OUT"
echo "results in $OUT" >&2
