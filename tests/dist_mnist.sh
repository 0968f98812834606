#!/usr/bin/env bash
# Distributed MNIST tests (suite 'dist', MPI builds only), run on one machine with 2 ranks.
#
#   dist_mnist.sh accuracy MPIRUN MNIST_MLP WORKDIR
#       The MLP trained on 2 ranks at batch 32 (global batch 64) reaches the test accuracy of one process at
#       batch 64 (within 0.01; the two take the same steps up to float summation order).
#   dist_mnist.sh cnn MPIRUN MNIST_CNN WORKDIR
#       The CNN trains on 2 ranks, saves, and its reloaded copy (read by rank 0, broadcast, evaluated by both)
#       classifies identically.
#   dist_mnist.sh kill MPIRUN MNIST_MLP WORKDIR
#       A rank killed (SIGKILL) after the first checkpoint: mpirun ends within a bounded time with a non-zero
#       status and says which rank died; the checkpoint is intact, and a new run with the same --checkpoint
#       resumes from it and finishes.
#   dist_mnist.sh hang MPIRUN MNIST_MLP WORKDIR
#       A rank stopped (SIGSTOP: alive but silent, as a hung machine): the other rank gives up after
#       NABLA_DIST_TIMEOUT (8) seconds with nabla's message and stops the job instead of waiting forever; the
#       checkpoint resumes.
#
# Data: $NABLA_DATA/mnist (exit 77, a skip, without it). MPIRUN runs with the environment meson gives it
# (mpi_test_env: root allowed, oversubscription).
set -u
mode=$1 mpirun=$2 prog=$3 work=$4
limit=12000
bound=60 # seconds mpirun may take to stop the job after a failure

fail() {
    echo "dist_mnist.sh $mode: FAIL: $*" >&2
    exit 1
}

data=${NABLA_DATA:-}
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
    if [ -z "$data" ] || [ ! -f "$data/mnist/$f" ]; then
        echo "dist_mnist.sh: MNIST not found (NABLA_DATA='$data', need mnist/$f); skipping"
        exit 77
    fi
done
mkdir -p "$work" || fail "cannot create $work"
export NB_PROGRESS=off

# The test accuracy of a result line.
accuracy() { sed -n 's/^result: test_accuracy=\([0-9.]*\) .*/\1/p' <<<"$1"; }

# The "epoch" entry of a checkpoint's header (safetensors: 8 bytes of length, then JSON), empty when unreadable.
checkpoint_epoch() { head -c 4096 "$1" 2>/dev/null | tr -c '[:print:]' ' ' | sed -n 's/.*"epoch":"\([0-9]*\)".*/\1/p'; }

# The pid of the rank $2 process whose command line holds $1 (a path unique to this run). MPI gives each rank its
# number in the environment (Open MPI: OMPI_COMM_WORLD_RANK, MPICH: PMI_RANK); mpirun itself has none. Reads /proc
# only: no procps needed.
rank_pid() {
    local d
    for d in /proc/[0-9]*; do
        { tr '\0' '\n' <"$d/cmdline" | grep -qF -- "$1"; } 2>/dev/null || continue
        if { tr '\0' '\n' <"$d/environ"; } 2>/dev/null | grep -Eqx "(OMPI_COMM_WORLD_RANK|PMI_RANK)=$2"; then
            echo "${d#/proc/}"
            return 0
        fi
    done
    return 1
}

# Starts the 2-rank training with a checkpoint in the background (mpid, log), waits for the first checkpoint and
# sends signal $1 to rank 1; then waits at most $bound s for mpirun to end and checks how it ended.
run_and_break() {
    local signal=$1 ck=$2 log=$3 pid status waited
    rm -f "$ck" "$ck".tmp.*
    "$mpirun" -np 2 "$prog" --limit $limit --epochs 30 --batch 32 --checkpoint "$ck" >"$log" 2>&1 &
    mpid=$!
    for ((i = 0; i < 1200; i++)); do
        [ -s "$ck" ] && break
        kill -0 $mpid 2>/dev/null || { cat "$log"; fail "mpirun ended before writing the first checkpoint"; }
        sleep 0.1
    done
    [ -s "$ck" ] || { kill -9 $mpid; cat "$log"; fail "no checkpoint after 120 s"; }
    pid=$(rank_pid "$ck" 1) || { kill -9 $mpid; fail "cannot find the process of rank 1"; }
    echo "first checkpoint written; sending SIG$signal to rank 1 (pid $pid)"
    kill -s "$signal" "$pid" || fail "cannot signal pid $pid"
    for ((waited = 0; waited < bound * 10; waited++)); do
        kill -0 $mpid 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 $mpid 2>/dev/null; then
        kill -9 "$pid" $mpid 2>/dev/null
        pid=$(rank_pid "$ck" 0) && kill -9 "$pid"
        cat "$log"
        fail "mpirun was still running $bound s after rank 1 got SIG$signal (hang)"
    fi
    wait $mpid
    status=$?
    echo "mpirun ended $((waited / 10)).$((waited % 10)) s after the signal with status $status; its output:"
    sed 's/^/    | /' "$log"
    [ $status -ne 0 ] || fail "mpirun exited with status 0 although rank 1 was stopped"
    # A write killed part-way leaves only its temporary file; the checkpoint itself stays whole.
    rm -f "$ck".tmp.*
}

