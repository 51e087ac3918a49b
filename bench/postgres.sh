#!/usr/bin/env bash
# Cairn on PostgreSQL against PostgreSQL itself, in one run on this machine:
#   * batched ingest: N facts in batches of B, each batch one committed transaction, written
#     directly on one connection (bench/pg-direct: multi-row INSERT from unnest arrays, a VALUES
#     list, binary COPY, and Cairn's own cairn_put_facts function), directly on I connections at
#     once (unnest and function, `pg-direct ingest --clients I`), and through one
#     `cairn serve --store postgres://…` (`cairn bench --workload write --batch B` with
#     `--clients 1` and with `--clients I`, the same N facts);
#   * single-fact durable write latency: K sequential one-row transactions directly
#     (`INSERT … VALUES`), K direct one-fact calls of cairn_put_facts (database time without
#     HTTP), and through Cairn (`cairn bench --clients 1 --batch 1`);
#   * consume throughput of ONE subscription with C consumers: through one server, and through
#     three servers on one database (`cairn bench --workload consume --clients C
#     --consume-servers s1,s2,s3`: consumer i pulls from and acks to server i % 3; the
#     subscription and the backlog of M messages go through the first server).
# Every measurement gets a fresh database `cairn_bench_<run>_<what>` on the shared local
# PostgreSQL (127.0.0.1:5432, user postgres), dropped right after; synchronous_commit stays at
# the server's setting (on). Every process started here is stopped by its PID; every run is
# bounded in count and time. See bench/README.md ("PostgreSQL backend against PostgreSQL").
#
# usage: bench/postgres.sh [--facts N] [--batch B] [--ingest-clients I] [--samples K]
#                          [--consume-messages M] [--consume-clients C] [--consume-batch CB]
#                          [--consume-processes yes|no] [--only all|direct|cairn]
#                          [--put-facts current|migration1]
#        defaults: 200000 facts, batches of 1000, 4 concurrent ingest clients, 10000 samples,
#        300000 messages, 6 consumers (a multiple of 3: 2 per server with three servers), 1000
#        messages per pull, and the older consume variant too (`--consume-processes no` skips
#        it): three bench processes with a subscription each (M/3 messages, C/3 consumers
#        each), on one server and on three servers (one process per server).
#        --put-facts migration1: the "before" of issue 18 target 7 with the same binary —
#        every Cairn database gets migration 1's cairn_put_facts back (the head's lock held
#        through the inserts) once its servers migrated it, and the direct function runs use it.
# stdout: key=value lines (raw results, then `summary …` lines with the ratios); progress on
# stderr. Both result sets are kept in bench/results/<UTC time>-postgres-raw.txt and
# …-postgres-summary.txt.
# Environment: PGHOST (127.0.0.1) PGPORT (5432) PGUSER (postgres) CAIRN_PORT (17811; the three
#   servers use CAIRN_PORT, +1, +2) TIME_LIMIT_S (600, per run) KEEP_WORK=1 (keep the logs).
set -euo pipefail
cd "$(dirname "$0")/.."

FACTS=200000
BATCH=1000
SAMPLES=10000
INGEST_CLIENTS=4
CONSUME_MESSAGES=300000
CONSUME_CLIENTS=6
CONSUME_BATCH=1000
CONSUME_PROCESSES=yes
ONLY=all
PUT_FACTS=current
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | cut -c3- >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    [[ $1 == -h || $1 == --help ]] && usage
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --facts) FACTS=$2 ;;
        --batch) BATCH=$2 ;;
        --ingest-clients) INGEST_CLIENTS=$2 ;;
        --samples) SAMPLES=$2 ;;
        --consume-messages) CONSUME_MESSAGES=$2 ;;
        --consume-clients) CONSUME_CLIENTS=$2 ;;
        --consume-batch) CONSUME_BATCH=$2 ;;
        --consume-processes) CONSUME_PROCESSES=$2 ;;
        --only) ONLY=$2 ;;
        --put-facts) PUT_FACTS=$2 ;;
        *) usage ;;
    esac
    shift 2
