#!/usr/bin/env bash
# The long tier (`./scripts/test.sh --long`): what does not fit in CI's
# time budget, run before an issue is closed and reported in its closing
# note. An hour of `cairn check` under every fault, first on the embedded
# store, then on PostgreSQL (servers over a private cluster the checker
# creates, restarts and removes), then on a replicated PostgreSQL (a
# primary and its synchronous standby the checker creates and fails over,
# `--backend postgres-replicated`), each with the whole workload: writers,
# readers, consumers, claimers, fenced writers and timer setters. Then
# three embedded deployments linked in a ring (`--topology ring3`) under
# the same faults, for CAIRN_LONG_RING_DURATION (default 15m).
#
#   CAIRN_LONG_CHECK_DURATION  per backend, default 55m (faults; judging follows)
#   CAIRN_LONG_CHECK_SEED      default: the current Unix time (printed)
#   CAIRN_LONG_BACKENDS        default "embedded postgres postgres-replicated"
#   CAIRN_LONG_RING_DURATION   the ring of three, default 15m (0 skips it)
#
# Reports: target/long-tier/<backend>-report.json; work directories (server
# logs, history) under target/long-tier/<backend>/. Fails on any violation.
set -euo pipefail
cd "$(dirname "$0")/.."
duration="${CAIRN_LONG_CHECK_DURATION:-55m}"
seed="${CAIRN_LONG_CHECK_SEED:-$(date +%s)}"
target="${CARGO_TARGET_DIR:-target}"
cargo build --release --locked -p cairn-cli
out="$target/long-tier"
rm -rf "$out"
mkdir -p "$out"
# A copy, so that a build during the run cannot change the servers' binary.
cp "$target/release/cairn" "$out/cairn"
for backend in ${CAIRN_LONG_BACKENDS:-embedded postgres postgres-replicated}; do
    echo "long tier: cairn check --backend $backend --duration $duration --seed $seed" >&2
    /usr/bin/time -v "$out/cairn" check --backend "$backend" --duration "$duration" \
        --seed "$seed" --work-dir "$out/$backend" --report-json "$out/$backend-report.json" \
        2> >(tee "$out/$backend-stderr.log" >&2)
done
ring_duration="${CAIRN_LONG_RING_DURATION:-15m}"
if [ "$ring_duration" != 0 ]; then
    echo "long tier: cairn check --topology ring3 --duration $ring_duration --seed $seed" >&2
    /usr/bin/time -v "$out/cairn" check --topology ring3 --duration "$ring_duration" \
        --seed "$seed" --work-dir "$out/ring3" --report-json "$out/ring3-report.json" \
        2> >(tee "$out/ring3-stderr.log" >&2)
fi
