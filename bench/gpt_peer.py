#!/usr/bin/python3
"""PyTorch peer of bench/bench_gpt.c: training tokens/s of examples/tiny_gpt.c's default model written the
nanoGPT way (fused qkv Linear, causal mask by masked_fill, exact GELU, pre-LayerNorm blocks, tied head), f32,
Adam (betas 0.9, 0.99), gradient clipping at 1, random windows of random tokens.

    /usr/bin/python3 bench/gpt_peer.py [--threads 1] [--reps 5] [--min-time 2] [--batch 32] [--context 64]
                                       [--layers 4] [--heads 4] [--width 128] [--vocab 65] [--quick]

Prints the median as  BENCH<TAB>torch<TAB>gpt <config> t<threads><TAB><tokens/s><TAB>tokens/s  (the key
bench_gpt prints for nabla)."""
import argparse
import math
import os
import statistics
import sys
import time

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
for name, default in (("threads", 1), ("reps", 5), ("batch", 32), ("context", 64), ("layers", 4), ("heads", 4),
                      ("width", 128), ("vocab", 65)):
    p.add_argument("--" + name, type=int, default=default)
p.add_argument("--min-time", type=float, default=2.0)
p.add_argument("--quick", action="store_true")
ARGS = p.parse_args()
for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)
try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("gpt_peer.py: torch is not installed; skipping", file=sys.stderr)
    sys.exit(77)
torch.set_num_threads(ARGS.threads)
torch.manual_seed(0)


class Block(nn.Module):
    def __init__(self, C, H, T):
        super().__init__()
        self.H = H
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.register_buffer("mask", torch.ones(T, T).tril() == 0)

    def attn(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // self.H))
        att = att.masked_fill(self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp_proj(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, V, T, L, C, H):
        super().__init__()
        self.tok_emb, self.pos_emb = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.Sequential(*[Block(C, H, T) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
        return self.ln_f(self.blocks(x)) @ self.tok_emb.weight.T


B, T, V = ARGS.batch, ARGS.context, ARGS.vocab
model = GPT(V, T, ARGS.layers, ARGS.width, ARGS.heads)
opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))
data = torch.randint(0, V, (100000,))


def step():
    starts = torch.randint(0, data.numel() - T - 1, (B,))
    x = torch.stack([data[s:s + T] for s in starts.tolist()])
    y = torch.stack([data[s + 1:s + T + 1] for s in starts.tolist()])
    loss = F.cross_entropy(model(x).view(B * T, V), y.view(B * T))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


reps, min_time, warm = (1, 0.01, 1) if ARGS.quick else (ARGS.reps, ARGS.min_time, 3)
for _ in range(warm):
    step()
rates = []
for _ in range(reps):
    start, steps = time.perf_counter(), 0
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            break
    rates.append(steps * B * T / elapsed)
key = "gpt L%dH%dC%dT%d b%d t%d" % (ARGS.layers, ARGS.heads, ARGS.width, T, B, ARGS.threads)
print("BENCH\ttorch\t%s\t%.6g\ttokens/s" % (key, statistics.median(rates)), flush=True)