done
is_count() { [[ $1 =~ ^[1-9][0-9]*$ && $1 -le $2 ]]; }
is_count "$BATCH" 10000 || { echo "--batch must be 1..10000" >&2; exit 2; }
is_count "$FACTS" 100000000 && ((FACTS % BATCH == 0)) || { echo "--facts must be a multiple of --batch, at most 100000000" >&2; exit 2; }
is_count "$INGEST_CLIENTS" 64 && ((INGEST_CLIENTS > 1)) || { echo "--ingest-clients must be 2..64" >&2; exit 2; }
is_count "$SAMPLES" 10000000 || { echo "--samples must be 1..10000000" >&2; exit 2; }
case "$CONSUME_PROCESSES" in yes|no) ;; *) usage ;; esac
# The three-process variant splits the backlog in three.
is_count "$CONSUME_MESSAGES" 10000000 && [[ $CONSUME_PROCESSES == no || $((CONSUME_MESSAGES % 3)) == 0 ]] || { echo "--consume-messages must be at most 10000000 (a multiple of 3 with --consume-processes yes)" >&2; exit 2; }
is_count "$CONSUME_CLIENTS" 255 && ((CONSUME_CLIENTS % 3 == 0)) || { echo "--consume-clients must be a multiple of 3, at most 255" >&2; exit 2; }
is_count "$CONSUME_BATCH" 10000 || { echo "--consume-batch must be 1..10000" >&2; exit 2; }
case "$ONLY" in all|direct|cairn) ;; *) usage ;; esac
case "$PUT_FACTS" in current|migration1) ;; *) usage ;; esac

PGHOST=${PGHOST:-127.0.0.1}
PGPORT=${PGPORT:-5432}
PGUSER=${PGUSER:-postgres}
CAIRN_PORT=${CAIRN_PORT:-17811}
TIME_LIMIT_S=${TIME_LIMIT_S:-600}
RUN_TAG="$(date -u +%H%M%S)_$$"
STAMP="$(date -u +%Y-%m-%dT%H%M)"
mkdir -p bench/results
RAW="bench/results/$STAMP-postgres-raw.txt"
SUMMARY="bench/results/$STAMP-postgres-summary.txt"
: >"$RAW"
: >"$SUMMARY"
TOOL_MANIFEST=bench/pg-direct/Cargo.toml
TOOL=bench/pg-direct/target/release/pg-direct
MIGRATIONS_DIR=crates/cairn-store/src/postgres/migrations
BIN="$PWD/target/release/cairn"
WORK="$(mktemp -d /tmp/cairn-bench-postgres.XXXXXX)"
# The direct function runs get the facts tables and today's cairn_put_facts: migration 1 and
# the log tickets of migration 13, which redefine it.
# With --put-facts migration1, migration 1's function, as the Cairn databases get it back.
MIGRATION="$WORK/cairn-put-facts.sql"
OLD_PUT_FACTS="$WORK/put-facts-migration1.sql"
sed -n '/^CREATE FUNCTION cairn_put_facts(/,/^\$\$;/p' "$MIGRATIONS_DIR/0001_facts.sql" |
    sed 's/^CREATE FUNCTION/CREATE OR REPLACE FUNCTION/' >"$OLD_PUT_FACTS"
cat >>"$OLD_PUT_FACTS" <<'SQL'
ALTER FUNCTION cairn_put_facts(bytea[], text[], bytea[], bytea[], int[], text[], bytea[]) SET enable_seqscan = off;
ALTER FUNCTION cairn_put_facts(bytea[], text[], bytea[], bytea[], int[], text[], bytea[]) SET jit = off;
SQL
if [[ $PUT_FACTS == migration1 ]]; then
    cp "$MIGRATIONS_DIR/0001_facts.sql" "$MIGRATION"
else
    cat "$MIGRATIONS_DIR/0001_facts.sql" "$MIGRATIONS_DIR/0013_log_tickets.sql" >"$MIGRATION"
fi

log() { echo "[postgres.sh $(date +%H:%M:%S)] $*" >&2; }
emit() { echo "$*" | tee -a "$RAW"; }
summary() { echo "summary $*" | tee -a "$RAW" >>"$SUMMARY"; echo "summary $*"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
psql_admin() { psql -X -q -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d postgres "$@"; }
psql_db() { psql -X -q -At -v ON_ERROR_STOP=1 -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -d "$@"; }
# The value of KEY in a line of key=value words.
kv() { awk -v key="$1" '{ for (i = 1; i <= NF; i++) if (index($i, key "=") == 1) { print substr($i, length(key) + 2); exit } }'; }
# a / b with two decimals, or "nan".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b + 0 > 0) printf "%.2f", a / b; else print "nan" }'; }
# a - b with three decimals, or "nan".
difference() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "") printf "%.3f", a - b; else print "nan" }'; }

