"""Reference numbers for tests/test_optim.c and tests/test_scheduler.c, produced with PyTorch 1.13's own
optimizers, schedulers and clip_grad_norm_ (single-tensor code paths, float64 unless noted).
Run: /usr/bin/python3 tests/reference/optim_reference.py  (prints the C tables pasted into the tests)."""
import math
import textwrap
import torch

torch.set_default_dtype(torch.float64)

# The fixed problem: linear regression, loss = mean((X W^T + b - Y)^2), parameters W (2, 3) and b (2).
W0 = [[0.5, -0.3, 0.8], [-0.2, 0.4, 0.1]]
B0 = [0.1, -0.1]
X = [[1.0, 2.0, -1.0], [0.5, -1.5, 2.0], [-1.0, 0.5, 0.3], [2.0, 1.0, 1.0]]
Y = [[1.0, -1.0], [0.0, 2.0], [-0.5, 0.5], [3.0, 1.0]]


def fmt(v):
    return ", ".join(repr(float(x)) for x in v)  # shortest text that reads back to the same double


def run(make, dtype=torch.float64, steps=5):
    w = torch.tensor(W0, dtype=dtype, requires_grad=True)
    b = torch.tensor(B0, dtype=dtype, requires_grad=True)
    x = torch.tensor(X, dtype=dtype)
    y = torch.tensor(Y, dtype=dtype)
    opt = make([w, b])
    for _ in range(steps):
        opt.zero_grad()
        loss = ((x @ w.T + b - y) ** 2).mean()
        loss.backward()
        opt.step()
    return w.detach().flatten().tolist(), b.detach().tolist()


def wrapped(v, indent=8):  # a C array body wrapped at 116 columns
    return ("\n" + " " * indent).join(textwrap.wrap(fmt(v), 116 - indent))


# (case name, kind, nabla options). Every field is listed so the C initializer needs no defaults.
SGD = ("lr", "momentum", "dampening", "weight_decay", "nesterov")
ADAM = ("lr", "beta1", "beta2", "eps", "weight_decay", "amsgrad")
RMS = ("lr", "alpha", "eps", "weight_decay", "momentum", "centered")
ADAGRAD = ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")


def sgd(lr=0.05, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    return dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay, nesterov=nesterov)


def adam(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0, amsgrad=False):
    return dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


def rms(lr=0.01, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    return dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum, centered=centered)


def adagrad(lr=0.1, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
    return dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                initial_accumulator_value=initial_accumulator_value, eps=eps)


def torch_opt(kind, o):
    if kind == "SGD":
        return lambda p: torch.optim.SGD(p, **o)
    if kind in ("ADAM", "ADAMW"):
        cls = torch.optim.Adam if kind == "ADAM" else torch.optim.AdamW
        return lambda p: cls(p, lr=o["lr"], betas=(o["beta1"], o["beta2"]), eps=o["eps"],
                             weight_decay=o["weight_decay"], amsgrad=o["amsgrad"])
    if kind == "RMSPROP":
        return lambda p: torch.optim.RMSprop(p, **o)
    return lambda p: torch.optim.Adagrad(p, **o)


CASES = [
    ("sgd", "SGD", sgd()),
    ("sgd_weight_decay", "SGD", sgd(weight_decay=0.1)),
    ("sgd_momentum", "SGD", sgd(momentum=0.9)),
    ("sgd_dampening", "SGD", sgd(momentum=0.9, dampening=0.3)),
    ("sgd_nesterov", "SGD", sgd(momentum=0.8, nesterov=True)),
    ("sgd_nesterov_decay", "SGD", sgd(momentum=0.8, nesterov=True, weight_decay=0.05)),
    ("adam", "ADAM", adam()),
    ("adam_weight_decay", "ADAM", adam(weight_decay=0.2)),
    ("adam_amsgrad", "ADAM", adam(beta2=0.9, amsgrad=True)),
    ("adam_betas", "ADAM", adam(lr=0.05, beta1=0.5, beta2=0.9, eps=1e-3)),
    ("adamw", "ADAMW", adam(weight_decay=0.1)),
    ("adamw_amsgrad", "ADAMW", adam(beta2=0.9, weight_decay=0.3, amsgrad=True)),
    ("rmsprop", "RMSPROP", rms()),
    ("rmsprop_centered", "RMSPROP", rms(centered=True)),
    ("rmsprop_momentum", "RMSPROP", rms(momentum=0.9)),
    ("rmsprop_all", "RMSPROP", rms(lr=0.02, alpha=0.9, eps=1e-4, weight_decay=0.1, momentum=0.5, centered=True)),
    ("adagrad", "ADAGRAD", adagrad()),
    ("adagrad_lr_decay", "ADAGRAD", adagrad(lr_decay=0.5)),
    ("adagrad_all", "ADAGRAD", adagrad(lr=0.2, lr_decay=0.1, weight_decay=0.05, initial_accumulator_value=0.5,
                                       eps=1e-6)),
]

FIELDS = {"SGD": ("sgd", SGD), "ADAM": ("adam", ADAM), "ADAMW": ("adam", ADAM), "RMSPROP": ("rmsprop", RMS),
          "ADAGRAD": ("adagrad", ADAGRAD)}


def c_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(float(v))


print("/* optimizer cases: parameters after 5 steps */")
results = {}
for name, kind, o in CASES:
    w, b = run(torch_opt(kind, o))
    results[name] = (w, b)
    member, fields = FIELDS[kind]
    opts = ", ".join(".%s = %s" % (f, c_value(o[f])) for f in fields)
    w_text = fmt(w[:3]) + ",\n           " + fmt(w[3:])
    print('    {"%s", K_%s,\n     .%s = {%s},\n     .w = {%s},\n     .b = {%s}},' % (name, kind, member, opts, w_text,
                                                                                fmt(b)))

