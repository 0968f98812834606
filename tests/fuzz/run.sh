#!/usr/bin/env bash
# Builds nabla's libFuzzer targets and runs each one, failing on any crash, leak, hang, over-large allocation or
# sanitizer report.
#
#   tests/fuzz/run.sh [SECONDS] [BUILD_DIR]
#
# SECONDS (default 60) is the total time, split evenly across the targets; BUILD_DIR (default build-fuzz, relative
# to the source root) is configured with CC=clang -Dfuzz=true when it does not exist. Needs clang with libFuzzer
# (Debian: apt-get install clang) and meson/ninja. Inputs the fuzzer finds interesting go to a temporary copy of
# the seed corpus, so the repository is never modified; a failing input is saved as
# <BUILD_DIR>/fuzz-artifacts/<target>/crash-... (or leak-, timeout-, oom-) and its path printed.
# To reproduce one: <BUILD_DIR>/tests/fuzz/fuzz_<target> <that file>. After fixing the bug, keep the input as
# tests/fuzz/corpus/<target>/regress_<what> (meson test --suite fuzz in the fuzz build replays the corpora).
# Longer run, e.g. 10 minutes per target: tests/fuzz/run.sh 2400.
set -euo pipefail

total=${1:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${2:-build-fuzz}
case $build in /*) ;; *) build=$root/$build ;; esac
targets=(safetensors idx gzip csv)

if [ ! -f "$build/build.ninja" ]; then
    CC=${CC:-clang} meson setup "$build" "$root" -Dfuzz=true -Dtests=false -Dexamples=false -Dbench=false \
        -Dbuildtype=debugoptimized >/dev/null
fi
if ! log=$(ninja -C "$build" $(printf 'tests/fuzz/fuzz_%s ' "${targets[@]}") 2>&1); then
    echo "$log" | tail -n 30
    echo "fuzz: build failed"
    exit 1
fi

each=$(( total / ${#targets[@]} ))
[ "$each" -ge 1 ] || each=1
work=$(mktemp -d)
# Each input is written to a file (the parsers read paths): a memory file system makes that cheap.
if [ -z "${TMPDIR:-}" ] && [ -d /dev/shm ] && [ -w /dev/shm ]; then export TMPDIR=/dev/shm; fi
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "$build/fuzz-artifacts/$t"
    dict=()
    [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
    echo "fuzz_$t: ${each}s"
    # -timeout: an input taking 10 s is a hang. -rss_limit_mb / -malloc_limit_mb: no input of at most -max_len
    # bytes may make the process use 1 GB, or ask for more than 64 MB at once: a header claiming a huge size must
    # be checked against the file before anything is allocated. (The largest honest allocation: 4 KB of gzip
    # inflate to at most 4.2 MB, an IDX label file of that size becomes 34 MB of i64.)
    # Leaks are reported by AddressSanitizer's leak checker after each run of new coverage (-detect_leaks=1).
    if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=0 \
         UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
         "$build/tests/fuzz/fuzz_$t" "${dict[@]}" -max_total_time="$each" -timeout=10 -rss_limit_mb=1024 \
            -malloc_limit_mb=64 -max_len=4096 -detect_leaks=1 -print_final_stats=1 \
            -artifact_prefix="$build/fuzz-artifacts/$t/" "$work/$t" "$root/tests/fuzz/corpus/$t" \
            >"$work/$t.log" 2>&1; then
        tail -n 60 "$work/$t.log"
        failed+=("$t")
    else
        grep -E '^stat::number_of_executed_units|^#[0-9]+ *DONE' "$work/$t.log" | tail -n 2 || true
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: FAILED: ${failed[*]}"
    exit 1
fi
echo "fuzz: all ${#targets[@]} targets ran ${each}s each without a finding"
