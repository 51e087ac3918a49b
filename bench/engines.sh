#!/usr/bin/env bash
# Issue 18: storage engine candidates side by side. Builds bench/engines (its own workspace)
# and runs each candidate in its own process, one after the other, REPEATS times, each in a
# fresh temp dir under /tmp that the tool removes. stdout: one `engine=X key=value` line per
# candidate and metric (with `round=R` first), plus header and footer lines with the load.
#
#   bench/engines.sh                                  # 2,000,000 facts, 2 rounds, all candidates
#   bench/engines.sh --facts 200000 --repeats 1       # smoke run
#   bench/engines.sh --only "fjall2 log-fjall2"       # some candidates
#   bench/engines.sh --tail 200000                    # segment log: re-index this tail at reopen
set -euo pipefail

FACTS=2000000
REPEATS=2
ONLY="fjall2 fjall3 log-fjall2 log-fjall3 redb"  # also: fjall3-defaults
TAIL=100000
READ_SECS=5
RUN_TIME_LIMIT_S=900
while [[ $# -gt 0 ]]; do
  case "$1" in
    --facts) FACTS="$2"; shift 2 ;;
    --repeats) REPEATS="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --tail) TAIL="$2"; shift 2 ;;
    --read-secs) READ_SECS="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

cd "$(dirname "$0")/engines"
cargo build --release --quiet >&2
binary="$PWD/target/release/engines"
loadavg() { cut -d' ' -f1 /proc/loadavg; }
echo "bench=engines facts=$FACTS repeats=$REPEATS host_cpus=$(nproc) loadavg_1m=$(loadavg)"
rc=0
for round in $(seq 1 "$REPEATS"); do
  for engine in $ONLY; do
    tail_arg=()
    [[ "$engine" == log-* ]] && tail_arg=(--unindexed-tail-facts "$TAIL")
    echo "running round=$round engine=$engine" >&2
    if ! timeout "$RUN_TIME_LIMIT_S" "$binary" --engine "$engine" --facts "$FACTS" \
        --read-secs "$READ_SECS" --ingest-time-limit-secs $((RUN_TIME_LIMIT_S - 120)) \
        "${tail_arg[@]}" | sed "s/^/round=$round /"; then
      echo "round=$round engine=$engine error=run_failed"
      rc=1
    fi
    echo "round=$round engine=$engine loadavg_1m=$(loadavg)"
    # One candidate's dirty pages must not slow the next.
    sync
    sleep 2
  done
done
echo "bench=engines done=1 rc=$rc loadavg_1m=$(loadavg)"
exit "$rc"
