#!/usr/bin/env bash
# usage: example_refusals.sh BUILD_EXAMPLES_DIR
# Bad command lines make the examples stop at once with their exit status (2 for a bad flag, 1 for memory that
# is not there) and a message naming the flag, instead of crashing, hanging or allocating without end.
set -u
dir=$1
# Under AddressSanitizer a huge allocation aborts instead of returning NULL as the C library's does.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}allocator_may_return_null=1"
failed=0 checks=0
# expected status, pattern of the message on stderr, command...
check() {
    local want=$1 pattern=$2
    shift 2
    local err status
    err=$(timeout 60 "$@" 2>&1 >/dev/null)
    status=$?
    checks=$((checks + 1))
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
# Products of --batch, --eval-batches and --context that overflow int64 (they sized buffers that were then overrun)
check 2 '--batch 2305843009213693953 --eval-batches 8 --context 64 are too large' "$dir/tiny_gpt" \
    --batch 2305843009213693953
check 2 '--batch 1 --eval-batches 2305843009213693953 --context 8 are too large' "$dir/tiny_gpt" \
    --eval-batches 2305843009213693953 --batch 1 --context 8

# Malformed MNIST sets: refused when loaded, naming the file, instead of training on nothing, printing an accuracy
# of nan, or failing later without a file name. The files are uncompressed IDX (nb_read_idx tells them from gzip by
# their content) of a few images. An MPI build starts MPI even in a world of one: Open MPI refuses root without the
# first two, and its own leaks would fill a sanitized build's messages (the settings of mpi_test_env, meson.build).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mca_base_component_disable_dlclose=1
supp="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/dist_lsan.supp"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}suppressions=$supp:fast_unwind_on_malloc=0:print_suppressions=0"
sets=$(mktemp -d)
trap 'rm -rf "$sets"' EXIT
byte() { printf "\\$(printf %03o "$1")"; }
# idx FILE FILL DIM...: an IDX file of unsigned bytes of the given sizes, every byte FILL (an octal escape)
idx() {
    local file=$1 fill=$2 count=1 d
    shift 2
    {
        printf '\0\0\10'
        byte $#
        for d in "$@"; do
            byte $((d >> 24 & 255)); byte $((d >> 16 & 255)); byte $((d >> 8 & 255)); byte $((d & 255))
            count=$((count * d))
        done
        head -c "$count" /dev/zero | tr '\0' "$fill"
    } >"$file"
}
# mnist_set NAME TRAIN_IMAGES TRAIN_LABELS TEST_IMAGES TEST_LABELS: each "FILL DIM..." for idx
mnist_set() {
    local d=$sets/$1/mnist
    mkdir -p "$d"
    idx "$d/train-images-idx3-ubyte.gz" $2
    idx "$d/train-labels-idx1-ubyte.gz" $3
    idx "$d/t10k-images-idx3-ubyte.gz" $4
    idx "$d/t10k-labels-idx1-ubyte.gz" $5
}
mnist_set empty_test '\0 3 28 28' '\0 3' '\0 0 28 28' '\0 0'
mnist_set empty_train '\0 0 28 28' '\0 0' '\0 2 28 28' '\0 2'
mnist_set labels_2d '\0 3 28 28' '\0 3 1' '\0 2 28 28' '\0 2'
mnist_set images_1d '\0 3' '\0 3' '\0 2 28 28' '\0 2'
mnist_set images_14x56 '\0 3 14 56' '\0 3' '\0 2 28 28' '\0 2'
mnist_set label_10 '\0 3 28 28' '\0 3' '\0 2 28 28' '\12 2'
mnist_set count_mismatch '\0 3 28 28' '\0 2' '\0 2 28 28' '\0 2'
# finetune pretrains on digits 0-4: a test set of 7s leaves it nothing to measure the accuracy on
mnist_set no_test_digit '\0 3 28 28' '\0 3' '\0 2 28 28' '\7 2'
mlp() { check 1 "$1" "$dir/mnist_mlp" --data "$sets/$2" --epochs 1; }
mlp 'mnist_mlp: .*/empty_test/mnist/t10k-images-idx3-ubyte.gz has too few rows \(0\): need at least 1 image to test' \
    empty_test
