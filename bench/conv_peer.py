#!/usr/bin/python3
"""PyTorch peer of bench/bench_conv.c: training images/s of examples/mnist_cnn.c's network
(Conv2d(1, 32, 3) -> ReLU -> MaxPool2d(2) -> Conv2d(32, 64, 3) -> ReLU -> MaxPool2d(2) -> Flatten ->
Linear(1600, 128) -> ReLU -> Linear(128, 10)), f32, on random images gathered through a shuffled index per epoch,
cross_entropy, batch 64: `adam` is a whole training step with torch.optim.Adam (lr 1e-3), `fwdbwd` the same
without the optimizer step.

    /usr/bin/python3 bench/conv_peer.py [--threads 1] [--reps 3] [--min-time 0.5] [--batch 64]
                                        [--what all|adam|fwdbwd] [--clock wall|cpu] [--quick]

Prints each median as  BENCH<TAB>torch<TAB>conv mnist_cnn <what> b<batch> t<threads><TAB><images/s><TAB>images/s
(the keys bench_conv prints for nabla)."""
import argparse
import os
import statistics
import sys
import time

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--threads", type=int, default=1)
p.add_argument("--reps", type=int, default=3)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--min-time", type=float, default=0.5)
p.add_argument("--what", default="all", choices=["all", "adam", "fwdbwd"])
p.add_argument("--clock", default="wall", choices=["wall", "cpu"])
p.add_argument("--quick", action="store_true")
ARGS = p.parse_args()
# OpenMP and BLAS read these when they load: set them before importing torch.
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("conv_peer.py: torch is not installed (apt-get install python3-torch); skipping", file=sys.stderr)
    sys.exit(77)
torch.set_num_threads(ARGS.threads)
torch.manual_seed(7)
now = time.process_time if ARGS.clock == "cpu" else time.perf_counter

B = ARGS.batch
n_data = B * (2 if ARGS.quick else 32)
model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 5 * 5, 128), nn.ReLU(), nn.Linear(128, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x_all = torch.rand(n_data, 1, 28, 28)
y_all = torch.randint(0, 10, (n_data,))
state = {"perm": torch.randperm(n_data), "pos": 0}


def step(update):
    if state["pos"] + B > n_data:
        state["perm"], state["pos"] = torch.randperm(n_data), 0
    idx = state["perm"][state["pos"]:state["pos"] + B]
    state["pos"] += B
    loss = F.cross_entropy(model(x_all[idx]), y_all[idx])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if update:
        opt.step()


reps, min_time, warm = (1, 0.01, 1) if ARGS.quick else (ARGS.reps, ARGS.min_time, 5)
for _ in range(warm):
    step(True)
for what in ("adam", "fwdbwd"):
    if ARGS.what not in ("all", what):
        continue
    rates = []
    for _ in range(reps):
        start, steps = now(), 0
        while True:
            step(what == "adam")
            steps += 1
            elapsed = now() - start
            if elapsed >= min_time:
                break
        rates.append(steps * B / elapsed)
    key = "conv mnist_cnn %s b%d t%d" % (what, B, ARGS.threads)
    print("BENCH\ttorch\t%s\t%.6g\timages/s" % (key, statistics.median(rates)), flush=True)
