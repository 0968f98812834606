#!/usr/bin/env bash
# Runs every example's smoke test under valgrind memcheck: any invalid read or write, use of uninitialized memory,
# or definite/possible leak fails the run.
#
#   tests/valgrind.sh [BUILD_DIR [RUN...]]
#
# BUILD_DIR (default build, relative to the source root) is a configured, non-sanitized build with the examples
# (it is built here). RUN names limit the runs to those listed (see `runs` below), e.g. to leave out the MNIST
# ones, which spend minutes decompressing the data set under memcheck. Needs valgrind (Debian: apt-get install valgrind). Examples that need a data set skip (as
# their smoke tests do) when $NABLA_DATA (default ../shared/data) lacks it. The runs are shorter than the meson
# smoke tests' because memcheck is 20-50 times slower; they cover the same code paths.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
case $build in /*) ;; *) build=$root/$build ;; esac
export NABLA_DATA=${NABLA_DATA:-$root/../shared/data}
# One thread: valgrind serializes threads anyway, and the pool's workers would only add scheduling noise.
export NABLA_NUM_THREADS=${NABLA_NUM_THREADS:-1}
export NB_PROGRESS=off

command -v valgrind >/dev/null || { echo "valgrind.sh: valgrind not found (apt-get install valgrind)"; exit 1; }
shift $(( $# > 0 ? 1 : 0 ))
only=" $* "
examples=(moons iris mnist_mlp regression optimizers perceptron xor finetune mnist_cnn tiny_gpt)
if ! log=$(ninja -C "$build" "${examples[@]/#/examples/}" 2>&1); then
    echo "$log" | tail -n 30
    echo "valgrind.sh: build failed"
    exit 1
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
e=$build/examples
runs=(
    "moons|$e/moons --steps 20 --svg $out/moons.svg --loss-svg $out/moons_loss.svg --save $out/moons.safetensors"
    "moons_load|$e/moons --load $out/moons.safetensors --steps 0 --svg $out/m2.svg --loss-svg $out/m2_loss.svg"
    "iris|$e/iris --epochs 2"
    "iris_cv|$e/iris --epochs 1 --cv 2"
    "mnist_mlp|$e/mnist_mlp --limit 300 --epochs 1 --arch 32"
    "regression|$e/regression --epochs 2 --svg $out/regression.svg"
    "optimizers|$e/optimizers --steps 10 --svg $out/optimizers.svg"
    "perceptron|$e/perceptron --epochs 20"
    "xor|$e/xor --steps 200"
    "finetune|$e/finetune --limit 200 --pretrain-epochs 1 --epochs 1 --unfreeze-epochs 1 --one-cycle --scratch-epochs 1 --save $out/ft.safetensors"
    "mnist_cnn|$e/mnist_cnn --limit 100 --epochs 1 --save $out/cnn.safetensors"
    "tiny_gpt|$e/tiny_gpt --steps 2 --finetune-steps 2 --batch 2 --context 8 --layers 1 --heads 2 --width 8 --eval-every 2 --eval-batches 1 --sample 10 --save $out/gpt.safetensors --save-lora $out/lora.safetensors"
    "tiny_gpt_load|$e/tiny_gpt --steps 0 --finetune-steps 2 --batch 2 --context 8 --layers 1 --heads 2 --width 8 --eval-every 2 --eval-batches 1 --sample 10 --load $out/gpt.safetensors"
)
failed=()
passed=0
skipped=0
for r in "${runs[@]}"; do
    name=${r%%|*}
    cmd=${r#*|}
    [ "$only" = "  " ] || [[ $only == *" $name "* ]] || continue
    # shellcheck disable=SC2086 # the command line is split on purpose
    # (--track-origins=yes would say where uninitialized values come from, at twice the cost: add it to
    # VALGRIND_OPTS when a run fails.)
    start=$SECONDS
    valgrind --tool=memcheck --error-exitcode=99 --leak-check=full --show-leak-kinds=definite,indirect,possible \
        --errors-for-leak-kinds=definite,indirect,possible --quiet \
        --log-file="$out/$name.vg" $cmd >"$out/$name.out" 2>&1
    status=$?
    took=$((SECONDS - start))
    if [ $status -eq 77 ]; then
        echo "valgrind: $name skipped (no data set)"
        skipped=$((skipped + 1))
    elif [ $status -ne 0 ] || [ -s "$out/$name.vg" ]; then
        echo "valgrind: $name FAILED (exit $status): $cmd"
        tail -n 20 "$out/$name.out"
        cat "$out/$name.vg"
        failed+=("$name")
    else
        echo "valgrind: $name ok (${took}s)"
        passed=$((passed + 1))
    fi
done
echo "valgrind: $passed clean, $skipped skipped, ${#failed[@]} failed${failed:+: ${failed[*]}}"
[ ${#failed[@]} -eq 0 ]
