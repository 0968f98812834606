#!/usr/bin/env bash
# usage: expect_line.sh REGEX COMMAND [ARGS...]
# Runs COMMAND, shows its output, and fails unless it exits with 0 and a line of its output matches REGEX
# (grep -E). Used to smoke-test the examples.
set -u
pattern=$1
shift
out=$("$@")
status=$?
printf '%s\n' "$out"
if [ "$status" -ne 0 ]; then
    echo "expect_line: '$*' exited with status $status" >&2
    exit 1
fi
if ! grep -Eq -- "$pattern" <<<"$out"; then
    echo "expect_line: no line of the output of '$*' matches /$pattern/" >&2
    exit 1
fi