# ------------------------------------------------------------------ processes and databases

SERVER_PIDS=()   # cairn servers running now
BENCH_PIDS=()    # cairn bench processes running in parallel now
DATABASES=()     # databases created and not yet dropped

# Stop a process we started, by PID: TERM, then KILL after a bounded wait.
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "pid $pid did not stop on TERM in 30 s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# Creates a fresh database for one measurement; sets DB and DB_URL. A checkpoint first, so
# that every measurement starts with the same (empty) amount of dirty WAL behind it.
new_db() {
    DB="cairn_bench_${RUN_TAG}_$1"
    psql_admin -c "CREATE DATABASE $DB" >&2
    DATABASES+=("$DB")
    DB_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$DB"
    psql_admin -c "CHECKPOINT" >&2
}

drop_db() {
    local name=$1 kept=() other
    psql_admin -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >&2 || log "could not drop $name"
    for other in "${DATABASES[@]}"; do [[ $other == "$name" ]] || kept+=("$other"); done
    DATABASES=("${kept[@]}")
}

cleanup() {
    local pid name
    for pid in "${BENCH_PIDS[@]}" "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
    for name in "${DATABASES[@]}"; do drop_db "$name"; done
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "keeping $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------ direct (bench/pg-direct)

SETTINGS_SHOWN=no
# direct LABEL TOOL_ARGS... : one run of the tool on a fresh database; sets OUT to its lines.
direct() {
    local label=$1 line
    shift
    new_db "direct_$label"
    log "direct $label: $*"
    if ! OUT=$(timeout --foreground -s INT $((TIME_LIMIT_S + 60)) "$TOOL" --url "$DB_URL" \
        --time-limit-secs "$TIME_LIMIT_S" "$@"); then
        emit "direct_error=$label"
        OUT=""
    fi
    drop_db "$DB"
    while IFS= read -r line; do
        if [[ $line == *test=settings* ]]; then
            [[ $SETTINGS_SHOWN == yes ]] && continue
            SETTINGS_SHOWN=yes
        fi
        [[ -n $line ]] && emit "$line"
    done <<<"$OUT"
}

declare -A DIRECT_INGEST_RATE DIRECT_SINGLE
run_direct() {
    log "building bench/pg-direct (release)"
    cargo build --release --quiet --locked --manifest-path "$TOOL_MANIFEST" >&2
    local method
    for method in unnest values copy; do
        direct "ingest_$method" ingest --method "$method" --facts "$FACTS" --batch "$BATCH"
        DIRECT_INGEST_RATE[$method]=$(grep 'test=ingest' <<<"$OUT" | kv facts_per_s)
    done
    direct ingest_function --cairn-migration "$MIGRATION" ingest --method function --facts "$FACTS" --batch "$BATCH"
    DIRECT_INGEST_RATE[function]=$(grep 'test=ingest' <<<"$OUT" | kv facts_per_s)
    # The same facts over INGEST_CLIENTS connections at once, disjoint batches.
    direct "ingest_unnest_${INGEST_CLIENTS}clients" ingest --method unnest --facts "$FACTS" --batch "$BATCH" --clients "$INGEST_CLIENTS"
    DIRECT_INGEST_RATE[unnest_concurrent]=$(grep 'test=ingest' <<<"$OUT" | kv facts_per_s)
    direct "ingest_function_${INGEST_CLIENTS}clients" --cairn-migration "$MIGRATION" ingest --method function --facts "$FACTS" --batch "$BATCH" --clients "$INGEST_CLIENTS"
    DIRECT_INGEST_RATE[function_concurrent]=$(grep 'test=ingest' <<<"$OUT" | kv facts_per_s)
    direct single_values single --method values --samples "$SAMPLES"
    DIRECT_SINGLE[values]=$(grep 'test=single' <<<"$OUT" || true)
    direct single_function --cairn-migration "$MIGRATION" single --method function --samples "$SAMPLES"
    DIRECT_SINGLE[function]=$(grep 'test=single' <<<"$OUT" || true)
}

# ------------------------------------------------------------------ Cairn

# start_server INDEX : `cairn serve` on $DB_URL, port CAIRN_PORT+INDEX; waits for /v1/health.
start_server() {
    local index=$1 port=$((CAIRN_PORT + $1)) pid i
    if [[ -n $(ss -Hltn "sport = :$port" 2>/dev/null) ]]; then
        log "port $port is in use"; return 1
    fi
    # --data points into the temp dir, so that nothing lands in ./cairn-data if the server uses it.
    "$BIN" serve --store "$DB_URL" --listen "127.0.0.1:$port" --data "$WORK/data-$index" \
        >/dev/null 2>>"$WORK/server-$index.log" &
    pid=$!
    SERVER_PIDS+=("$pid")
    for ((i = 0; i < 600; i++)); do
        curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    log "server $index did not become healthy:"; tail -5 "$WORK/server-$index.log" >&2
    return 1
}

stop_servers() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid"; done
    SERVER_PIDS=()
}

