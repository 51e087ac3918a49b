#!/usr/bin/env bash
# Cairn over a replicated PostgreSQL (issue 19), in one run on this machine:
#   * failover time: `cairn check --backend postgres-replicated --faults failover`, the
#     checker's primary and synchronous standby. Each failover cuts replication for 0.3–1 s,
#     kills the primary's postmaster (kill -9), promotes the standby (pg_ctl promote), and then
#     writes a probe fact to every Cairn server (two) until each acknowledges one; the time
#     from the kill to the last server's first acknowledged write is the failover time (it
#     includes the promotion). p50, min and max over the first N failovers (default 10);
#   * write throughput and latency with a synchronous standby against one server, same run:
#     `cairn serve --store` over (a) one private PostgreSQL and (b) a private primary whose
#     commits wait for a streaming synchronous standby (`synchronous_standby_names =
#     'standby1'`, synchronous_commit on; the URL lists both hosts), each measured with
#     `cairn bench --workload write` at C clients × B facts per request and at 1 × 1.
# Every cluster is created here (initdb, pg_basebackup) on loopback ports and removed at the
# end; every process started here is stopped by its PID; every run is bounded in time.
#
# usage: bench/failover.sh [--failovers N] [--clients C] [--batch B] [--seconds S]
#        defaults: 10 failovers, 16 clients, batches of 10, 20 s per throughput measurement
# stdout: key=value lines, kept in bench/results/<UTC time>-failover.txt; progress on stderr.
# Environment: PG_PORT_BASE (25432: the clusters use +0, +1, +2) CAIRN_PORT (17911)
#   CAIRN_BIN (a cairn binary to use instead of building the release one: for a smoke run).
set -euo pipefail
cd "$(dirname "$0")/.."

FAILOVERS=10
CLIENTS=16
BATCH=10
SECONDS_PER_RUN=20
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | cut -c3- >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --failovers) FAILOVERS=$2 ;;
        --clients) CLIENTS=$2 ;;
        --batch) BATCH=$2 ;;
        --seconds) SECONDS_PER_RUN=$2 ;;
        *) usage ;;
    esac
    shift 2
done
is_count() { [[ $1 =~ ^[1-9][0-9]*$ && $1 -le $2 ]]; }
is_count "$FAILOVERS" 100 || { echo "--failovers must be 1..100" >&2; exit 2; }
is_count "$CLIENTS" 256 || { echo "--clients must be 1..256" >&2; exit 2; }
is_count "$BATCH" 10000 || { echo "--batch must be 1..10000" >&2; exit 2; }
is_count "$SECONDS_PER_RUN" 600 || { echo "--seconds must be 1..600" >&2; exit 2; }

PG_PORT_BASE=${PG_PORT_BASE:-25432}
CAIRN_PORT=${CAIRN_PORT:-17911}
PG_BIN=$(pg_config --bindir 2>/dev/null || true)
[[ -x $PG_BIN/initdb ]] || PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[[ -x $PG_BIN/pg_basebackup ]] || { echo "PostgreSQL's programs (initdb, pg_basebackup) are missing" >&2; exit 1; }

if [[ -n ${CAIRN_BIN:-} ]]; then
    BIN=$CAIRN_BIN
else
    cargo build --release --quiet -p cairn-cli
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"
fi
WORK=$(mktemp -d /tmp/cairn-failover.XXXXXX)
RESULTS="bench/results/$(date -u +%Y-%m-%dT%H%M)-failover.txt"
PG_PIDS=()
SERVER_PID=""

