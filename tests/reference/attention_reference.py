"""Reference numbers for tests/test_attention.c: a pre-LayerNorm transformer block, a tiny GPT (weight tying) and
a LoRA-wrapped Linear, written with PyTorch 1.13's modules the way nanoGPT writes them (float64).
Run: python3 tests/reference/attention_reference.py"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def vals(n, a, b, c):  # deterministic values a*sin(b*i + c), the same formula the C test uses
    return [a * math.sin(b * i + c) for i in range(n)]


def show(name, t):
    print(name, ", ".join("%.10g" % v for v in t.detach().flatten().tolist()))


class SelfAttention(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.qkv = nn.Linear(C, 3 * C)
        self.proj = nn.Linear(C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.H, C // self.H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.H)
        att = att.masked_fill(torch.ones(T, T).tril() == 0, float("-inf")).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.fc = nn.Linear(C, 4 * C)
        self.proj = nn.Linear(4 * C, C)

    def forward(self, x):
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.ln1 = nn.LayerNorm(C)
        self.attn = SelfAttention(C, H)
        self.ln2 = nn.LayerNorm(C)
        self.mlp = MLP(C)

    def forward(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, V, context, L, C, H):
        super().__init__()
        self.tok_emb = nn.Embedding(V, C)
        self.pos_emb = nn.Embedding(context, C)
        self.blocks = nn.Sequential(*[Block(C, H) for _ in range(L)])
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx):
        x = self.tok_emb(idx) + self.pos_emb(torch.arange(idx.shape[1]))
        return self.ln_f(self.blocks(x)) @ self.tok_emb.weight.T  # tied head


def fill(module):
    """Parameter k (in named_parameters order, which is the C collect order) gets 0.4 sin(0.37 i + 1.3 k + 0.5)."""
    with torch.no_grad():
        for k, (name, p) in enumerate(module.named_parameters()):
            p.copy_(torch.tensor(vals(p.numel(), 0.4, 0.37, 1.3 * k + 0.5)).reshape(p.shape))
            print("#", k, name, tuple(p.shape))


# One block, C 4, 2 heads, x (2, 3, 4).
block = Block(4, 2)
fill(block)
x = torch.tensor(vals(24, 1.5, 0.9, 0.2)).reshape(2, 3, 4)
show("block", block(x))

# A GPT: vocab 5, context 4, 2 layers, C 4, 2 heads, tied head; idx (2, 3).
gpt = GPT(5, 4, 2, 4, 2)
fill(gpt)
idx = torch.tensor([[0, 3, 1], [4, 2, 2]])
show("gpt", gpt(idx))

# LoRA (loralib's formula) on Linear(3, 2), rank 2, alpha 3: y = x W^T + b + (alpha / r) x A^T B^T.
W = torch.tensor(vals(6, 0.4, 0.37, 0.5)).reshape(2, 3)
b = torch.tensor(vals(2, 0.4, 0.37, 1.8))
A = torch.tensor(vals(6, 0.5, 0.61, 0.1)).reshape(2, 3)
Bm = torch.tensor(vals(4, 0.5, 0.83, 0.9)).reshape(2, 2)
xl = torch.tensor(vals(12, 1.0, 0.7, 0.3)).reshape(4, 3)
show("lora", F.linear(xl, W, b) + (3.0 / 2) * (xl @ A.T @ Bm.T))
