#!/usr/bin/env bash
# Bounded fuzzing of every network-facing parser, for CI and by hand:
#
#     scripts/fuzz.sh [seconds_per_target]     (default 20)
#
# Installs cargo-fuzz if `cargo fuzz` is missing, builds every target of
# fuzz/ once, then runs each for the given time. Each target reads its kept
# inputs in fuzz/regressions/<target>/ (never written to) and grows a corpus
# in target/fuzz-corpus/<target>/ (not committed). When a target finds a
# crash, the input is copied into fuzz/regressions/<target>/ (commit it once
# the bug is fixed: crates/cairn-fuzz-checks/tests/regressions.rs replays it
# on stable from then on), the remaining targets still run, and the script
# exits non-zero.
#
# The stable toolchain runs cargo-fuzz with RUSTC_BOOTSTRAP=1, which allows
# the -Z flags it passes. The targets are built without AddressSanitizer by
# default: the parsers and checks hold no `unsafe` code, so ASan could only
# report what a panic already reports, while it costs about a third of the
# executions in the bounded time and twenty times the memory (measured on
# fact_json: 40k against 64k executions per second, 540 MB against 30 MB).
# CAIRN_FUZZ_SANITIZER=address (or leak, memory, thread) builds with one.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds_per_target="${1:-20}"
if ! [[ "$seconds_per_target" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [seconds_per_target]   (a positive whole number, default 20)" >&2
    exit 2
fi
sanitizer="${CAIRN_FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo fuzz is missing; installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1

# One build of all targets up front, so that a build error stops the run
# before any fuzzing and the per-target time is spent fuzzing.
cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer"

mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
failed_targets=()
for target in "${targets[@]}"; do
    corpus="target/fuzz-corpus/$target"
    artifacts="target/fuzz-artifacts/$target"
    regressions="fuzz/regressions/$target"
    mkdir -p "$corpus" "$regressions"
    rm -rf "$artifacts"
    mkdir -p "$artifacts"
    echo "=== fuzzing $target for ${seconds_per_target}s" >&2
    # The first corpus folder is where libFuzzer writes new inputs; the
    # regressions folder after it is only read. -timeout makes an input that
    # takes seconds (a denial of service) count as a failure.
    if cargo fuzz run --fuzz-dir fuzz --sanitizer "$sanitizer" "$target" \
        "$corpus" "$regressions" -- \
        -max_total_time="$seconds_per_target" -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix="$artifacts/" -print_final_stats=1 \
        >"$artifacts/log.txt" 2>&1; then
        grep -E '^Done' "$artifacts/log.txt" >&2 || true
        continue
    fi
    failed_targets+=("$target")
    # The panic message (or sanitizer report) and where the input went; the
    # stack traces stay in the log.
    grep -E -A1 '(panicked at|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer))' \
        "$artifacts/log.txt" | head -n 12 >&2 || true
    echo "full log: $artifacts/log.txt" >&2
    kept_any=false
    for crash in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* \
        "$artifacts"/oom-*; do
        [ -f "$crash" ] || continue
        cp "$crash" "$regressions/"
        kept_any=true
        echo "kept $regressions/$(basename "$crash"); reproduce with:" >&2
        echo "    RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir fuzz $target $regressions/$(basename "$crash")" >&2
        echo "    cargo test -p cairn-fuzz-checks --test regressions" >&2
    done
    if [ "$kept_any" = false ]; then
        echo "$target failed without leaving an input; the full log is $artifacts/log.txt" >&2
    fi
done

if [ "${#failed_targets[@]}" -gt 0 ]; then
    echo "fuzzing failed for: ${failed_targets[*]}" >&2
    exit 1
fi
echo "fuzzed ${#targets[@]} targets for ${seconds_per_target}s each: no failure" >&2
