#!/usr/bin/env bash
# The instruction-count guard: counts the instructions of Cairn's core
# paths with valgrind's callgrind and fails if one of them grew by more
# than the threshold over the committed baseline
# (bench/instructions-baseline.txt). Instruction counts repeat from run to
# run where wall time on a shared machine does not, so this short run can
# sit in the fast test tier (scripts/test.sh) and catch a large
# regression; it is not a benchmark (bench/cairn.sh is).
#
# The workload is crates/cairn-instructions: one path per process, fixed
# inputs, and two marker functions around the measured part. Callgrind
# zeroes its counters when the first is entered and dumps them when the
# second is, so the count covers every thread of the measured part (the
# store's writer thread included) and nothing of start-up, setup or
# teardown.
#
#   bench/instructions.sh                  # every path once, compare, table
#   bench/instructions.sh --runs 5         # five runs each: the median is compared, the spread shown
#   bench/instructions.sh --update         # rewrite the baseline (median of five runs each)
#   bench/instructions.sh --only delivery  # one path
#
# CAIRN_INSTRUCTIONS_THRESHOLD_PERCENT (default 5) is the growth allowed.
# Counts depend on the compiler, the dependencies' versions (Cargo.lock)
# and valgrind's version: after changing one of them, run --update and
# commit the new baseline with the change.
set -euo pipefail
cd "$(dirname "$0")/.."

baseline=bench/instructions-baseline.txt
threshold_percent="${CAIRN_INSTRUCTIONS_THRESHOLD_PERCENT:-5}"
runs=""
update=0
only=""
while [ $# -gt 0 ]; do
    case "$1" in
        --update) update=1 ;;
        --runs) runs="$2"; shift ;;
        --only) only="$2"; shift ;;
        *) echo "usage: bench/instructions.sh [--update] [--runs N] [--only PATH]" >&2; exit 2 ;;
    esac
    shift
done
if [ -z "$runs" ]; then
    if [ "$update" = 1 ]; then runs=5; else runs=1; fi
fi

if ! command -v valgrind > /dev/null; then
    echo "valgrind is not installed (Debian: apt-get install valgrind); .ci/run installs it" >&2
    exit 1
fi
# The release profile (the workspace's, with `debug = 1`): the code that
# ships, with the symbols callgrind needs to find the markers.
cargo build --release --locked --quiet -p cairn-instructions
binary="${CARGO_TARGET_DIR:-$PWD/target}/release/cairn-instructions"

work="$(mktemp -d /tmp/cairn-instructions.XXXXXX)"
trap 'rm -rf "$work"' EXIT

# Prints the instructions of the measured part of one run of path $1.
count() {
    local path="$1" run="$2" out dumps
    out="$work/$path.$run"
    # TMPDIR: the workload's stores go under $work, removed on exit even if
    # the workload dies.
    if ! TMPDIR="$work" valgrind --tool=callgrind \
        --callgrind-out-file="$out.callgrind.%p" \
        --zero-before=cairn_instructions::measurement_begins \
        --dump-before=cairn_instructions::measurement_ends \
        --dump-line=no --dump-instr=no \
        "$binary" "$path" > "$out.stdout" 2> "$out.valgrind"; then
        echo "path $path: the workload failed under valgrind:" >&2
        grep -v '^==[0-9]*==' "$out.valgrind" | head -n 20 >&2
        exit 1
    fi
    dumps="$(grep -l '^desc: Trigger: --dump-before=cairn_instructions::measurement_ends' "$out".callgrind.* || true)"
    if [ "$(printf '%s' "$dumps" | grep -c .)" != 1 ]; then
        echo "path $path: callgrind made no dump at the end marker (was cairn_instructions::measurement_ends renamed or inlined?)" >&2
        exit 1
    fi
    # `totals:` is the sum of the costs in the dump: every thread's
    # instructions since the counters were zeroed.
    awk '/^totals:/ { print $2 }' "$dumps"
    rm -f "$out".callgrind.*
}

# The units (facts, messages) the last run of path $1 handled.
units_of() { sed -n 's/.* units=\([0-9]*\) unit=\(.*\)/\1 \2/p' "$work/$1.$runs.stdout"; }

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