mlp 'mnist_mlp: .*/empty_train/mnist/train-images-idx3-ubyte.gz has too few rows \(0\)' empty_train
mlp '/labels_2d/mnist/train-labels-idx1-ubyte.gz has shape \(3, 1\): expected one label per image' labels_2d
mlp '/images_1d/mnist/train-images-idx3-ubyte.gz has shape \(3\): expected images of 28 x 28 pixels' images_1d
mlp '/images_14x56/mnist/train-images-idx3-ubyte.gz has shape \(3, 14, 56\): expected' images_14x56
mlp '/label_10/mnist/t10k-labels-idx1-ubyte.gz has label 10 at row 0: the classes are 0..9' label_10
mlp '/count_mismatch/mnist/train-labels-idx1-ubyte.gz holds 2 labels but .*/train-images-idx3-ubyte.gz holds 3 images' \
    count_mismatch
check 1 'finetune: too few rows \(0\) to measure an accuracy on' "$dir/finetune" --data "$sets/no_test_digit" --epochs 1

# Flags whose fault used to show only after training (tiny_gpt's sampling and LoRA flags), or never (an empty cloud
# counted as separated, a grid search printed for a model that is loaded, not trained), and a learning rate that
# blows the weights up, which must end with the hint the other examples give rather than nb_bce_loss's refusal.
check 2 '--points must be at least 1, got 0' "$dir/perceptron" --points 0
check 1 'xor: loss is nan at step [0-9]+: the learning rate may be too large' "$dir/xor" --lr 1e308
check 2 '--cv 3 chooses how to train, and --load' "$dir/iris" --load "$sets/none.safetensors" --cv 3
check 2 '--temperature must be >= 0' "$dir/tiny_gpt" --temperature -1
check 2 '--sample 1000000000000000000 is too large' "$dir/tiny_gpt" --sample 1000000000000000000
# Texts of the script's own, so that these run without the data sets; the checks come before the texts are read.
printf 'To be, or not to be, that is the question.\n%.0s' {1..40} >"$sets/a.txt"
text=(--text "$sets/a.txt" --finetune-text "$sets/a.txt")
check 2 "--lora-targets 'nothing' names no layer" "$dir/tiny_gpt" "${text[@]}" --lora-targets nothing
check 2 "--lora-targets '' names no layer" "$dir/tiny_gpt" "${text[@]}" --lora-targets ''
check 2 "--lora-targets 'head' names no layer .*head only with --untied" "$dir/tiny_gpt" "${text[@]}" \
    --lora-targets head
# A text that cannot be read is named with the reason, and leaves nothing allocated behind (LeakSanitizer).
check 1 "cannot read $sets: Is a directory" "$dir/tiny_gpt" --text "$sets" --finetune-steps 0
check 1 'cannot read /nonexistent/alice.txt: No such file' "$dir/tiny_gpt" --text "$sets/a.txt" \
    --finetune-text /nonexistent/alice.txt

# A data directory given with --data must hold the data set: only the default location may lack it (a skip, 77).
mkdir -p "$sets/no_data"
check 1 "iris: --data $sets/no_data: $sets/no_data/iris.csv not found" "$dir/iris" --data "$sets/no_data"
check 1 "mnist_mlp: --data $sets/no_data: MNIST \\(the four files under $sets/no_data/mnist\\) not found" \
    "$dir/mnist_mlp" --data "$sets/no_data"
check 1 "mnist_cnn: --data $sets/no_data/missing: mnist \\(the four files under .*\\) not found" "$dir/mnist_cnn" \
    --data "$sets/no_data/missing"
for program in iris mnist_mlp mnist_cnn tiny_gpt; do
    check 2 "$program: --data needs a directory, got ''" "$dir/$program" --data ''
done
echo "$((checks - failed)) passed, $failed failed"
[ "$failed" -eq 0 ]
