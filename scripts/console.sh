#!/usr/bin/env bash
# The web console's checks (see console/ and docs/console.md), without
# changing tracked files:
#   1. install the front-end tools from the lock file (`npm ci`), rebuild the
#      console into a temporary directory and fail if it differs from the
#      built files committed under crates/cairn-server/console/ (which the
#      server compiles in, so `cargo build` never needs Node.js);
#   2. the browser tests (console/tests/): Debian's Chromium driven by
#      playwright-core against a real `cairn serve` (target/debug/cairn,
#      built by `cargo test` before this runs), on the embedded store, and
#      again on PostgreSQL unless CAIRN_TEST_POSTGRES=skip.
set -euo pipefail
cd "$(dirname "$0")/../console"
npm ci --no-audit --no-fund --loglevel=error
built="$(mktemp -d)"
trap 'rm -rf "$built"' EXIT
node build.mjs "$built"
if ! diff -r "$built" ../crates/cairn-server/console; then
    echo "the committed console differs from a build of console/: run 'npm run build' in console/ and commit" >&2
    exit 1
fi
export CAIRN_BIN="${CAIRN_BIN:-$PWD/../target/debug/cairn}"
node --test --test-concurrency=1 tests/
if [ "${CAIRN_TEST_POSTGRES:-}" != "skip" ]; then
    CAIRN_TEST_BACKEND=postgres node --test --test-concurrency=1 tests/
fi