# cairn_bench OUTFILE INDEX ARGS... : one bounded `cairn bench` against server INDEX, its
# report in OUTFILE. Runs `timeout` in the foreground; `cairn_bench_start` in the background.
cairn_bench() {
    local out=$1 port=$((CAIRN_PORT + $2))
    shift 2
    timeout --foreground -s INT $((TIME_LIMIT_S + 120)) "$BIN" bench \
        --server "http://127.0.0.1:$port" --duration "$TIME_LIMIT_S" "$@" \
        >"$out" 2>>"$WORK/bench.log" || log "cairn bench failed: $*"
}
# Same, in the background, without a subshell in between: BENCH_PIDS gets the PID of
# `timeout`, which passes a TERM on to `cairn bench`.
cairn_bench_start() {
    local out=$1 port=$((CAIRN_PORT + $2))
    shift 2
    timeout -s INT $((TIME_LIMIT_S + 120)) "$BIN" bench --server "http://127.0.0.1:$port" \
        --duration "$TIME_LIMIT_S" "$@" >"$out" 2>>"$WORK/bench.log" &
    BENCH_PIDS+=("$!")
}
# The report in OUTFILE as one line.
one_line() { tr '\n' ' ' <"$1" | sed 's/ *$//'; }

# What the Cairn database holds: the same rows as the direct runs write?
cairn_rows() {
    psql_db "$DB" -F ' ' -c "SELECT 'facts=' || count(*), \
        'canonical_bytes_per_fact=' || round(avg(octet_length(canonical)), 1), \
        'hash_bytes=' || coalesce(max(octet_length(hash)), 0), \
        'edges=' || (SELECT count(*) FROM cairn_predecessors), \
        'tables_bytes=' || (pg_total_relation_size('cairn_facts') + pg_total_relation_size('cairn_predecessors')) \
        FROM cairn_facts"
}

# start_servers LABEL SERVERS : servers 0 … SERVERS-1 on $DB_URL; on failure emits an error
# line for LABEL, stops them and drops the database.
start_servers() {
    local label=$1 servers=$2 index
    for ((index = 0; index < servers; index++)); do
        start_server "$index" && continue
        emit "cairn_error=${label}_server_start"
        stop_servers
        drop_db "$DB"
        return 1
    done
    if [[ $PUT_FACTS == migration1 ]]; then
        psql_db "$DB" -f "$OLD_PUT_FACTS" >/dev/null
    fi
}

