# Shared by bench/cairn.sh and bench/scale.sh (sourced, not run): builds
# Cairn, starts and stops one `cairn serve` on loopback, and removes
# everything on exit. The caller sets PORT and a TMP prefix first.
# Every process started here is stopped by its PID.

cargo build --release --quiet
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn"
TMP="$(mktemp -d "/tmp/$TMP_PREFIX.XXXXXX")"
URL="http://127.0.0.1:$PORT"
SERVER_PID=""
READY_MS=""

cleanup() {
  if [[ -n "$SERVER_PID" ]]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT

# Starts the server on $TMP/data; sets SERVER_PID, and READY_MS to the
# milliseconds until /v1/health answered 200.
start_server() {
  local started; started=$(date +%s%N)
  "$BIN" serve --data "$TMP/data" --listen "127.0.0.1:$PORT" >/dev/null 2>>"$TMP/server.log" &
  SERVER_PID=$!
  for _ in $(seq 1 3000); do
    if curl -sf "$URL/v1/health" >/dev/null; then
      READY_MS=$(( ($(date +%s%N) - started) / 1000000 )); return 0
    fi
    sleep 0.01
  done
  echo "server did not start" >&2; tail "$TMP/server.log" >&2; exit 1
}

# Stops the server with SIGTERM and waits for it.
stop_server() {
  kill "$SERVER_PID"; wait "$SERVER_PID" || true; SERVER_PID=""
}

# Prints one metric of the running server.
metric() { curl -s "$URL/metrics" | awk -v name="$1" '$1==name {print $2}'; }
