#!/usr/bin/python3
"""Peer measurements for bench/: the figures of bench_matmul and bench_mlp, taken with numpy (its BLAS,
OpenBLAS on the reference machine) and PyTorch, printed with the same keys so that bench/compare.py can put
them side by side.

    /usr/bin/python3 bench/peer.py [--threads 1] [--reps 5] [--min-time 0.1] [--mlp-min-time 0.5]
                                   [--what all|matmul|mlp] [--peers numpy,torch] [--clock wall|cpu] [--quick]

matmul: the square sizes and MLP products of bench_matmul.c (same m x k x n, same transposed-view layouts:
numpy and torch hand a transposed operand to BLAS as a flag, without copying). mlp: the three trainings of
bench_mlp.c in PyTorch (nn.Sequential of Linear/ReLU, cross_entropy, Adam or RMSprop lr 1e-3, random data
gathered through a shuffled index per epoch), and a hand-written numpy MLP (784-128-10, plain SGD, f32) at
batch 32 and 128. Each peer is skipped with a message when its module is missing.
"""
import argparse
import os
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--min-time", type=float, default=0.1, help="seconds per matmul repetition")
    p.add_argument("--mlp-min-time", type=float, default=0.5, help="seconds per training repetition")
    p.add_argument("--what", default="all", choices=["all", "matmul", "mlp"])
    p.add_argument("--matmul-set", default="all", choices=["all", "square", "mlp"])
    p.add_argument("--dtype", default="all", choices=["all", "f32", "f64"])
    p.add_argument("--max-size", type=int, default=2048)
    p.add_argument("--peers", default="numpy,torch")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="cpu: CPU time of the process, all threads (for a machine shared with other jobs)")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, one short repetition")
    return p.parse_args()


ARGS = parse_args()
# BLAS and OpenMP read these when they load: set them before importing numpy or torch.
for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
now = time.process_time if ARGS.clock == "cpu" else time.perf_counter
if ARGS.quick:
    ARGS.reps, ARGS.min_time, ARGS.mlp_min_time, ARGS.max_size = 1, 0.005, 0.01, 128


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def emit(impl, key, value, unit):
    print(f"BENCH\t{impl}\t{key}\t{value:.6g}\t{unit}", flush=True)


def timed_reps(fn, min_time, reps, warm=1):
    """Median seconds per call of fn: `reps` repetitions of enough calls to last min_time."""
    start = now()
    for _ in range(warm):
        fn()
    once = (now() - start) / warm
    iters = 1 if once >= min_time else int(min_time / max(once, 1e-7)) + 1
    times = []
    for _ in range(reps):
        start = now()
        for _ in range(iters):
            fn()
        times.append((now() - start) / iters)
    return median(times), iters


# ---------------------------------------------------------------------------------------------------------
# Shapes (mirror bench_matmul.c)
# ---------------------------------------------------------------------------------------------------------
def square_sizes():
    s, out = 64, []
    while s <= ARGS.max_size and len(out) < 8:
        out.append(s)
        s *= 2
    return out


def mlp_shapes():
    """(m, k, n, a_transposed, b_transposed) of forward, weight-grad and input-grad products, no duplicates."""
    out = []
    for arch in ((784, 128, 10), (784, 512, 512, 10)):
        for batch in (32, 128):
            for layer in range(len(arch) - 1):
                fin, fout = arch[layer], arch[layer + 1]
                cands = [(batch, fin, fout, False, True), (fout, batch, fin, True, False)]
                if layer > 0:
                    cands.append((batch, fout, fin, False, False))
                for c in cands:
                    if c not in out:
                        out.append(c)
    return out


def matmul_jobs():
    jobs = []  # (key, m, k, n, at, bt, dtype)
    t = ARGS.threads
    squares = square_sizes()
    if ARGS.matmul_set != "mlp":
        if ARGS.dtype != "f64":
            jobs += [(f"sgemm square {s} t{t}", s, s, s, False, False, "f32") for s in squares]
    if ARGS.matmul_set != "square" and not ARGS.quick and ARGS.dtype != "f64":
        for (m, k, n, at, bt) in mlp_shapes():
            lay = ("T" if at else "N") + ("T" if bt else "N")
            jobs.append((f"sgemm mlp {m}x{k}x{n} {lay} t{t}", m, k, n, at, bt, "f32"))
    if ARGS.matmul_set != "mlp" and ARGS.dtype != "f32":
        pick = [s for s in squares if (s == 64 if ARGS.quick else (s == 128 or s >= 512))]
        jobs += [(f"dgemm square {s} t{t}", s, s, s, False, False, "f64") for s in pick]
    return jobs


def bench_matmul(impl, make, mm):
    print(f"{'impl':6} {'key':36} {'GFLOP/s':>9}")
    for key, m, k, n, at, bt, dtype in matmul_jobs():
        a = make(k, m, dtype).T if at else make(m, k, dtype)
        b = make(n, k, dtype).T if bt else make(k, n, dtype)
        sec, _ = timed_reps(lambda: mm(a, b), ARGS.min_time, ARGS.reps)
        gflops = 2.0 * m * k * n / sec / 1e9
        print(f"{impl:6} {key:36} {gflops:9.2f}", flush=True)
        emit(impl, key, gflops, "GFLOP/s")