if [ -n "$only" ]; then
    if ! "$binary" --list | grep -qx -- "$only"; then
        echo "unknown path $only; the paths are:" $("$binary" --list) >&2
        exit 2
    fi
    paths="$only"
else
    paths="$("$binary" --list)"
fi

started=$(date +%s)
declare -A measured spread
for path in $paths; do
    counts=()
    for run in $(seq 1 "$runs"); do
        counts+=("$(count "$path" "$run")")
    done
    measured[$path]="$(printf '%s\n' "${counts[@]}" | median)"
    if [ "$runs" -gt 1 ]; then
        spread[$path]="$(printf '%s\n' "${counts[@]}" | sort -n | awk '
            NR == 1 { low = $1 } { high = $1 }
            END { printf "min %d max %d spread %.3f%%", low, high, (high - low) * 100 / low }')"
        echo "path $path: ${counts[*]} (${spread[$path]})" >&2
    fi
done
elapsed=$(( $(date +%s) - started ))

if [ "$update" = 1 ]; then
    {
        echo "# Instructions of the measured part of each path of crates/cairn-instructions,"
        echo "# counted by valgrind's callgrind: the median of $runs runs each, made by"
        echo "# \`bench/instructions.sh --update\` on $(date -u +%Y-%m-%d) with"
        echo "# $(rustc --version), $(valgrind --version), $(uname -m)."
        echo "# Counts depend on the compiler, the dependencies' versions (Cargo.lock) and"
        echo "# valgrind: regenerate this file after changing one of them."
        echo "# path instructions"
        for path in $paths; do
            echo "$path ${measured[$path]}"
        done
    } > "$baseline.new"
    if [ -n "$only" ] && [ -f "$baseline" ]; then
        # Keep the other paths' lines and the header of the new file.
        grep -v "^#" "$baseline" | grep -v "^$only " >> "$baseline.new" || true
    fi
    mv "$baseline.new" "$baseline"
    echo "wrote $baseline ($elapsed s)" >&2
    cat "$baseline"
    exit 0
fi

if [ ! -f "$baseline" ]; then
    echo "no baseline $baseline: run bench/instructions.sh --update and commit it" >&2
    exit 1
fi
if ! grep -qF "$(rustc --version)" "$baseline" || ! grep -qF "$(valgrind --version)" "$baseline"; then
    echo "note: $baseline was made with another rustc or valgrind than $(rustc --version), $(valgrind --version); counts may differ for that reason alone" >&2
fi
failed=0
printf '%-12s %15s %15s %7s %14s  %s\n' path baseline measured ratio "per unit" result
for path in $paths; do
    expected="$(awk -v path="$path" '$1 == path { print $2 }' "$baseline")"
    got="${measured[$path]}"
    read -r units unit <<< "$(units_of "$path")"
    per_unit="$(awk -v got="$got" -v units="$units" 'BEGIN { printf "%.0f", got / units }')/$unit"
    if [ -z "$expected" ]; then
        printf '%-12s %15s %15s %7s %14s  %s\n' "$path" - "$got" - "$per_unit" "no baseline"
        echo "path $path has no line in $baseline: run bench/instructions.sh --update and commit it" >&2
        failed=1
        continue
    fi
    ratio="$(awk -v got="$got" -v expected="$expected" 'BEGIN { printf "%.3f", got / expected }')"
    verdict="$(awk -v ratio="$ratio" -v threshold="$threshold_percent" 'BEGIN {
        if (ratio > 1 + threshold / 100) print "REGRESSION";
        else if (ratio < 1 - threshold / 100) print "faster (update the baseline)";
        else print "ok" }')"
    printf '%-12s %15s %15s %7s %14s  %s\n' "$path" "$expected" "$got" "$ratio" "$per_unit" "$verdict"
    if [ "$verdict" = REGRESSION ]; then
        echo "instruction-count regression in path $path: baseline $expected, measured $got, ratio $ratio (more than +$threshold_percent% allowed)" >&2
        failed=1
    fi
done
echo "instruction counts of $(echo "$paths" | wc -w) paths × $runs runs in $elapsed s (threshold +$threshold_percent%)" >&2
exit "$failed"
