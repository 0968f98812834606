"""Reference numbers for tests/test_loss.c: losses computed by PyTorch 1.13's torch.nn.functional (float64).
Run: python3 tests/reference/loss_reference.py
Each line is a name followed by the values (row-major); the C test hard-codes them under the same names."""
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
T = torch.tensor
REDUCTIONS = ("none", "sum", "mean")


def show(name, t):
    print(name, ", ".join("%.17g" % v for v in t.detach().flatten().tolist()))


def all_reductions(name, f):
    for r in REDUCTIONS:
        show("%s_%s" % (name, r), f(r))


# Regression losses: d = x - y = 0.5, -0.2, 1.5, -1.1, 0.1, -1.6 (on both sides of the thresholds used).
x = T([[0.5, -1.2, 2.0], [0.3, 1.5, -0.7]])
y = T([[0.0, -1.0, 0.5], [1.4, 1.4, 0.9]])
all_reductions("mse", lambda r: F.mse_loss(x, y, reduction=r))
all_reductions("l1", lambda r: F.l1_loss(x, y, reduction=r))
all_reductions("smooth_l1_b1", lambda r: F.smooth_l1_loss(x, y, reduction=r, beta=1.0))
all_reductions("smooth_l1_b05", lambda r: F.smooth_l1_loss(x, y, reduction=r, beta=0.5))
all_reductions("smooth_l1_b0", lambda r: F.smooth_l1_loss(x, y, reduction=r, beta=0.0))
all_reductions("huber_d1", lambda r: F.huber_loss(x, y, reduction=r, delta=1.0))
all_reductions("huber_d06", lambda r: F.huber_loss(x, y, reduction=r, delta=0.6))

# Binary cross-entropy on probabilities, including 0 and 1 (logs clamped at -100).
p = T([[0.2, 0.9, 0.5], [0.0, 1.0, 0.7]])
yb = T([[0.0, 1.0, 1.0], [1.0, 0.0, 0.3]])
wb = T([1.0, 2.0, 0.5])
wcol = T([[2.0], [0.5]])
all_reductions("bce", lambda r: F.binary_cross_entropy(p, yb, reduction=r))
all_reductions("bce_w", lambda r: F.binary_cross_entropy(p, yb, weight=wb, reduction=r))
all_reductions("bce_wcol", lambda r: F.binary_cross_entropy(p, yb, weight=wcol, reduction=r))
# Gradient inside (0, 1), where PyTorch's formula and the clamped composition agree.
p2 = T([[0.2, 0.9, 0.5], [0.05, 0.95, 0.7]], requires_grad=True)
F.binary_cross_entropy(p2, yb, weight=wb).backward()
show("bce_w_grad", p2.grad)

# Binary cross-entropy with logits, extreme logits included.
z = T([[0.5, -2.0, 3.0, 0.0], [-1e4, 1e4, -1e4, 1e4]])
yz = T([[1.0, 0.0, 1.0, 0.5], [1.0, 0.0, 0.0, 1.0]])
wz = T([1.0, 2.0, 0.5, 1.5])
pw = T([2.0, 0.5, 1.0, 3.0])
all_reductions("bcel", lambda r: F.binary_cross_entropy_with_logits(z, yz, reduction=r))
all_reductions("bcel_w", lambda r: F.binary_cross_entropy_with_logits(z, yz, weight=wz, reduction=r))
all_reductions("bcel_pw", lambda r: F.binary_cross_entropy_with_logits(z, yz, pos_weight=pw, reduction=r))
all_reductions("bcel_w_pw", lambda r: F.binary_cross_entropy_with_logits(z, yz, weight=wz, pos_weight=pw,
                                                                          reduction=r))
z2 = z.clone().requires_grad_(True)
F.binary_cross_entropy_with_logits(z2, yz, weight=wz, pos_weight=pw).backward()
show("bcel_w_pw_grad", z2.grad)

