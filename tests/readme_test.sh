#!/usr/bin/env bash
# Keeps README.md's C example true: the build extracts it and compiles it against the in-tree library, and the
# test runs it and compares its output with the block written right below it in the README.
#   readme_test.sh extract README.md example.c expected.txt
#       writes the first ```c block to example.c and the next ``` block after it to expected.txt
#   readme_test.sh run EXAMPLE expected.txt
#       runs EXAMPLE and fails unless it exits with 0 and prints exactly expected.txt
set -euo pipefail

case "${1:-}" in
extract)
    readme=$2 code=$3 expected=$4
    : >"$code"
    : >"$expected"
    awk -v code="$code" -v expected="$expected" '
        state == 0 && /^```c[ \t]*$/ { state = 1; next }
        state == 1 && /^```[ \t]*$/  { state = 2; next }
        state == 1                   { print > code; next }
        state == 2 && /^```/         { state = 3; next }
        state == 3 && /^```[ \t]*$/  { state = 4; exit }
        state == 3                   { print > expected }
        END { if (state != 4) { print "readme_test: README lacks a ```c block followed by an output block" > "/dev/stderr"; exit 1 } }
    ' "$readme"
    ;;
run)
    example=$2 expected=$3
    actual=$("$example") || { echo "readme_test: the README example exited with status $?" >&2; exit 1; }
    if ! diff -u --label "README.md (expected)" --label "README example (actual)" "$expected" - <<<"$actual"; then
        echo "readme_test: the README example's output differs from the README; update one of them" >&2
        exit 1
    fi
    echo "README example output matches"
    ;;
*)
    echo "usage: readme_test.sh extract README.md example.c expected.txt | run EXAMPLE expected.txt" >&2
    exit 2
    ;;
esac