# ---------------------------------------------------------------------------------------------------------
# numpy
# ---------------------------------------------------------------------------------------------------------
def run_numpy():
    try:
        import numpy as np
    except ImportError:
        print("peer.py: numpy is not installed (apt-get install python3-numpy): skipping the numpy peer")
        return
    blas = "unknown"
    try:
        import threadpoolctl
        threadpoolctl.threadpool_limits(ARGS.threads)
        info = [i for i in threadpoolctl.threadpool_info() if i.get("user_api") == "blas"]
        if info:
            blas = f"{info[0].get('internal_api')} {info[0].get('version')} ({info[0].get('num_threads')} threads)"
    except ImportError:
        pass
    print(f"peer.py: numpy {np.__version__}, BLAS {blas}, {ARGS.threads} thread(s)")
    if "openblas" not in blas:
        print("peer.py: numpy does not use OpenBLAS here (install libopenblas0-pthread for the reference figures)")
    rng = np.random.default_rng(1)
    dt = {"f32": np.float32, "f64": np.float64}
    if ARGS.what != "mlp":
        bench_matmul("numpy", lambda r, c, d: rng.uniform(-1, 1, (r, c)).astype(dt[d]), lambda a, b: a @ b)
    if ARGS.what != "matmul":
        for batch in (32, 128):
            rate = numpy_mlp_sgd(np, batch)
            key = f"mlp 784-128-10 handsgd b{batch} t{ARGS.threads}"
            print(f"numpy  {key:36} {rate:12.0f} samples/s", flush=True)
            emit("numpy", key, rate, "samples/s")


def numpy_mlp_sgd(np, batch, n_data=8192, lr=0.05):
    """Samples/s of a hand-written 784-128-10 ReLU MLP trained with softmax cross-entropy and plain SGD, f32."""
    rng = np.random.default_rng(7)
    x_all = rng.random((n_data, 784), dtype=np.float32)
    y_all = rng.integers(0, 10, n_data)
    w1 = (rng.standard_normal((784, 128)) * (1 / 28)).astype(np.float32)
    b1 = np.zeros(128, np.float32)
    w2 = (rng.standard_normal((128, 10)) * (1 / 128**0.5)).astype(np.float32)
    b2 = np.zeros(10, np.float32)
    state = {"perm": rng.permutation(n_data), "pos": 0}
    rows = np.arange(batch)

    def step():
        nonlocal w1, b1, w2, b2  # updated in place
        if state["pos"] + batch > n_data:
            state["perm"], state["pos"] = rng.permutation(n_data), 0
        idx = state["perm"][state["pos"]:state["pos"] + batch]
        state["pos"] += batch
        x, y = x_all[idx], y_all[idx]
        h = x @ w1
        h += b1
        np.maximum(h, 0, out=h)
        z = h @ w2
        z += b2
        z -= z.max(axis=1, keepdims=True)
        np.exp(z, out=z)
        z /= z.sum(axis=1, keepdims=True)
        z[rows, y] -= 1
        z *= 1.0 / batch  # dloss/dlogits of the mean cross-entropy
        gw2 = h.T @ z
        gb2 = z.sum(axis=0)
        dh = z @ w2.T
        dh *= h > 0
        gw1 = x.T @ dh
        gb1 = dh.sum(axis=0)
        w1 -= lr * gw1
        b1 -= lr * gb1
        w2 -= lr * gw2
        b2 -= lr * gb2

    sec, _ = timed_reps(step, ARGS.mlp_min_time, ARGS.reps, warm=2 if ARGS.quick else 20)
    return batch / sec


# ---------------------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------------------
def run_torch():
    try:
        import torch
    except ImportError:
        print("peer.py: torch is not installed (apt-get install python3-torch): skipping the PyTorch peer")
        return
    torch.set_num_threads(ARGS.threads)
    torch.manual_seed(1)
    print(f"peer.py: torch {torch.__version__}, {torch.get_num_threads()} thread(s)")
    dt = {"f32": torch.float32, "f64": torch.float64}
    if ARGS.what != "mlp":
        bench_matmul("torch", lambda r, c, d: torch.rand(r, c, dtype=dt[d]) * 2 - 1, torch.matmul)
    if ARGS.what != "matmul":
        for name, hidden, optim, batch in (("784-128-10", (128,), "adam", 32), ("784-128-10", (128,), "adam", 128),
                                           ("784-512-512-10", (512, 512), "rmsprop", 128)):
            rate = torch_mlp(torch, hidden, optim, batch)
            key = f"mlp {name} {optim} b{batch} t{ARGS.threads}"
            print(f"torch  {key:36} {rate:12.0f} samples/s", flush=True)
            emit("torch", key, rate, "samples/s")


def torch_mlp(torch, hidden, optim, batch, n_data=8192):
    nn = torch.nn
    layers, fin = [], 784
    for h in hidden:
        layers += [nn.Linear(fin, h), nn.ReLU()]
        fin = h
    layers.append(nn.Linear(fin, 10))
    model = nn.Sequential(*layers)
    if optim == "adam":
        opt = torch.optim.Adam(model.parameters())
    else:
        opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    x_all = torch.rand(n_data, 784)
    y_all = torch.randint(0, 10, (n_data,))
    state = {"perm": torch.randperm(n_data), "pos": 0}

    def step():
        if state["pos"] + batch > n_data:
            state["perm"], state["pos"] = torch.randperm(n_data), 0
        idx = state["perm"][state["pos"]:state["pos"] + batch]
        state["pos"] += batch
        loss = torch.nn.functional.cross_entropy(model(x_all[idx]), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()

    sec, _ = timed_reps(step, ARGS.mlp_min_time, ARGS.reps, warm=2 if ARGS.quick else 20)
    return batch / sec


def main():
    peers = [p.strip() for p in ARGS.peers.split(",") if p.strip()]
    for p in peers:
        if p not in ("numpy", "torch"):
            sys.exit(f"peer.py: --peers takes numpy and/or torch, got '{p}'")
    if "numpy" in peers:
        run_numpy()
    if "torch" in peers:
        run_torch()


if __name__ == "__main__":
    main()
