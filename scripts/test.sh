#!/usr/bin/env bash
# Runs every check without changing files: formatting, clippy (warnings are
# errors), and all tests of the workspace. This is the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
