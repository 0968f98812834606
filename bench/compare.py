#!/usr/bin/python3
"""Runs nabla's benchmark programs and the peers (bench/peer.py) interleaved, and prints one table with the
ratios nabla/peer against the targets of issue 7. Started by bench/run.sh (see bench/README.md).

Each round runs, for each thread count, bench_matmul and the peer's matmul measurements, then bench_mlp and
the peer's trainings, then bench_conv --no-peer and conv_peer.py (issue 8's CNN), alternating which side goes
first from one round to the next so that machine noise hits both. Every program reports medians of its own repetitions; the table shows the median over the rounds. The
raw result lines of all rounds are kept in <build>/bench-results.tsv.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--build", required=True, help="meson build directory holding bench/bench_matmul")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the table shows their median)")
    p.add_argument("--reps", type=int, default=3, help="repetitions inside each program per round")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--what", default="all", choices=["all", "matmul", "mlp", "conv"])
    p.add_argument("--min-time", type=float, default=0.1, help="seconds per matmul repetition")
    p.add_argument("--mlp-min-time", type=float, default=0.5, help="seconds per training repetition (MLP and conv)")
    p.add_argument("--max-size", type=int, default=2048)
    p.add_argument("--data", default=None, help="data directory for the memory and example rows "
                   "(default $NABLA_DATA, else ../shared/data next to the source tree)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu", "auto"],
                   help="wall-clock time, CPU time of each process (all threads), or auto: CPU time for the "
                   "1-thread runs and wall-clock time for more threads (for a machine shared with other jobs)")
    p.add_argument("--no-example", action="store_true", help="skip timing the mnist_mlp example (5 epochs)")
    p.add_argument("--quick", action="store_true", help="smoke run of the whole pipeline (figures meaningless)")
    p.add_argument("--python", default=sys.executable, help="interpreter for peer.py (needs numpy/torch)")
    return p.parse_args()


ARGS = parse_args()
RESULTS = {}  # (impl, key) -> list of per-round medians
UNITS = {}
LOG = None


def record(text):
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 5 and parts[0] == "BENCH":
            _, impl, key, value, unit = parts
            RESULTS.setdefault((impl, key), []).append(float(value))
            UNITS[key] = unit
            LOG.write(line + "\n")
        elif line.startswith("peer.py:"):
            print("  " + line, flush=True)
    LOG.flush()


def run(cmd, env=None):
    start = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    took = time.perf_counter() - start
    if proc.returncode not in (0, 77):
        sys.stderr.write(proc.stdout + proc.stderr)
        sys.exit(f"compare.py: {' '.join(cmd)} failed (exit {proc.returncode})")
    record(proc.stdout)
    return proc, took


def data_dir():
    if ARGS.data:
        return ARGS.data
    if os.environ.get("NABLA_DATA"):
        return os.environ["NABLA_DATA"]
    guess = os.path.join(HERE, "..", "..", "shared", "data")
    return guess if os.path.isdir(guess) else None


def measure():
    build = ARGS.build
    matmul = os.path.join(build, "bench", "bench_matmul")
    mlp = os.path.join(build, "bench", "bench_mlp")
    conv = os.path.join(build, "bench", "bench_conv")
    peer = [ARGS.python, os.path.join(HERE, "peer.py")]
    conv_peer = [ARGS.python, os.path.join(HERE, "conv_peer.py")]
    wanted = {"matmul": (matmul,), "mlp": (mlp,), "conv": (conv,)}.get(ARGS.what, (matmul, mlp, conv))
    for exe in wanted:
        if not os.access(exe, os.X_OK):
            sys.exit(f"compare.py: {exe} not found: build first (ninja -C {build})")
    quick = ["--quick"] if ARGS.quick else []
    threads = [int(t) for t in ARGS.threads.split(",")]
    for rnd in range(ARGS.rounds):
        for t in threads:
            clock = ARGS.clock if ARGS.clock != "auto" else ("cpu" if t == 1 else "wall")
            common = ["--threads", str(t), "--reps", str(ARGS.reps), "--clock", clock] + quick
            jobs = []
            if ARGS.what in ("all", "matmul"):
                mm = ["--min-time", str(ARGS.min_time), "--max-size", str(ARGS.max_size)]
                jobs.append(([matmul] + common + mm, peer + ["--what", "matmul"] + common + mm))
            mt = ["--min-time", str(ARGS.mlp_min_time)]
            if ARGS.what in ("all", "mlp"):
                jobs.append(([mlp] + common + mt,
                             peer + ["--what", "mlp", "--mlp-min-time", str(ARGS.mlp_min_time)] + common))
            if ARGS.what in ("all", "conv"):  # bench_conv alternates with its peer itself; here compare.py does
                jobs.append(([conv, "--no-peer", "--rounds", "1"] + common + mt, conv_peer + common + mt))
            for ours, theirs in jobs:
                order = (ours, theirs) if rnd % 2 == 0 else (theirs, ours)
                for cmd in order:
                    name = ("nabla " + os.path.basename(cmd[0]) if cmd is ours else
                            os.path.basename(cmd[1]) + (" --what " + cmd[3] if cmd[2] == "--what" else ""))
                    print(f"round {rnd + 1}/{ARGS.rounds}, {t} thread(s): {name}", flush=True)
                    run(cmd)
    if ARGS.what not in ("all", "mlp"):
        return
    data = data_dir()
    if data is None:
        print("no data directory: skipping the memory and example rows", flush=True)
        return
    print("peak RSS of MNIST training (bench_mlp --rss)", flush=True)
    run([mlp, "--rss", "--data", data])
    example = os.path.join(build, "examples", "mnist_mlp")
    if ARGS.no_example or ARGS.quick or not os.access(example, os.X_OK):
        return
    print("mnist_mlp example, default settings (5 epochs)", flush=True)
    proc, took = run([example, "--data", data])
    if proc.returncode == 0:
        RESULTS.setdefault(("nabla", "example mnist_mlp seconds"), []).append(took)
        UNITS["example mnist_mlp seconds"] = "s"
        LOG.write(f"BENCH\tnabla\texample mnist_mlp seconds\t{took:.6g}\ts\n")


# ---------------------------------------------------------------------------------------------------------
# Table
# ---------------------------------------------------------------------------------------------------------
def value(impl, key):
    v = RESULTS.get((impl, key))
    return statistics.median(v) if v else None


def fmt(v, unit):
    if v is None:
        return "n/a"
    if unit == "samples/s":
        return f"{v / 1000:.1f} k"
    if unit == "images/s":
        return f"{v:.0f}"
    return f"{v:.1f}"


ROWS = []


def row(item, ours, peer_name, peer, target=None, unit="", higher=True):
    """target: minimum ratio nabla/peer (None: shown for information)."""
    ratio = ours / peer if ours is not None and peer else None
    met = ""
    if target is not None and ratio is not None:
        met = "yes" if (ratio >= target if higher else ratio <= target) else "NO"
    tgt = "" if target is None else (f">= {target:g}x" if higher else f"<= {target:g}x")
    ROWS.append((item, fmt(ours, unit), peer_name, fmt(peer, unit), "n/a" if ratio is None else f"{ratio:.2f}",
                 tgt, met))


def table():
    threads = [int(t) for t in ARGS.threads.split(",")]
    keys = sorted({k for (impl, k) in RESULTS if impl == "nabla"})

    def sort_key(k):
        m = re.match(r"(\w+) (square|mlp) (\S+)(?: (\w\w))? t(\d+)", k)
        if not m:
            return (9, k)
        dims = [int(x) for x in m.group(3).split("x")]
        return (0 if m.group(1) == "sgemm" else 1, int(m.group(5)), m.group(2) == "mlp", dims)

    for k in sorted((k for k in keys if re.match(r"[sd]gemm ", k)), key=sort_key):
        m = re.match(r"(\w+) (square|mlp) (\S+)(?: (\w\w))? t(\d+)", k)
        op, kind, dims, t = m.group(1), m.group(2), m.group(3), int(m.group(5))
        size = int(dims) if kind == "square" else 0
        target = None
        if op == "dgemm":
            target = 0.8
        elif kind == "square" and size >= 512:
            target = 0.9
        elif kind == "mlp" and t == 1:
            target = 1.0
        label = f"{op} {dims}^3" if kind == "square" else f"{op} {dims} {m.group(4)}"
        row(f"{label}, {t} thr (GFLOP/s)", value("nabla", k), "OpenBLAS", value("numpy", k), target, "GFLOP/s")

    for t in threads:
        for model, peer_key_target in (("784-128-10 adam b32", 8.0), ("784-128-10 adam b128", 2.0),
                                       ("784-512-512-10 rmsprop b128", None)):
            k = f"mlp {model} t{t}"
            if ("nabla", k) not in RESULTS:
                continue
            target = peer_key_target if t == 1 else None
            row(f"{model}, {t} thr (samples/s)", value("nabla", k), f"PyTorch {t} thr", value("torch", k), target,
                "samples/s")
            if model.startswith("784-128-10"):
                b = model.split()[-1]
                row(f"{model}, {t} thr (samples/s)", value("nabla", k), "numpy SGD loop",
                    value("numpy", f"mlp 784-128-10 handsgd {b} t{t}"), 1.0 if (t == 1 and b == "b32") else None,
                    "samples/s")
    big = [f"mlp 784-512-512-10 rmsprop b128 t{t}" for t in threads]
    ours = [value("nabla", k) for k in big if value("nabla", k) is not None]
    theirs = [value("torch", k) for k in big if value("torch", k) is not None]
    if ours:
        row("784-512-512-10 rmsprop b128, best thr", max(ours), "PyTorch best", max(theirs) if theirs else None,
            1.3, "samples/s")
    if 1 in threads and 2 in threads:
        one, two = value("nabla", big[threads.index(1)]), value("nabla", big[threads.index(2)])
        if one is not None and two is not None:
            row("784-512-512-10 rmsprop b128, 2 thr", two, "nabla 1 thr", one, 1.6, "samples/s")
    for t in threads:  # issue 8 sets no target for the conv network: the ratio is shown for information
        for what in ("adam", "fwdbwd"):
            k = f"conv mnist_cnn {what} b64 t{t}"
            if ("nabla", k) in RESULTS:
                row(f"mnist_cnn {what} b64, {t} thr (images/s)", value("nabla", k), f"PyTorch {t} thr",
                    value("torch", k), None, "images/s")

    peak, data = value("nabla", "rss mnist peak"), value("nabla", "rss mnist data")
    if peak is not None and data is not None:
        ROWS.append(("MNIST training peak RSS (MiB)", f"{peak:.1f}", "data in memory", f"{data:.1f}",
                     f"+{peak - data:.1f} MiB", "<= +32 MiB", "yes" if peak - data <= 32 else "NO"))
        loaded = value("nabla", "rss mnist peak after loading")
        if loaded is not None:
            ROWS.append(("  of which peak while loading (MiB)", f"{loaded:.1f}", "data in memory", f"{data:.1f}",
                         f"+{loaded - data:.1f} MiB", "", ""))
    ex = value("nabla", "example mnist_mlp seconds")
    if ex is not None:
        ROWS.append(("mnist_mlp example, 5 epochs (s)", f"{ex:.1f}", "", "", "", "< 15 s", "yes" if ex < 15 else "NO"))

    head = ("shape / model", "nabla", "peer", "peer value", "nabla/peer", "target", "met?")
    widths = [max(len(r[i]) for r in ROWS + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in ROWS:
        print(line(r))
    met = sum(1 for r in ROWS if r[6] == "yes")
    missed = sum(1 for r in ROWS if r[6] == "NO")
    clock = {"wall": "wall-clock time", "cpu": "CPU time of each process",
             "auto": "CPU time at 1 thread, wall-clock time at more (so the 2-thread/1-thread row understates the "
                     "scaling when other jobs load the machine)"}[ARGS.clock]
    print(f"\ntargets met: {met}, missed: {missed}. Medians over {ARGS.rounds} round(s) of medians of {ARGS.reps} "
          f"repetitions; clock: {clock}; raw lines in {os.path.join(ARGS.build, 'bench-results.tsv')}")


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def main():
    global LOG
    before = loadavg()
    with open(os.path.join(ARGS.build, "bench-results.tsv"), "w") as LOG:
        LOG.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} {' '.join(sys.argv)}\n")
        measure()
    print(f"\nload average before the run {before}, after {loadavg()} ({os.cpu_count()} CPUs)\n")
    table()


if __name__ == "__main__":
    main()
