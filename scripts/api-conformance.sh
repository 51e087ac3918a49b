#!/usr/bin/env bash
# Runs schemathesis against a live `cairn serve` over every operation of the
# OpenAPI document (GET /v1/openapi.json), with its conformance checks: no
# 5xx, and every status code, content type, header and body as documented.
#
#     scripts/api-conformance.sh [max_examples_per_operation]   (default 30)
#
# CAIRN_SCHEMATHESIS_SEED sets the seed (default fixed, so a CI run is
# repeatable; `random` draws one and prints it). Installs the pinned
# schemathesis into target/schemathesis-venv if it is missing. The server
# runs on a fresh data directory on a free loopback port, with long-polls
# held at most 50 ms (`--long-poll-ms-max`, the documented test profile),
# and is stopped by its PID whatever happens.
set -euo pipefail
cd "$(dirname "$0")/.."

schemathesis_version="4.32.5"
max_examples="${1:-30}"
seed="${CAIRN_SCHEMATHESIS_SEED:-20261206}"
if [ "$seed" = random ]; then
    seed=$RANDOM$RANDOM
fi
venv="${CARGO_TARGET_DIR:-target}/schemathesis-venv"
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$schemathesis_version"; then
    echo "installing schemathesis $schemathesis_version into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "schemathesis==$schemathesis_version"
fi

cargo build --locked --quiet --bin cairn
venv_dir=$(cd "$venv" && pwd)
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"${CARGO_TARGET_DIR:-target}/debug/cairn" serve --data "$data" --listen "127.0.0.1:$port" --long-poll-ms-max 50 \
    2> "$data.log" &
server_pid=$!
cleanup() {
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    rm -rf "$data" "$data.log"
}
trap cleanup EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
    curl -sf "$base/v1/health" > /dev/null && break
    sleep 0.1
done

echo "schemathesis $schemathesis_version against $base, seed $seed, $max_examples examples per operation" >&2
# A subscription and a fact, so that the operations on a name or hash also
# reach their success paths.
curl -sf -X PUT "$base/v1/subscriptions/s" -H 'content-type: application/json' \
    -d '{"type": "Conformance.Probe"}' > /dev/null
curl -sf "$base/v1/facts" -H 'content-type: application/json' \
    -d '{"facts": [{"type": "Conformance.Probe", "fields": {}, "predecessors": {}}]}' > /dev/null

# Schemathesis keeps a cache in its working directory: run it in target/.
target_dir=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)
(cd "$target_dir" && "$venv_dir/bin/schemathesis" run "$base/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance \
    --max-examples "$max_examples" \
    --seed "$seed" \
    --generation-database none \
    --request-timeout 10 \
    --workers 1 \
    --no-color \
    --suppress-health-check all \
    --report-dir "$target_dir/schemathesis-report")
