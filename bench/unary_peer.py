#!/usr/bin/python3
"""PyTorch peer of bench/bench_unary.c: elements/s of torch.exp, log (of absolute values), tanh, sigmoid,
F.silu, F.gelu (exact and approximate='tanh') on 2^20 f32 values, normal with sd 2, and of torch.softmax over
1024 rows of 1024; forward only, a new result per call.

    /usr/bin/python3 bench/unary_peer.py [--threads 1] [--reps 5] [--min-time 0.2] [--clock wall|cpu] [--quick]

Prints each median as  BENCH<TAB>torch<TAB>unary <op> f32 1048576 t<threads><TAB><elements/s><TAB>elements/s
(the keys bench_unary prints for nabla)."""
import argparse
import os
import statistics
import sys
import time

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--threads", type=int, default=1)
p.add_argument("--reps", type=int, default=5)
p.add_argument("--min-time", type=float, default=0.2)
p.add_argument("--clock", default="wall", choices=["wall", "cpu"])
p.add_argument("--quick", action="store_true")
ARGS = p.parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("unary_peer.py: torch is not installed (apt-get install python3-torch); skipping", file=sys.stderr)
    sys.exit(77)
torch.set_num_threads(ARGS.threads)
torch.manual_seed(3)
now = time.process_time if ARGS.clock == "cpu" else time.perf_counter

N = 1 << 20
x = torch.randn(N) * 2
ax = x.abs()
rows = x.reshape(1024, 1024)
ops = [("exp", torch.exp, x), ("log", torch.log, ax), ("tanh", torch.tanh, x), ("sigmoid", torch.sigmoid, x),
       ("silu", F.silu, x), ("gelu", F.gelu, x), ("gelu_tanh", lambda t: F.gelu(t, approximate="tanh"), x),
       ("softmax", lambda t: torch.softmax(t, 1), rows)]
reps, min_time = (1, 0.005) if ARGS.quick else (ARGS.reps, ARGS.min_time)
for name, fn, arg in ops:
    fn(arg)
    rates = []
    for _ in range(reps):
        start, calls = now(), 0
        while True:
            fn(arg)
            calls += 1
            elapsed = now() - start
            if elapsed >= min_time:
                break
        rates.append(calls * N / elapsed)
    print("BENCH\ttorch\tunary %s f32 %d t%d\t%.6g\telements/s" % (name, N, ARGS.threads, statistics.median(rates)),
          flush=True)
