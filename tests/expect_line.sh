#!/usr/bin/env bash
# usage: expect_line.sh REGEX COMMAND [ARGS...]
# Runs COMMAND, shows its output, and fails unless it exits with 0 (77, a skip, is passed through) and a line of its
# output matches REGEX (grep -E). Used to smoke-test the examples.
set -u
pattern=$1
shift
out=$("$@")
status=$?
printf '%s\n' "$out"
# 77 is meson's skip code (an example whose data set is absent): pass it through.
if [ "$status" -eq 77 ]; then
    exit 77
fi
if [ "$status" -ne 0 ]; then
    echo "expect_line: '$*' exited with status $status" >&2
    exit 1
fi
if ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "expect_line: no line of the output of '$*' matches /$pattern/" >&2
    exit 1
fi