# consume_shared LABEL SERVERS : ONE `cairn bench --workload consume` process with
# CONSUME_CLIENTS consumers of ONE subscription; the subscription and the backlog of
# CONSUME_MESSAGES go through server 0, and with SERVERS > 1 consumer i pulls from and acks
# to server i % SERVERS (`--consume-servers`). Sets SHARED_RATE (its messages_per_s; an
# incomplete run, which hit the time limit, still gets its rate and an error line).
consume_shared() {
    local label=$1 servers=$2 index urls=() line
    new_db "consume_$label"
    start_servers "consume_$label" "$servers" || return 1
    local spread=()
    if ((servers > 1)); then
        for ((index = 0; index < servers; index++)); do urls+=("http://127.0.0.1:$((CAIRN_PORT + index))"); done
        spread=(--consume-servers "$(IFS=,; echo "${urls[*]}")")
    fi
    log "consume $label: one subscription, $CONSUME_CLIENTS consumers over $servers server(s), $CONSUME_MESSAGES messages"
    cairn_bench "$WORK/consume-$label.txt" 0 --workload consume --clients "$CONSUME_CLIENTS" \
        --batch "$CONSUME_BATCH" --preload "$CONSUME_MESSAGES" "${spread[@]}"
    stop_servers
    drop_db "$DB"
    line=$(one_line "$WORK/consume-$label.txt")
    emit "cairn scenario=consume_$label servers=$servers processes=1 subscriptions=1 $line"
    SHARED_RATE=$(kv messages_per_s <<<"$line")
    [[ $(kv consumed <<<"$line") == "$CONSUME_MESSAGES" ]] || emit "cairn_error=consume_${label}_incomplete"
    [[ -n $SHARED_RATE ]]
}

# consume_group LABEL SERVERS PROCESSES : PROCESSES `cairn bench --workload consume` at once,
# process i against server i % SERVERS, each with its own subscription, a backlog of
# CONSUME_MESSAGES / PROCESSES and CONSUME_CLIENTS / PROCESSES consumers; sets GROUP_RATE (sum
# of the processes' messages_per_s) and GROUP_RATE_SPAN (all messages over the longest consume
# phase).
consume_group() {
    local label=$1 servers=$2 processes=$3 index pid line rates=() seconds=() consumed=()
    local preload=$((CONSUME_MESSAGES / processes)) clients=$((CONSUME_CLIENTS / processes))
    new_db "consume_$label"
    start_servers "consume_$label" "$servers" || return 1
    log "consume $label: $processes bench process(es) over $servers server(s), $preload messages and $clients consumers each"
    BENCH_PIDS=()
    for ((index = 0; index < processes; index++)); do
        cairn_bench_start "$WORK/consume-$label-$index.txt" $((index % servers)) \
            --workload consume --clients "$clients" --batch "$CONSUME_BATCH" --preload "$preload"
    done
    for pid in "${BENCH_PIDS[@]}"; do wait "$pid" || log "a consume bench process failed (pid $pid)"; done
    BENCH_PIDS=()
    stop_servers
    drop_db "$DB"
    for ((index = 0; index < processes; index++)); do
        line=$(one_line "$WORK/consume-$label-$index.txt")
        emit "cairn scenario=consume_$label process=$index servers=$servers processes=$processes $line"
        rates+=("$(kv messages_per_s <<<"$line")")
        seconds+=("$(kv seconds <<<"$line")")
        consumed+=("$(kv consumed <<<"$line")")
    done
    GROUP_RATE=$(printf '%s\n' "${rates[@]}" | awk '{ s += $1 } END { printf "%.0f", s }')
    GROUP_RATE_SPAN=$(paste -d' ' <(printf '%s\n' "${consumed[@]}") <(printf '%s\n' "${seconds[@]}") |
        awk '{ c += $1; if ($2 > t) t = $2 } END { if (t > 0) printf "%.0f", c / t; else print "nan" }')
    GROUP_CONSUMED=$(printf '%s\n' "${consumed[@]}" | awk '{ s += $1 } END { print s + 0 }')
    emit "cairn scenario=consume_$label servers=$servers processes=$processes subscriptions=$processes clients_per_process=$clients messages=$CONSUME_MESSAGES consumed=$GROUP_CONSUMED sum_messages_per_s=$GROUP_RATE messages_per_s_over_longest=$GROUP_RATE_SPAN"
}

# cairn_ingest SCENARIO CLIENTS : the same N facts in batches of B as the direct runs, through
# one server, CLIENTS requests in flight; sets INGEST_LINE (the bench report).
cairn_ingest() {
    local scenario=$1 clients=$2
    INGEST_LINE=""
    new_db "cairn_$scenario"
    start_servers "$scenario" 1 || return 1
    log "cairn $scenario: $FACTS facts in batches of $BATCH, $clients client(s)"
    cairn_bench "$WORK/$scenario.txt" 0 --workload write --clients "$clients" --batch "$BATCH" --requests-max $((FACTS / BATCH))
    INGEST_LINE=$(one_line "$WORK/$scenario.txt")
    stop_servers
    emit "cairn scenario=$scenario $INGEST_LINE"
    emit "cairn scenario=${scenario}_rows $(cairn_rows)"
    drop_db "$DB"
}