log() { echo "[failover] $*" >&2; }
emit() { echo "$*" | tee -a "$RESULTS"; }
# PostgreSQL refuses to run as root: its programs run as `postgres` then.
as_postgres() {
    if [[ $(id -u) == 0 ]]; then
        setpriv --reuid=postgres --regid=postgres --init-groups "$@"
    else
        "$@"
    fi
}
cleanup() {
    if [[ -n $SERVER_PID ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    local pid
    for pid in "${PG_PIDS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
    for pid in "${PG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
[[ $(id -u) == 0 ]] && chown postgres "$WORK"

# ------------------------------------------------------------ failover time

log "failover time: cairn check --backend postgres-replicated, $FAILOVERS failovers"
# A failover takes about 8 s (cut, promotion, probes, rebuild) plus the 1.5–4.5 s pause.
check_seconds=$((FAILOVERS * 13 + 10))
timeout --foreground -s INT $((check_seconds + 300)) "$BIN" check --backend postgres-replicated \
    --servers 2 --faults failover --fault-interval 3s --duration "${check_seconds}s" \
    --seed 20261208 --work-dir "$WORK/check" --keep >"$WORK/check.out" 2>&1 ||
    { tail -20 "$WORK/check.out" >&2; emit "failover error=check_failed"; exit 1; }
mapfile -t times < <(grep -oE 'took a write [0-9]+ ms after the kill' "$WORK/check/report.txt" |
    awk '{ print $4 }' | head -n "$FAILOVERS")
[[ ${#times[@]} -ge $FAILOVERS ]] || log "only ${#times[@]} failovers fitted in ${check_seconds}s"
stats=$(printf '%s\n' "${times[@]}" | sort -n |
    awk '{ v[NR] = $1 } END { printf "failovers=%d p50_ms=%d min_ms=%d max_ms=%d", NR, v[int((NR + 1) / 2)], v[1], v[NR] }')
emit "failover $stats all_ms=$(IFS=,; echo "${times[*]}")"
emit "failover check=$(grep -oE 'result: [A-Z]+' "$WORK/check.out" | head -1 | tr -d ' ')"

# ---------------------------------------------- throughput with a synchronous standby

# start_postgres DIR PORT [-c …] : starts a cluster in DIR on PORT (loopback only).
start_postgres() {
    local dir=$1 port=$2
    shift 2
    as_postgres "$PG_BIN/postgres" -D "$dir" -c port="$port" -c listen_addresses=127.0.0.1 \
        -c unix_socket_directories='' -c fsync=on -c synchronous_commit=on "$@" \
        >"$dir.log" 2>&1 &
    PG_PIDS+=("$!")
    local i
    for ((i = 0; i < 300; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && return 0
        sleep 0.1
    done
    tail -5 "$dir.log" >&2
    return 1
}
initdb_into() { as_postgres "$PG_BIN/initdb" -D "$1" -U postgres --auth=trust -E UTF8 --no-locale >"$1.initdb.log" 2>&1; }
sql() { "$PG_BIN/psql" -X -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"; }

# measure LABEL URL : one Cairn server on URL, two write measurements.
measure() {
    local label=$1 url=$2
    "$BIN" serve --listen "127.0.0.1:$CAIRN_PORT" --store "$url" >/dev/null 2>>"$WORK/server-$label.log" &
    SERVER_PID=$!
    local i
    for ((i = 0; i < 600; i++)); do
        curl -sf "http://127.0.0.1:$CAIRN_PORT/v1/health" >/dev/null && break
        sleep 0.1
    done
    local shape
    for shape in "$CLIENTS $BATCH" "1 1"; do
        set -- $shape
        log "$label: cairn bench --clients $1 --batch $2 for ${SECONDS_PER_RUN}s"
        emit "cairn setup=$label $(timeout --foreground -s INT $((SECONDS_PER_RUN + 120)) "$BIN" bench \
            --server "http://127.0.0.1:$CAIRN_PORT" --workload write --clients "$1" --batch "$2" \
            --duration "$SECONDS_PER_RUN" 2>>"$WORK/bench.log" | tr '\n' ' ')"
    done
    kill "$SERVER_PID"
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

single=$WORK/single primary=$WORK/primary standby=$WORK/standby
p_single=$PG_PORT_BASE p_primary=$((PG_PORT_BASE + 1)) p_standby=$((PG_PORT_BASE + 2))
log "clusters: one server on $p_single; a primary on $p_primary with a synchronous standby on $p_standby"
initdb_into "$single"
initdb_into "$primary"
start_postgres "$single" "$p_single"
start_postgres "$primary" "$p_primary" -c synchronous_standby_names=standby1
as_postgres "$PG_BIN/pg_basebackup" -d "host=127.0.0.1 port=$p_primary user=postgres application_name=standby1" \
    -D "$standby" -R -X stream -c fast
start_postgres "$standby" "$p_standby" -c synchronous_standby_names=
for ((i = 0; i < 600; i++)); do
    [[ $(sql "$p_primary" "SELECT sync_state FROM pg_stat_replication") == sync ]] && break
    sleep 0.1
done
emit "setup primary_sync_state=$(sql "$p_primary" "SELECT sync_state FROM pg_stat_replication") version=$(sql "$p_single" "SHOW server_version" | cut -d' ' -f1)"

measure one_server "postgres://postgres@127.0.0.1:$p_single/postgres"
measure synchronous_standby \
    "postgres://postgres@127.0.0.1:$p_primary,127.0.0.1:$p_standby/postgres?target_session_attrs=read-write"
# The synchronous standby against one server, per shape: throughput and p50 ratios.
awk '$1 == "cairn" {
        for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
        shape = f["clients"] "x" f["batch"]
        rate[f["setup"], shape] = f["facts_per_s"]; p50[f["setup"], shape] = f["p50_ms"]; shapes[shape] = 1
    }
    END {
        for (shape in shapes) if (rate["one_server", shape] > 0 && p50["one_server", shape] > 0)
            printf "summary shape=%s synchronous_standby_throughput_ratio=%.2f synchronous_standby_p50_ratio=%.2f\n",
                shape, rate["synchronous_standby", shape] / rate["one_server", shape],
                p50["synchronous_standby", shape] / p50["one_server", shape]
    }' "$RESULTS" | tee -a "$RESULTS"
log "results in $RESULTS"
