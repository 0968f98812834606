#!/usr/bin/env bash
# A rank that stops answering (sleeps) or exits must not leave the others waiting: with NABLA_DIST_TIMEOUT=2,
# rank 0's collective fails with NB_ERR_COMM and a message after about 2 s, it calls nb_dist_abort, and the whole
# mpirun job ends with a non-zero status long before rank 1's 30 s sleep is over.
# Usage: dist_timeout.sh MPIRUN DIST_RANKS
set -u
mpirun=$1 prog=$2
status=0
for mode in timeout die; do
    out=$(mktemp)
    start=$(date +%s)
    NABLA_DIST_TIMEOUT=2 timeout 60 "$mpirun" -np 2 --oversubscribe "$prog" "$mode" >"$out" 2>&1
    rc=$?
    elapsed=$(($(date +%s) - start))
    echo "--- $mode: exit status $rc after ${elapsed} s; output:"
    cat "$out"
    if [ "$rc" -eq 0 ]; then echo "FAIL ($mode): the job exited with status 0"; status=1; fi
    if [ "$rc" -eq 124 ]; then echo "FAIL ($mode): the job hung (killed after 60 s)"; status=1; fi
    if [ "$elapsed" -ge 20 ]; then echo "FAIL ($mode): the job took ${elapsed} s to end"; status=1; fi
    if [ "$mode" = timeout ]; then
        for want in "NB_ERR_COMM after" "nb_dist_allreduce_sum: rank 0 waited 2." "without an answer from the other ranks" \
            "nabla rank 0: nb_dist_allreduce_sum"; do
            grep -qF "$want" "$out" || { echo "FAIL ($mode): the output lacks \"$want\""; status=1; }
        done
    fi
    rm -f "$out"
done
exit $status
