"""Reference numbers for tests/test_autograd.c: a 2-layer MLP with softmax cross-entropy, forward and backward
written out by hand in plain Python (float64), independent of nabla. Run: python3 tests/reference/mlp_reference.py"""
import math

def vals(n, a, b):  # deterministic inputs: a*sin(b*i + 1)
    return [a * math.sin(b * i + 1) for i in range(n)]

N, D, H, C = 3, 4, 5, 3
x = vals(N * D, 1.0, 0.7); W1 = vals(D * H, 0.5, 1.3); b1 = vals(H, 0.1, 2.1)
W2 = vals(H * C, 0.6, 0.9); b2 = vals(C, 0.2, 1.7); y = [0, 2, 1]
X = [x[i * D:(i + 1) * D] for i in range(N)]
w1 = [W1[i * H:(i + 1) * H] for i in range(D)]; w2 = [W2[i * C:(i + 1) * C] for i in range(H)]

pre = [[sum(X[n][d] * w1[d][h] for d in range(D)) + b1[h] for h in range(H)] for n in range(N)]
hid = [[math.tanh(v) for v in row] for row in pre]
logits = [[sum(hid[n][h] * w2[h][c] for h in range(H)) + b2[c] for c in range(C)] for n in range(N)]
loss = 0.0; dlogits = []
for n in range(N):
    m = max(logits[n]); z = sum(math.exp(v - m) for v in logits[n])
    p = [math.exp(v - m) / z for v in logits[n]]
    loss += -(logits[n][y[n]] - m - math.log(z)) / N
    dlogits.append([(p[c] - (1.0 if c == y[n] else 0.0)) / N for c in range(C)])
dW2 = [[sum(hid[n][h] * dlogits[n][c] for n in range(N)) for c in range(C)] for h in range(H)]
db2 = [sum(dlogits[n][c] for n in range(N)) for c in range(C)]
dhid = [[sum(dlogits[n][c] * w2[h][c] for c in range(C)) for h in range(H)] for n in range(N)]
dpre = [[dhid[n][h] * (1 - hid[n][h] ** 2) for h in range(H)] for n in range(N)]
dW1 = [[sum(X[n][d] * dpre[n][h] for n in range(N)) for h in range(H)] for d in range(D)]
db1 = [sum(dpre[n][h] for n in range(N)) for h in range(H)]

flat = lambda m: [v for row in m for v in row]
print("loss %.15g" % loss)
for name, v in [("dW1", flat(dW1)), ("db1", db1), ("dW2", flat(dW2)), ("db2", db2)]:
    print(name, ", ".join("%.15g" % t for t in v))
