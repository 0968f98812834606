"""Hand-computed backward of the 2-layer MLP traced in tests/test_visualize.c (plain Python floats, no libraries).

    x = [[0.5, -1.0]]                       (1, 2), a constant
    z1 = x @ W1,  a1 = z1 + b1,  h = tanh(a1)
    z2 = h @ W2,  y = z2 + b2,   diff = y - t,  sq = diff^2,  L = mean(sq)
with W1 = [[0.1, -0.3], [0.4, 0.2]], b1 = [0.05, -0.1], W2 = [[0.7], [-0.5]], b2 = [0.2], t = [[1.0]].

The chain rule is written out one node at a time, in the order backward visits the nodes. The script prints the
numbers the trace must show, formatted as nabla's trace formats them (4 decimals), and the final gradients with
17 significant digits; tests/test_visualize.c hard-codes both. Run: python3 tests/reference/trace_reference.py"""
import math

x = [0.5, -1.0]
W1 = [[0.1, -0.3], [0.4, 0.2]]
b1 = [0.05, -0.1]
W2 = [0.7, -0.5]  # the column of the (2, 1) matrix
b2 = 0.2
t = 1.0

# forward
z1 = [x[0] * W1[0][j] + x[1] * W1[1][j] for j in range(2)]
a1 = [z1[j] + b1[j] for j in range(2)]
h = [math.tanh(a) for a in a1]
z2 = h[0] * W2[0] + h[1] * W2[1]
y = z2 + b2
diff = y - t
sq = diff * diff
L = sq / 1  # mean over one element

# backward, node by node
g_L = 1.0
g_sq = g_L * (1.0 / 1)                 # mean: d L/d sq = 1/n
local_sq = 2 * diff                    # square: d out/d x = 2x
g_diff = g_sq * local_sq
g_y = g_diff * 1.0                     # sub: d out/d a = 1 (t needs no gradient)
g_z2 = g_y * 1.0                       # add: d out/d a = 1
g_b2 = g_y * 1.0                       #      d out/d b = 1, summed over the broadcast dim (one element)
g_h = [g_z2 * W2[j] for j in range(2)]          # matmul: grad a = g @ W2^T
g_W2 = [h[j] * g_z2 for j in range(2)]          #         grad b = h^T @ g
local_h = [1 - hj * hj for hj in h]             # tanh: d out/d x = 1 - out^2
g_a1 = [g_h[j] * local_h[j] for j in range(2)]
g_z1 = g_a1[:]                                  # add: d out/d a = 1
g_b1 = g_a1[:]                                  #      d out/d b = 1, summed over the broadcast dim
g_W1 = [[x[i] * g_z1[j] for j in range(2)] for i in range(2)]  # matmul: grad b = x^T @ g


def f(v):
    if v == 0:
        return "0.0000"
    if abs(v) < 1e-4 or abs(v) >= 1e6:
        return "%.4e" % v
    return "%.4f" % v


def row(vs):
    return "[" + ", ".join(f(v) for v in vs) + "]"


print("/* forward */")
print('"%s" /* z1 */, "%s" /* a1 */, "%s" /* h */' % (row(z1), row(a1), row(h)))
print('"%s" /* y */, "%s" /* diff */, "%s" /* L */' % (f(y), f(diff), f(L)))
print("/* upstream gradients */")
for name, v in [("sq", [[g_sq]]), ("diff", [[g_diff]]), ("y", [[g_y]]), ("z2", [[g_z2]]), ("h", [g_h]),
                ("a1", [g_a1]), ("z1", [g_z1])]:
    print('"  upstream  d L/d %s = [%s]"' % (name, ", ".join(row(r) for r in v)))
print("/* local derivatives */")
print('"    local   [%s]" /* square */' % row([local_sq]))
print('"    local   [%s]" /* tanh */' % row(local_h))
print("/* gradients handed to inputs */")
print('"    grad    upstream * local = [%s]  -> added to d L/d diff"' % row([g_diff]))
print('"    grad    upstream * local, summed to shape (1) = %s  -> added to d L/d b2"' % row([g_b2]))
print('"    grad    [%s]  -> added to d L/d h"' % row(g_h))
print('"    grad    [%s, %s]  -> added to d L/d W2"' % (row([g_W2[0]]), row([g_W2[1]])))
print('"    grad    upstream * local = [%s]  -> added to d L/d a1"' % row(g_a1))
print('"    grad    upstream * local, summed to shape (2) = %s  -> added to d L/d b1"' % row(g_b1))
print('"    grad    [%s, %s]  -> added to d L/d W1"' % (row(g_W1[0]), row(g_W1[1])))
print("/* final gradients */")
print("W1: %s" % ", ".join("%.17g" % v for r in g_W1 for v in r))
print("b1: %s" % ", ".join("%.17g" % v for v in g_b1))
print("W2: %s" % ", ".join("%.17g" % v for v in g_W2))
print("b2: %.17g" % g_b2)
print("L: %.17g" % L)
