"""Reference numbers for tests/test_nn.c: LayerNorm and BatchNorm1d computed by PyTorch (float64).
Run: python3 tests/reference/norm_reference.py"""
import math
import torch

torch.set_default_dtype(torch.float64)


def vals(n, a, b):  # deterministic inputs: a*sin(b*i + 1), the same formula the C test uses
    return [a * math.sin(b * i + 1) for i in range(n)]


def show(name, t):
    print(name, ", ".join("%.10g" % v for v in t.detach().flatten().tolist()))


# LayerNorm over the last dim (4) of a (2, 3, 4) input, weight and bias set to known values.
x = torch.tensor(vals(24, 2.0, 0.9)).reshape(2, 3, 4)
ln = torch.nn.LayerNorm(4)
with torch.no_grad():
    ln.weight.copy_(torch.tensor(vals(4, 1.5, 0.4)))
    ln.bias.copy_(torch.tensor(vals(4, 0.5, 1.1)))
show("ln_last", ln(x))
# LayerNorm over the last two dims (3, 4), default affine parameters, eps 1e-3.
show("ln_two", torch.nn.LayerNorm([3, 4], eps=1e-3)(x))

# BatchNorm1d(3) on (N, C) inputs: two training steps, then eval.
bn = torch.nn.BatchNorm1d(3, eps=1e-5, momentum=0.1)
with torch.no_grad():
    bn.weight.copy_(torch.tensor(vals(3, 1.2, 0.7)))
    bn.bias.copy_(torch.tensor(vals(3, 0.3, 1.9)))
x1 = torch.tensor(vals(12, 1.0, 0.8)).reshape(4, 3)
x2 = torch.tensor(vals(15, 3.0, 0.35)).reshape(5, 3) + 1.0
x3 = torch.tensor(vals(6, 2.0, 1.3)).reshape(2, 3)
show("bn_y1", bn(x1))
show("bn_y2", bn(x2))
show("bn_running_mean", bn.running_mean)
show("bn_running_var", bn.running_var)
print("bn_num_batches_tracked", int(bn.num_batches_tracked))
bn.eval()
show("bn_eval", bn(x3))

# BatchNorm1d(3) on (N, C, L) = (2, 3, 4): one training step with momentum 0.3, then eval, no affine.
bn3 = torch.nn.BatchNorm1d(3, eps=1e-5, momentum=0.3, affine=False)
x4 = torch.tensor(vals(24, 1.7, 0.45)).reshape(2, 3, 4)
show("bn3_y", bn3(x4))
show("bn3_running_mean", bn3.running_mean)
show("bn3_running_var", bn3.running_var)
bn3.eval()
show("bn3_eval", bn3(x4[:1]))
