"""Reference numbers for tests/test_data.c (scikit-learn 1.2, numpy). Run with Debian's /usr/bin/python3."""
import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, accuracy_score
from sklearn.preprocessing import MinMaxScaler, StandardScaler

train = np.array([[1, 2, 5], [3, 2, 7], [5, 2, 9], [7, 2, 3]], dtype=np.float64)
test = np.array([[0, 3, 6], [4, 2, 1]], dtype=np.float64)
std = StandardScaler().fit(train)
print("standard mean", std.mean_, "scale", std.scale_)
print("standard train", std.transform(train).ravel().tolist())
print("standard test", std.transform(test).ravel().tolist())
mm = MinMaxScaler().fit(train)
print("minmax train", mm.transform(train).ravel().tolist())
print("minmax test", mm.transform(test).ravel().tolist())


def report(y_true, y_pred, labels):
    print("confusion", confusion_matrix(y_true, y_pred, labels=labels).ravel().tolist())
    print("accuracy", accuracy_score(y_true, y_pred))
    for avg in (None, "macro"):
        p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, average=avg, zero_division=0)
        print(avg or "per class", "precision", np.round(p, 12).tolist(), "recall", np.round(r, 12).tolist(),
              "f1", np.round(f, 12).tolist())


# three classes
report([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2, 2], [0, 0, 1, 2, 1, 1, 0, 2, 2, 2, 1, 0], [0, 1, 2])
# zero division: class 2 is never predicted, class 3 appears nowhere
report([0, 1, 2, 2, 0], [0, 1, 1, 0, 0], [0, 1, 2, 3])