# A second run with the same --checkpoint must resume after the epoch the file holds and finish.
resume() {
    local ck=$1 log=$2 epoch out
    epoch=$(checkpoint_epoch "$ck")
    [ -n "$epoch" ] && [ "$epoch" -ge 1 ] || fail "the checkpoint $ck is unreadable after the failure"
    echo "the checkpoint holds epoch $epoch; resuming for 2 more epochs"
    out=$("$mpirun" -np 2 "$prog" --limit $limit --epochs $((epoch + 2)) --batch 32 --checkpoint "$ck" 2>"$log")
    status=$?
    printf '%s\n' "$out"
    [ $status -eq 0 ] || { cat "$log"; fail "the resumed run exited with status $status"; }
    grep -q "^mnist_mlp: resumed from .* after epoch $epoch " <<<"$out" || fail "the run did not resume from epoch $epoch"
    grep -q "^epoch $((epoch + 2))/$((epoch + 2)) " <<<"$out" || fail "the resumed run did not reach its last epoch"
    [ "$(checkpoint_epoch "$ck")" = $((epoch + 2)) ] || fail "the checkpoint was not updated to epoch $((epoch + 2))"
}

case $mode in
accuracy)
    one=$("$prog" --limit $limit --epochs 2 --batch 64) || fail "1 process: status $?"
    two=$("$mpirun" -np 2 "$prog" --limit $limit --epochs 2 --batch 32) || { printf '%s\n' "$two"; fail "2 ranks: status $?"; }
    printf '%s\n' "$two"
    grep -q '^result: .* ranks=2 global_batch=64' <<<"$two" || fail "no 2-rank result line"
    a1=$(accuracy "$one") a2=$(accuracy "$two")
    [ -n "$a1" ] && [ -n "$a2" ] || fail "missing result lines"
    echo "test accuracy: 1 process at batch 64: $a1; 2 ranks at batch 32: $a2"
    awk -v a="$a1" -v b="$a2" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 0.01 && a > 0.85) }' ||
        fail "accuracies differ by more than 0.01 (or training failed)"
    ;;
cnn)
    out=$("$mpirun" -np 2 "$prog" --limit 1000 --epochs 1 --batch 32 --save "$work/dist_cnn.safetensors") ||
        { printf '%s\n' "$out"; fail "status $?"; }
    printf '%s\n' "$out"
    grep -Eq '^result: test_accuracy=([0-9.]+) reloaded=\1 .* ranks=2 global_batch=64' <<<"$out" ||
        fail "no 2-rank result line with equal accuracies"
    ;;
kill)
    ck="$work/dist_kill.ckpt"
    run_and_break KILL "$ck" "$work/dist_kill.log"
    grep -Eq 'rank 1 .*(signal 9|Killed)' "$work/dist_kill.log" || fail "mpirun did not say that rank 1 was killed"
    resume "$ck" "$work/dist_kill_resume.log"
    ;;
hang)
    ck="$work/dist_hang.ckpt"
    export NABLA_DIST_TIMEOUT=8
    run_and_break STOP "$ck" "$work/dist_hang.log"
    grep -Eq 'nabla rank 0: mnist_mlp: .*waited [0-9.]+ s .*without an answer' "$work/dist_hang.log" ||
        fail "rank 0 did not report the timeout"
    unset NABLA_DIST_TIMEOUT
    resume "$ck" "$work/dist_hang_resume.log"
    ;;
*)
    fail "unknown mode (accuracy, cnn, kill or hang)"
    ;;
esac
echo "dist_mnist.sh $mode: OK"