CAIRN_INGEST="" CAIRN_INGEST_CONCURRENT="" CAIRN_SINGLE=""
declare -A CONSUME_RATE
run_cairn() {
    log "building cairn-cli (release)"
    cargo build --release --quiet -p cairn-cli >&2
    if ! "$BIN" serve --help 2>/dev/null | grep -q -- '--store'; then
        emit "cairn_error=serve_has_no_store_option"
        return 1
    fi
    if ! "$BIN" bench --help 2>/dev/null | grep -q -- '--consume-servers'; then
        emit "cairn_error=bench_has_no_consume_servers_option"
        return 1
    fi
    local line
    # Batched ingest: one client, then INGEST_CLIENTS (the same N facts in total).
    cairn_ingest ingest 1 && CAIRN_INGEST=$INGEST_LINE
    cairn_ingest "ingest_${INGEST_CLIENTS}clients" "$INGEST_CLIENTS" && CAIRN_INGEST_CONCURRENT=$INGEST_LINE
    # Single-fact latency: K sequential one-fact requests, one client.
    new_db cairn_single
    start_servers single 1 || return 1
    log "cairn single: $SAMPLES one-fact writes"
    cairn_bench "$WORK/single.txt" 0 --workload write --clients 1 --batch 1 --requests-max "$SAMPLES"
    line=$(one_line "$WORK/single.txt")
    stop_servers
    emit "cairn scenario=single $line"
    drop_db "$DB"
    CAIRN_SINGLE=$line
    # Consume: one subscription, C consumers in one bench process, through one server and
    # through three servers on one database (the same backlog, batch and consumers).
    consume_shared 1server 1 && CONSUME_RATE[one]=$SHARED_RATE
    consume_shared 3servers 3 && CONSUME_RATE[three]=$SHARED_RATE
    # The older variant (unless --consume-processes no): three processes, a subscription each,
    # C/3 consumers each.
    if [[ $CONSUME_PROCESSES == yes ]]; then
        consume_group 1server_3processes 1 3 && CONSUME_RATE[1x3]=$GROUP_RATE
        consume_group 3servers_3processes 3 3 && CONSUME_RATE[3x3]=$GROUP_RATE
    fi
    return 0
}

# ------------------------------------------------------------------ main

emit "bench=postgres date=$(date -u +%FT%TZ) host_cpus=$(nproc) loadavg_1m_start=$(loadavg) facts=$FACTS batch=$BATCH ingest_clients=$INGEST_CLIENTS samples=$SAMPLES consume_messages=$CONSUME_MESSAGES consume_clients=$CONSUME_CLIENTS consume_batch=$CONSUME_BATCH consume_processes=$CONSUME_PROCESSES put_facts=$PUT_FACTS postgres=$PGHOST:$PGPORT"
overall=0
if [[ $ONLY != cairn ]]; then run_direct || overall=1; fi
if [[ $ONLY != direct ]]; then run_cairn || overall=1; fi
emit "bench=postgres done=1 rc=$overall loadavg_1m_end=$(loadavg)"

# ------------------------------------------------------------------ summary

IC=$INGEST_CLIENTS
if [[ $ONLY != cairn ]]; then
    # The best one-connection direct method (the function is Cairn's own, not a baseline).
    read -r best_method best < <(for method in unnest values copy; do
        echo "$method ${DIRECT_INGEST_RATE[$method]:-0}"; done | sort -k2,2n | tail -1)
    summary "ingest facts=$FACTS batch=$BATCH direct_unnest_facts_per_s=${DIRECT_INGEST_RATE[unnest]:-} direct_values_facts_per_s=${DIRECT_INGEST_RATE[values]:-} direct_copy_facts_per_s=${DIRECT_INGEST_RATE[copy]:-} direct_function_facts_per_s=${DIRECT_INGEST_RATE[function]:-} direct_unnest_${IC}_clients_facts_per_s=${DIRECT_INGEST_RATE[unnest_concurrent]:-} direct_function_${IC}_clients_facts_per_s=${DIRECT_INGEST_RATE[function_concurrent]:-} best_direct=$best_method best_direct_facts_per_s=$best"
    summary "single samples=$SAMPLES direct_values_p50_ms=$(kv p50_ms <<<"${DIRECT_SINGLE[values]:-}") direct_values_p99_ms=$(kv p99_ms <<<"${DIRECT_SINGLE[values]:-}") direct_function_p50_ms=$(kv p50_ms <<<"${DIRECT_SINGLE[function]:-}") direct_function_p99_ms=$(kv p99_ms <<<"${DIRECT_SINGLE[function]:-}")"