# Cross-entropy on (3, 4) logits.
L = T([[1.0, 2.0, 0.5, -1.0], [0.3, -0.2, 2.2, 1.1], [-1.5, 0.7, 0.0, 2.5]])
t = T([1, 0, 3])
t_ign = T([1, -100, 3])
w = T([1.0, 2.0, 0.5, 1.5])
all_reductions("ce", lambda r: F.cross_entropy(L, t, reduction=r))
all_reductions("ce_w", lambda r: F.cross_entropy(L, t, weight=w, reduction=r))
all_reductions("ce_ign", lambda r: F.cross_entropy(L, t_ign, reduction=r))
all_reductions("ce_w_ign", lambda r: F.cross_entropy(L, t_ign, weight=w, reduction=r))
all_reductions("ce_w_ign0", lambda r: F.cross_entropy(L, t, weight=w, ignore_index=0, reduction=r))
all_reductions("ce_ls", lambda r: F.cross_entropy(L, t, label_smoothing=0.1, reduction=r))
all_reductions("ce_w_ls", lambda r: F.cross_entropy(L, t, weight=w, label_smoothing=0.1, reduction=r))
all_reductions("ce_w_ign_ls", lambda r: F.cross_entropy(L, t_ign, weight=w, label_smoothing=0.3, reduction=r))
all_reductions("ce_ign_ls", lambda r: F.cross_entropy(L, t_ign, label_smoothing=0.3, reduction=r))
L2 = L.clone().requires_grad_(True)
F.cross_entropy(L2, t_ign, weight=w, label_smoothing=0.3).backward()
show("ce_w_ign_ls_grad", L2.grad)

# (N, C, d) = (2, 3, 2) logits with (2, 2) targets, and (N, C, d1, d2) = (1, 3, 2, 2).
L3 = T([[[0.2, -1.0], [1.5, 0.3], [-0.4, 0.8]], [[2.0, 0.1], [-0.7, -1.2], [0.9, 1.6]]])
t3 = T([[0, 2], [1, -100]])
w3 = T([0.5, 1.0, 2.0])
all_reductions("ce3", lambda r: F.cross_entropy(L3, t3, reduction=r))
all_reductions("ce3_w_ls", lambda r: F.cross_entropy(L3, t3, weight=w3, label_smoothing=0.2, reduction=r))
L3g = L3.clone().requires_grad_(True)
F.cross_entropy(L3g, t3, weight=w3, label_smoothing=0.2).backward()
show("ce3_w_ls_grad", L3g.grad)
L4 = L3.reshape(1, 3, 2, 2)
t4 = T([[[0, 2], [1, 1]]])
all_reductions("ce4", lambda r: F.cross_entropy(L4, t4, reduction=r))

# Extreme logits.
Lx = T([[1e4, -1e4, 0.0], [-1e4, 1e4, 1e4]])
tx = T([1, 0])
all_reductions("ce_x", lambda r: F.cross_entropy(Lx, tx, reduction=r))
all_reductions("ce_x_ls", lambda r: F.cross_entropy(Lx, tx, label_smoothing=0.1, reduction=r))
Lxg = Lx.clone().requires_grad_(True)
F.cross_entropy(Lxg, tx, label_smoothing=0.1).backward()
show("ce_x_ls_grad", Lxg.grad)

# Every target ignored.
all_reductions("ce_all_ign", lambda r: F.cross_entropy(L, T([-100, -100, -100]), reduction=r))

# Unbatched: (C) logits and a 0-d target.
all_reductions("ce_unb_w_ls", lambda r: F.cross_entropy(L[1], T(2), weight=w, label_smoothing=0.1, reduction=r))

# Negative log-likelihood on arbitrary (not normalized) log-probabilities.
LP = T([[-1.0, -2.0, -0.5, -3.0], [-0.3, -1.2, -2.2, -0.1], [-1.5, -0.7, -4.0, -2.5]])
all_reductions("nll", lambda r: F.nll_loss(LP, t, reduction=r))
all_reductions("nll_w_ign", lambda r: F.nll_loss(LP, t_ign, weight=w, reduction=r))