# Options that must change the result (otherwise their test could not fail).
for a, b in [("sgd_momentum", "sgd_dampening"), ("adam", "adam_amsgrad"), ("adamw", "adamw_amsgrad"),
             ("rmsprop", "rmsprop_centered"), ("adagrad", "adagrad_lr_decay"), ("adam", "adamw")]:
    assert results[a] != results[b], (a, b)
w_plain, _ = run(torch_opt("ADAM", adam(beta2=0.9)))
assert w_plain != results["adam_amsgrad"][0], "amsgrad makes no difference on this problem"
w_plain, _ = run(torch_opt("ADAMW", adam(beta2=0.9, weight_decay=0.3)))
assert w_plain != results["adamw_amsgrad"][0], "amsgrad makes no difference on this problem"

print("/* adam in float32: parameters after 5 steps */")
w, b = run(torch_opt("ADAM", adam(lr=0.1)), dtype=torch.float32)
print("    {%s},\n    {%s}" % (wrapped(w, 5), wrapped(b, 5)))

# Schedulers: lr after creation, then after each of 10 epochs (SGD lr 0.1).
print("/* schedulers: lr at epochs 0..10 */")


def lrs(make, epochs=10, metrics=None):
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=0.1)
    s = make(opt)
    out = [opt.param_groups[0]["lr"]]
    for e in range(epochs if metrics is None else len(metrics)):
        opt.step()
        if metrics is None:
            s.step()
        else:
            s.step(metrics[e])
        out.append(opt.param_groups[0]["lr"])
    return out


sched = torch.optim.lr_scheduler
print("step:\n        {%s}" % wrapped(lrs(lambda o: sched.StepLR(o, step_size=3, gamma=0.5))))
print("multistep:\n        {%s}" % wrapped(lrs(lambda o: sched.MultiStepLR(o, milestones=[2, 5, 5, 8], gamma=0.5))))
print("exponential:\n        {%s}" % wrapped(lrs(lambda o: sched.ExponentialLR(o, gamma=0.9))))
print("cosine:\n        {%s}" % wrapped(lrs(lambda o: sched.CosineAnnealingLR(o, T_max=4, eta_min=0.01))))
print("linear:\n        {%s}" % wrapped(lrs(lambda o: sched.LinearLR(o, start_factor=0.25, end_factor=1.0,
                                                              total_iters=4))))
MIN_METRICS = [1.0, 0.95, 0.92, 0.91, 0.90, 0.80, 0.79, 0.795, 0.70, 0.71, 0.72, 0.73, 0.74, 0.60, 0.61, 0.62,
               0.63, 0.64, 0.65, 0.66]
MAX_METRICS = [0.5, 0.6, 0.6, 0.61, 0.62, 0.7, 0.7, 0.7, 0.7, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9]
print("plateau min metrics:\n        {%s}" % wrapped(MIN_METRICS))
print("plateau min:\n        {%s}" % wrapped(lrs(lambda o: sched.ReduceLROnPlateau(
    o, mode="min", factor=0.5, patience=2, threshold=0.05, cooldown=1, min_lr=0.02), metrics=MIN_METRICS)))
print("plateau max metrics:\n        {%s}" % wrapped(MAX_METRICS))
print("plateau max:\n        {%s}" % wrapped(lrs(lambda o: sched.ReduceLROnPlateau(
    o, mode="max", factor=0.3, patience=1, threshold=0.01, cooldown=0, min_lr=0.005), metrics=MAX_METRICS)))

# Gradient clipping over two gradients, max_norm 1.5 (clips) for norm types 2, 1, inf and 3.
print("/* clip_grad_norm_: total norm, clipped g1 (2, 3), clipped g2 (2) */")
G1 = [[0.5, -1.0, 2.0], [0.25, -0.75, 1.5]]
G2 = [-3.0, 0.125]
for nt in (2.0, 1.0, math.inf, 3.0):
    a = torch.zeros(2, 3, requires_grad=True)
    c = torch.zeros(2, requires_grad=True)
    a.grad = torch.tensor(G1)
    c.grad = torch.tensor(G2)
    total = torch.nn.utils.clip_grad_norm_([a, c], max_norm=1.5, norm_type=nt)
    print("norm %s: %r,\n    {%s},\n    {%s}" % (nt, total.item(), wrapped(a.grad.flatten().tolist(), 5),
                                                  wrapped(c.grad.tolist(), 5)))

# The same in float32 (total and clipped gradients are float32, norm type 2).
a = torch.zeros(2, 3, dtype=torch.float32, requires_grad=True)
c = torch.zeros(2, dtype=torch.float32, requires_grad=True)
a.grad = torch.tensor(G1, dtype=torch.float32)
c.grad = torch.tensor(G2, dtype=torch.float32)
total = torch.nn.utils.clip_grad_norm_([a, c], max_norm=1.5, norm_type=2.0)
print("float32 norm 2: %r,\n    {%s},\n    {%s}" % (total.item(), wrapped(a.grad.flatten().tolist(), 5),
                                                   wrapped(c.grad.tolist(), 5)))

# ReduceLROnPlateau skips reductions of at most eps = 1e-8.
p = torch.zeros(1, requires_grad=True)
opt = torch.optim.SGD([p], lr=0.02 + 5e-9)
s = sched.ReduceLROnPlateau(opt, factor=0.5, patience=0, min_lr=0.02)
for m in (1, 1, 1):
    s.step(m)
small = opt.param_groups[0]["lr"]
opt.param_groups[0]["lr"] = 0.02 + 2e-8
s.step(1)
print("plateau eps: lr 0.02 + 5e-9 stays %r; lr 0.02 + 2e-8 becomes %r" % (small, opt.param_groups[0]["lr"]))
