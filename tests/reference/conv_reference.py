"""Reference numbers for tests/test_conv.c, from PyTorch (run with Debian's /usr/bin/python3 and python3-torch).

Inputs are formulas of the flat element index k, so the C test rebuilds them exactly:
    x(shape) = 1.5 sin(0.37 k + 0.1),  w(shape) = 0.5 cos(0.91 k + 0.3),  b(shape) = 0.1 k - 0.2
For each result the script prints its shape, sum(out), the weighted checksum sum(out[k] sin(0.5 k)) and the
first four elements (everything in f64)."""
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def idx(*shape):
    return torch.arange(torch.Size(shape).numel(), dtype=torch.float64).reshape(shape)


def x(*shape):
    return 1.5 * torch.sin(0.37 * idx(*shape) + 0.1)


def w(*shape):
    return 0.5 * torch.cos(0.91 * idx(*shape) + 0.3)


def b(*shape):
    return 0.1 * idx(*shape) - 0.2


def show(name, t):
    flat = t.reshape(-1)
    k = torch.arange(flat.numel(), dtype=torch.float64)
    first = ", ".join("%.12g" % v for v in flat[:4].tolist())
    print("%s: shape %s sum %.12g check %.12g first %s" % (name, tuple(t.shape), flat.sum().item(),
                                                            (flat * torch.sin(0.5 * k)).sum().item(), first))


show("conv_basic", F.conv2d(x(2, 3, 7, 6), w(4, 3, 3, 3), b(4)))
show("conv_strided_groups", F.conv2d(x(2, 4, 7, 8), w(6, 2, 3, 2), b(6), stride=(2, 1), padding=(1, 2),
                                     dilation=(1, 2), groups=2))
show("conv_depthwise", F.conv2d(x(1, 3, 6, 6), w(6, 1, 3, 3), None, stride=2, padding=1, groups=3))
show("conv_pointwise", F.conv2d(x(2, 5, 4, 3), w(3, 5, 1, 1), b(3)))
show("conv1d", F.conv1d(x(2, 3, 10), w(4, 3, 3), b(4), stride=2, padding=1, dilation=2))
show("conv_transpose", F.conv_transpose2d(x(2, 4, 3, 4), w(4, 3, 3, 2), b(3), stride=2, padding=1,
                                          output_padding=1))
show("conv_transpose_groups", F.conv_transpose2d(x(1, 4, 3, 3), w(4, 2, 3, 3), None, stride=(1, 2), padding=(0, 1),
                                                 dilation=(2, 1), groups=2))
show("max_pool", F.max_pool2d(x(2, 3, 7, 6), (3, 2), stride=(2, 2), padding=(1, 1)))
show("avg_pool_incl", F.avg_pool2d(x(2, 3, 7, 6), 3, stride=2, padding=1, count_include_pad=True))
show("avg_pool_excl", F.avg_pool2d(x(2, 3, 7, 6), 3, stride=2, padding=1, count_include_pad=False))
show("adaptive_uneven", F.adaptive_avg_pool2d(x(2, 3, 7, 5), (3, 2)))
show("adaptive_even", F.adaptive_avg_pool2d(x(2, 3, 8, 6), (4, 3)))
show("adaptive_global", F.adaptive_avg_pool2d(x(2, 3, 7, 5), 1))

# Max pooling ties: the gradient goes to the first maximum of each window.
t = torch.tensor([[[[1., 3., 3., 0.], [3., 2., 0., 0.], [1., 1., 5., 5.], [0., 0., 5., 5.]]]], requires_grad=True)
out, ind = F.max_pool2d(t, 2, return_indices=True)
out.sum().backward()
print("max_pool_ties: out", out.reshape(-1).tolist(), "indices", ind.reshape(-1).tolist(),
      "grad", t.grad.reshape(-1).tolist())

# Batch norm 2d: one training step updating the running statistics, then eval with them.
rm, rv = torch.zeros(3), torch.ones(3)
xb = x(4, 3, 3, 2)
show("bn_train", F.batch_norm(xb, rm, rv, w(3), b(3), training=True, momentum=0.1, eps=1e-5))
print("bn_running_mean", ", ".join("%.12g" % v for v in rm.tolist()))
print("bn_running_var", ", ".join("%.12g" % v for v in rv.tolist()))
show("bn_eval", F.batch_norm(xb, rm, rv, w(3), b(3), training=False, momentum=0.1, eps=1e-5))

# Conv2d's default initialization: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
torch.manual_seed(0)
conv = torch.nn.Conv2d(16, 32, 3, groups=2)
print("conv_init bound %.6g weight std %.4f (uniform std %.4f)" % (1 / (8 * 9) ** 0.5, conv.weight.std().item(),
                                                                   1 / (8 * 9) ** 0.5 / 3 ** 0.5))