fi
if [[ $ONLY == all && -n $CAIRN_INGEST$CAIRN_INGEST_CONCURRENT ]]; then
    cairn_rate=$(kv facts_per_s <<<"$CAIRN_INGEST")
    cairn_rate_concurrent=$(kv facts_per_s <<<"$CAIRN_INGEST_CONCURRENT")
    summary "ingest cairn_1_client_facts_per_s=$cairn_rate cairn_${IC}_clients_facts_per_s=$cairn_rate_concurrent ingest_ratio_1_client=$(ratio "$cairn_rate" "$best") ingest_ratio_${IC}_clients=$(ratio "$cairn_rate_concurrent" "$best") target_min=0.70 best_direct=$best_method cairn_${IC}_clients_vs_direct_unnest_${IC}_clients=$(ratio "$cairn_rate_concurrent" "${DIRECT_INGEST_RATE[unnest_concurrent]:-}") cairn_vs_unnest=$(ratio "$cairn_rate" "${DIRECT_INGEST_RATE[unnest]:-}") cairn_vs_values=$(ratio "$cairn_rate" "${DIRECT_INGEST_RATE[values]:-}") cairn_vs_copy=$(ratio "$cairn_rate" "${DIRECT_INGEST_RATE[copy]:-}") cairn_vs_function=$(ratio "$cairn_rate" "${DIRECT_INGEST_RATE[function]:-}") cairn_${IC}_clients_vs_function_${IC}_clients=$(ratio "$cairn_rate_concurrent" "${DIRECT_INGEST_RATE[function_concurrent]:-}")"
fi
if [[ $ONLY == all && -n $CAIRN_SINGLE ]]; then
    c50=$(kv p50_ms <<<"$CAIRN_SINGLE")
    c99=$(kv p99_ms <<<"$CAIRN_SINGLE")
    f50=$(kv p50_ms <<<"${DIRECT_SINGLE[function]:-}")
    summary "single cairn_p50_ms=$c50 cairn_p99_ms=$c99 cairn_vs_direct_p50=$(ratio "$c50" "$(kv p50_ms <<<"${DIRECT_SINGLE[values]:-}")") cairn_vs_direct_p99=$(ratio "$c99" "$(kv p99_ms <<<"${DIRECT_SINGLE[values]:-}")") target_max=1.50 function_p50_ms=$f50 cairn_vs_function_p50=$(ratio "$c50" "$f50") cairn_minus_function_p50_ms=$(difference "$c50" "$f50")"
fi
if [[ $ONLY != direct && -n ${CONSUME_RATE[one]:-}${CONSUME_RATE[three]:-} ]]; then
    summary "consume messages=$CONSUME_MESSAGES clients=$CONSUME_CLIENTS batch=$CONSUME_BATCH subscriptions=1 one_server_per_s=${CONSUME_RATE[one]:-} three_servers_per_s=${CONSUME_RATE[three]:-} three_servers_over_one=$(ratio "${CONSUME_RATE[three]:-}" "${CONSUME_RATE[one]:-}") target_min=2.00"
fi
if [[ $ONLY != direct && $CONSUME_PROCESSES == yes ]]; then
    summary "consume_processes messages=$CONSUME_MESSAGES processes=3 subscriptions=3 clients_per_process=$((CONSUME_CLIENTS / 3)) one_server_per_s=${CONSUME_RATE[1x3]:-} three_servers_per_s=${CONSUME_RATE[3x3]:-} three_servers_over_one=$(ratio "${CONSUME_RATE[3x3]:-}" "${CONSUME_RATE[1x3]:-}")"
fi
log "results in $RAW and $SUMMARY"
exit $overall
