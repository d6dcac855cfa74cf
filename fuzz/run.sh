#!/usr/bin/env bash
# Runs every fuzz target (or those named) for a bounded time each, on one job, growing
# fuzz/corpus/<target>/ and writing crash inputs to fuzz/artifacts/<target>/.
#
#   fuzz/run.sh                      # every target, 60 s each
#   FUZZ_SECONDS=300 fuzz/run.sh voting normalize
#   FUZZ_KEEP_GOING=0 fuzz/run.sh    # stop a target at its first crash
#
# FUZZ_SECONDS     time per target (default 60)
# FUZZ_KEEP_GOING  1 (default): fork mode, so a target keeps fuzzing past a crash and
#                  can find several bugs in one run; 0: stop at the first
# FUZZ_SANITIZER   address (default) or none (about twice the executions, but no
#                  check of the unsafe code's memory accesses)
# FUZZ_TOOLCHAIN   the nightly toolchain to use (default nightly)
#
# Needs `cargo install cargo-fuzz`. Prints one summary line per target; exits 1 if any
# target left a new crash input. Afterwards: `fuzz/run.sh` does not minimise; see
# fuzz/README.md for `cargo fuzz cmin` / `tmin` before committing.
set -euo pipefail

cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
keep_going=${FUZZ_KEEP_GOING:-1}
sanitizer=${FUZZ_SANITIZER:-address}
toolchain=${FUZZ_TOOLCHAIN:-nightly}

if [ $# -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(cargo "+$toolchain" fuzz list)
fi

cargo "+$toolchain" fuzz build -s "$sanitizer" --debug-assertions

logs=$(mktemp -d)
found=0
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    before=$(find "artifacts/$t" -type f | wc -l)
    args=(-max_total_time="$seconds" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048)
    if [ "$keep_going" = 1 ]; then
        # One child process at a time; a crash or timeout is saved and fuzzing goes on.
        args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    # cargo fuzz exits non-zero on a crash: the summary below reports it.
    cargo "+$toolchain" fuzz run -s "$sanitizer" --debug-assertions "$t" "corpus/$t" -- \
        "${args[@]}" >"$logs/$t.log" 2>&1 || true
    after=$(find "artifacts/$t" -type f | wc -l)
    # Fork mode reports its total as "stat::number_of_executed_units" or on its
    # "DONE" line; plain mode in the final stats.
    execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$logs/$t.log" | grep -Eo '[0-9]+$' | tail -1 || true)
    if [ -z "$execs" ]; then
        execs=$(grep -Eo '#[0-9]+' "$logs/$t.log" | tr -d '#' | sort -n | tail -1 || true)
    fi
    corpus=$(find "corpus/$t" -type f | wc -l)
    echo "$t: executions=${execs:-?} corpus=$corpus new_crash_inputs=$((after - before)) log=$logs/$t.log"
    if [ "$after" -gt "$before" ]; then
        found=1
    fi
done
exit "$found"
