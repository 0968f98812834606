"""Reference numbers for the parameter-group tests of tests/test_optim.c (groups_match_pytorch,
groups_f32_match_pytorch) and tests/test_scheduler.c (schedules_drive_every_group, group_added_after_schedule,
one_cycle_matches_pytorch), produced with PyTorch 1.13's optimizers and schedulers.
Run: /usr/bin/python3 tests/reference/optim_groups_reference.py  (prints the values pasted into the tests)."""

# ---- optimizers with two parameter groups: 5 steps of linear regression ----
import math, torch
torch.set_default_dtype(torch.float64)
W0 = [[0.5, -0.3, 0.8], [-0.2, 0.4, 0.1]]; B0 = [0.1, -0.1]
X = [[1.0, 2.0, -1.0], [0.5, -1.5, 2.0], [-1.0, 0.5, 0.3], [2.0, 1.0, 1.0]]
Y = [[1.0, -1.0], [0.0, 2.0], [-0.5, 0.5], [3.0, 1.0]]
def run(cls, g0, g1, dtype=torch.float64, steps=5):
    w = torch.tensor(W0, dtype=dtype, requires_grad=True); b = torch.tensor(B0, dtype=dtype, requires_grad=True)
    x = torch.tensor(X, dtype=dtype); y = torch.tensor(Y, dtype=dtype)
    # PyTorch 1.13's Adagrad fills every group's sum with the constructor's initial_accumulator_value.
    extra = dict(initial_accumulator_value=g0["initial_accumulator_value"]) if cls is torch.optim.Adagrad else {}
    # Both groups at construction: PyTorch 1.13's Adagrad makes no state for a group added later (KeyError 'sum').
    opt = cls([dict(params=[w], **g0), dict(params=[b], **g1)], lr=g0["lr"], **extra)
    for _ in range(steps):
        opt.zero_grad(); ((x @ w.T + b - y) ** 2).mean().backward(); opt.step()
    return w.detach().flatten().tolist(), b.detach().tolist()
O = torch.optim
cases = [
 ("sgd", O.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1), dict(lr=0.2, momentum=0.5, dampening=0.3)),
 ("sgd_plain_head", O.SGD, dict(lr=0.01, momentum=0.8, nesterov=True), dict(lr=0.1)),
 ("adam", O.Adam, dict(lr=0.01, betas=(0.9, 0.999), weight_decay=0.1), dict(lr=0.1, betas=(0.5, 0.9), amsgrad=True, eps=1e-6)),
 ("adamw", O.AdamW, dict(lr=0.01, weight_decay=0.3), dict(lr=0.1, weight_decay=0.0, betas=(0.8, 0.99))),
 ("rmsprop", O.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True), dict(lr=0.05, weight_decay=0.1)),
 ("adagrad", O.Adagrad, dict(lr=0.1, lr_decay=0.1, initial_accumulator_value=0.5), dict(lr=0.5, initial_accumulator_value=0.5, weight_decay=0.05)),
]
for name, cls, g0, g1 in cases:
    w, b = run(cls, g0, g1)
    print(name, repr(w), repr(b))
w, b = run(O.Adam, dict(lr=0.01, weight_decay=0.1), dict(lr=0.1, amsgrad=True), dtype=torch.float32)
print("adam_f32", [float(v) for v in w], [float(v) for v in b])

# ---- schedules over two parameter groups, and OneCycleLR ----
from torch.optim import lr_scheduler as L
def opt2(cls=torch.optim.SGD, late=False):
    a = torch.zeros(1, requires_grad=True); b = torch.zeros(1, requires_grad=True)
    if cls is torch.optim.SGD:
        g0, g1 = dict(params=[a], lr=0.1, momentum=0.9), dict(params=[b], lr=0.02, momentum=0.8)
    else:
        g0, g1 = dict(params=[a], lr=0.1), dict(params=[b], lr=0.02, betas=(0.8, 0.99))
    o = cls([g0] if late else [g0, g1], lr=0.1)
    return o, g1
def lrs(o): return [g['lr'] for g in o.param_groups]
def fmt(seq): return "{" + ", ".join(repr(float(v)) for v in seq) + "}"
def show(name, rows):
    print(name); print("  g0", fmt([r[0] for r in rows])); print("  g1", fmt([r[1] for r in rows]))
o, _ = opt2(); s = L.StepLR(o, 3, 0.5); rows = [lrs(o)]
for e in range(10): o.step(); s.step(); rows.append(lrs(o))
show("StepLR(3, 0.5)", rows)
o, _ = opt2(); s = L.CosineAnnealingLR(o, 4, 0.001); rows = [lrs(o)]
for e in range(10): o.step(); s.step(); rows.append(lrs(o))
show("Cosine(4, 0.001)", rows)
o, _ = opt2(); s1 = L.LinearLR(o, 0.25, total_iters=4); s2 = L.ExponentialLR(o, 0.9); rows = [lrs(o)]
for e in range(10): o.step(); s1.step(); s2.step(); rows.append(lrs(o))
show("LinearLR(0.25, 4) + ExponentialLR(0.9)", rows)
metrics = [1.0, 0.9, 0.95, 0.97, 0.96, 0.99, 0.98, 0.97, 0.8, 0.85]
o, _ = opt2(); s = L.ReduceLROnPlateau(o, factor=0.5, patience=1, min_lr=0.01); rows = [lrs(o)]
for m in metrics: o.step(); s.step(m); rows.append(lrs(o))
show("Plateau(0.5, patience 1, min_lr 0.01)", rows)
o, g1 = opt2(late=True); s = L.StepLR(o, 3, 0.5); rows = [lrs(o) + [0.02]]
for e in range(10):
    if e == 2: o.add_param_group(g1)
    o.step(); s.step(); rows.append(lrs(o) + ([0.02] if len(o.param_groups) == 1 else []))
show("StepLR, group 1 added before the third step", rows)
def mom(o):
    return [g['betas'][0] if 'betas' in g else g['momentum'] for g in o.param_groups]
for cls, strat, three in [(torch.optim.SGD, 'cos', False), (torch.optim.SGD, 'linear', False),
                          (torch.optim.SGD, 'cos', True), (torch.optim.SGD, 'linear', True),
                          (torch.optim.Adam, 'cos', False)]:
    o, _ = opt2(cls); s = L.OneCycleLR(o, max_lr=[1.0, 0.4], total_steps=10, anneal_strategy=strat, three_phase=three)
    rows, ms = [lrs(o)], [mom(o)]
    for e in range(10): o.step(); s.step(); rows.append(lrs(o)); ms.append(mom(o))
    show("OneCycle %s %s three=%s lr" % (cls.__name__, strat, three), rows)
    show("  momentum", ms)
    try:
        s.step()
    except ValueError as err: print("  ", err)
