#!/usr/bin/env bash
# Runs every check without changing tracked files (a crash the fuzzer finds
# is copied into fuzz/regressions/ for review): formatting, the licences of
# all dependencies (scripts/licences.sh), clippy (warnings are errors; the
# SDK also with its default features alone), cairn-sql built with each of
# its database features alone, all tests of the workspace
# (among them the deterministic simulation suite and bounded `cairn check`
# runs on both backends), the instruction-count guard of the core paths
# (bench/instructions.sh: callgrind against a committed baseline),
# schemathesis against a live server and its
# OpenAPI document, the web console's build check and browser tests, the
# end-to-end tests of the server again on the PostgreSQL backend (the same
# tests, each server on a fresh database) plus the multi-server tests, and
# a bounded fuzzing run of every network-facing parser
# (CAIRN_FUZZ_SECONDS per target, default 20; 0 skips it). This is the
# README's test command.
#
# PostgreSQL is expected at 127.0.0.1:5432 (user postgres, trust auth,
# database `test`); CAIRN_TEST_POSTGRES=<url> names another server, and
# CAIRN_TEST_POSTGRES=skip skips everything that needs PostgreSQL.
#
# `./scripts/test.sh --long` runs the long tier instead (an hour of
# `cairn check` per backend: see scripts/test-long.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--long" ]; then
    exec ./scripts/test-long.sh
fi
# Each phase's wall time goes to stderr, so that a slow CI run shows where
# its time went.
phase() {
    local started=$SECONDS
    "$@"
    echo "[test.sh] $((SECONDS - started)) s: $*" >&2
}
phase cargo fmt --all -- --check
phase ./scripts/licences.sh
phase cargo clippy --workspace --all-targets --locked -- -D warnings
# The SDK as applications get it by default (the workspace build above
# always turns on its `embedded` feature, which its own tests use).
phase cargo clippy -p cairn-client --lib --locked -- -D warnings
# cairn-sql with each database driver alone (the workspace build above
# turns both on, and its tests need both).
phase cargo check -p cairn-sql --lib --locked --no-default-features --features sqlite
phase cargo check -p cairn-sql --lib --locked --no-default-features --features postgres
phase cargo test --workspace --locked
# The core paths' instruction counts (callgrind, a release build) against
# bench/instructions-baseline.txt: fails on more than +5% (under a minute
# of valgrind after the build).
phase ./bench/instructions.sh
# The live API against its OpenAPI document (schemathesis, pinned; installed
# into target/ on first use).
phase ./scripts/api-conformance.sh
# The web console: its committed build matches its sources, and the browser
# tests on both backends (Debian's Chromium, playwright-core).
phase ./scripts/console.sh
fuzz_seconds="${CAIRN_FUZZ_SECONDS:-20}"
if [ "$fuzz_seconds" != 0 ]; then
    phase ./scripts/fuzz.sh "$fuzz_seconds"
fi
if [ "${CAIRN_TEST_POSTGRES:-}" = "skip" ]; then
    echo "CAIRN_TEST_POSTGRES=skip: the PostgreSQL backend's end-to-end tests were skipped" >&2
    exit 0
fi
CAIRN_TEST_BACKEND=postgres phase cargo test --locked -p cairn-cli \
    --test api --test bad_input --test subscriptions --test stream --test cli_subs --test cli_sagas \
    --test delivery_faults --test multi_server_reads --test multi_server_consumers \
    --test multi_server_kill --test multi_server_outage --test auth --test auth_endpoints \
    --test timers --test collaboration --test links --test diff --test schemas \
    --test schemas_cli --test boundaries --test console_api
# The saga crash loop on PostgreSQL (about two minutes).
CAIRN_TEST_BACKEND=postgres phase cargo test --locked -p cairn-example-checkout --test checkout
# Test databases still there belong to test processes that have ended.
psql "${CAIRN_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}" -qtAc \
    "SELECT datname FROM pg_database WHERE datname LIKE 'cairn\_test\_%'" |
    while read -r name; do
        [ -d "/proc/$(echo "$name" | cut -d_ -f3)" ] && continue
        psql "${CAIRN_TEST_POSTGRES:-postgres://postgres@127.0.0.1:5432/test}" -qc \
            "DROP DATABASE IF EXISTS $name WITH (FORCE)"
    done
