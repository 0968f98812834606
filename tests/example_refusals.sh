#!/usr/bin/env bash
# usage: example_refusals.sh BUILD_EXAMPLES_DIR
# Bad command lines make the examples stop at once with their exit status (2 for a bad flag, 1 for memory that
# is not there) and a message naming the flag, instead of crashing, hanging or allocating without end.
set -u
dir=$1
# Under AddressSanitizer a huge allocation aborts instead of returning NULL as the C library's does.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1"
failed=0
# expected status, pattern of the message on stderr, command...
check() {
    local want=$1 pattern=$2
    shift 2
    local err status
    err=$(timeout 60 "$@" 2>&1 >/dev/null)
    status=$?
    if [ "$status" -ne "$want" ] || ! grep -Eq -- "$pattern" <<<"$err"; then
        echo "FAIL: '$*' exited $status with: $err (expected $want and /$pattern/)"
        failed=$((failed + 1))
    else
        echo "ok: ${*##*/}: $err"
    fi
}
check 1 'out of memory for --epochs 768614336404564650' "$dir/perceptron" --epochs 768614336404564650
check 2 'lr > 0' "$dir/regression" --lr -1
check 2 "--lr expects a finite number, got 'nan'" "$dir/regression" --lr nan
check 2 'unknown argument' "$dir/moons" --no-such-flag
check 2 'would need [0-9.e+]+ GB to train; this machine has' "$dir/tiny_gpt" --layers 1000000000
check 2 'would need [0-9.e+]+ GB to train' "$dir/tiny_gpt" --width 4000000000 --heads 1
echo "$((6 - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
