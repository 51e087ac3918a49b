#!/usr/bin/env bash
# Claims per second, in one run on this machine: Cairn on the embedded store and on PostgreSQL
# (`cairn bench --workload claim`: 64 HTTP clients, each request claims a new key for one stored
# fact, so every claim wins and durably writes its Cairn.Claimed fact with the claim's record)
# beside PostgreSQL's idempotent insert on a unique key (PEERS.md: `INSERT … VALUES
# (gen_random_uuid(), <256 bytes>) ON CONFLICT (id) DO NOTHING`, `pgbench -M prepared -c 64 -j 2`).
# Cairn on PostgreSQL and the peer use fresh databases `cairn_bench_claims_<pid>_*` on the shared
# local PostgreSQL (127.0.0.1:5432, synchronous_commit=on, fsync=on), dropped at the end.
# Every process started here is stopped by its PID; each measurement lasts DURATION seconds.
#
# The binary is $CAIRN if set (then nothing is built), else cargo's release build in
# $CARGO_TARGET_DIR (default target/), built first.
#
# usage: bench/claims.sh            environment: DURATION (10) CLIENTS (64) CAIRN_PORT (17851)
#                                   CAIRN (a cairn binary to measure) CARGO_TARGET_DIR
# stdout: key=value lines, then `summary …` lines with the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CLIENTS=${CLIENTS:-64}
PORT=${CAIRN_PORT:-17851}
PG=${PG_URL:-postgres://postgres@127.0.0.1:5432}
PGBENCH=${PGBENCH:-$(ls /usr/lib/postgresql/*/bin/pgbench | tail -1)}
CAIRN_GIVEN=${CAIRN:-}
CAIRN=${CAIRN:-${CARGO_TARGET_DIR:-target}/release/cairn}
WORK=$(mktemp -d /tmp/cairn-claims.XXXXXX)
DB_PREFIX="cairn_bench_claims_$$"
SERVER_PID=""

cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    for db in "${DB_PREFIX}_cairn" "${DB_PREFIX}_peer"; do
        psql "$PG/postgres" -qtAc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

log() { echo "[claims.sh $(date +%H:%M:%S)] $*" >&2; }
kv() { awk -v key="$1" '{ for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) { print substr($i, length(key) + 2); exit } }'; }

if [ -z "$CAIRN_GIVEN" ]; then cargo build --release -q -p cairn-cli; fi

start_server() {
    "$CAIRN" serve --listen "127.0.0.1:$PORT" "$@" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$PORT/v1/health" >/dev/null && return 0
        sleep 0.05
    done
    echo "the server did not start:" >&2; cat "$WORK/server.log" >&2; exit 1
}

stop_server() { kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""; }

# One server; claims, then single-fact writes (the same durable commit path without the claim's
# record, for reference) through it.
cairn_claims() {
    local what=$1; shift
    start_server "$@"
    local workload line
    for workload in claim write; do
        log "cairn ($what, $workload): $CLIENTS clients, ${DURATION}s"
        line=$("$CAIRN" bench --workload "$workload" --server "http://127.0.0.1:$PORT" \
            --clients "$CLIENTS" --duration "$DURATION" 2>/dev/null | tr '\n' ' ')
        echo "cairn_${what}_$workload $line"
    done
    stop_server
}

echo "loadavg_1m=$(cut -d' ' -f1 /proc/loadavg) clients=$CLIENTS duration_s=$DURATION"
embedded=$(cairn_claims embedded --data "$WORK/data")
echo "$embedded"
psql "$PG/postgres" -qtAc "CREATE DATABASE ${DB_PREFIX}_cairn"
postgres=$(cairn_claims postgres --store "$PG/${DB_PREFIX}_cairn")
echo "$postgres"
embedded=$(echo "$embedded" | grep '^cairn_embedded_claim')
postgres=$(echo "$postgres" | grep '^cairn_postgres_claim')

psql "$PG/postgres" -qtAc "CREATE DATABASE ${DB_PREFIX}_peer"
psql "$PG/${DB_PREFIX}_peer" -qtAc "CREATE TABLE claims (id uuid PRIMARY KEY, payload text)"
cat >"$WORK/insert.sql" <<'SQL'
INSERT INTO claims (id, payload) VALUES (gen_random_uuid(), repeat('x', 256)) ON CONFLICT (id) DO NOTHING;
SQL
log "postgresql: pgbench -M prepared -c $CLIENTS -j 2 -T $DURATION"
peer_tps=$("$PGBENCH" -n -M prepared -c "$CLIENTS" -j 2 -T "$DURATION" -f "$WORK/insert.sql" \
    "$PG/${DB_PREFIX}_peer" 2>/dev/null | awk '/^tps = / { print int($3); exit }')
echo "postgresql_insert_on_conflict tps=$peer_tps"

embedded_rate=$(echo "$embedded" | kv requests_per_s)
postgres_rate=$(echo "$postgres" | kv requests_per_s)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.2f", a / b; else print "nan" }'; }
echo "summary claims_per_s embedded=$embedded_rate postgres=$postgres_rate peer_insert=$peer_tps"
echo "summary ratio embedded_vs_peer=$(ratio "$embedded_rate" "$peer_tps") postgres_vs_peer=$(ratio "$postgres_rate" "$peer_tps")"
echo "loadavg_1m_end=$(cut -d' ' -f1 /proc/loadavg)"
