#!/usr/bin/env python3
"""Interoperability check for nabla's safetensors checkpoints, run by tests/test_checkpoint.c.

Only json, struct and numpy are used: this is an independent reading of the format (an 8-byte little-endian
header length, a JSON header of {name: {dtype, shape, data_offsets}} plus "__metadata__", then the raw
little-endian data), not a second copy of nabla's code.

    safetensors_interop.py check <file>   verify the file test_checkpoint.c wrote (exit 0 and print OK)
    safetensors_interop.py write <file>   write a file that test_checkpoint.c reads back

Both sides hard-code the same tensors; keep them in sync with interop_* in test_checkpoint.c.
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": "<f4", "F64": "<f8", "I64": "<i8", "BOOL": "|b1"}


def expected_from_nabla():
    """What test_checkpoint.c saves, in its list order."""
    return [
        ("w", "F32", (np.arange(6, dtype=np.float32) * np.float32(0.25) - np.float32(0.5)).reshape(2, 3)),
        ("d", "F64", np.array([np.pi, -1e300, 5e-324, -0.0], dtype=np.float64)),
        ("idx", "I64", np.array([[-(2**63), 2**63 - 1], [0, -1]], dtype=np.int64)),
        ("mask", "BOOL", np.array([True, False, True])),
        ("s", "F64", np.array(2.5, dtype=np.float64)),
        ("e", "F32", np.zeros((0, 3), dtype=np.float32)),
        ("step", "I64", np.array(42, dtype=np.int64)),
    ]


def check(path):
    blob = open(path, "rb").read()
    (n,) = struct.unpack("<Q", blob[:8])
    assert 8 + n <= len(blob), "header length %d exceeds the file" % n
    assert (8 + n) % 8 == 0, "data section not 8-byte aligned (header length %d)" % n
    text = blob[8 : 8 + n].decode("utf-8")
    assert text.rstrip(" ").endswith("}"), "the header is not a JSON object padded with spaces"
    header = json.loads(text)
    data = blob[8 + n :]

    meta = header.pop("__metadata__")
    assert meta == {"format": "pt", "note": "h\u00e9llo \"quoted\"\n"}, meta
    expected = expected_from_nabla()
    assert list(header) == [name for name, _, _ in expected], list(header)

    offset = 0
    for name, dtype, value in expected:
        info = header[name]
        assert set(info) == {"dtype", "shape", "data_offsets"}, info
        assert info["dtype"] == dtype, (name, info["dtype"])
        assert tuple(info["shape"]) == value.shape, (name, info["shape"])
        begin, end = info["data_offsets"]
        assert begin == offset, (name, begin, offset)  # nabla writes in list order, without gaps
        got = np.frombuffer(data[begin:end], dtype=DTYPES[dtype]).reshape(value.shape)
        assert got.nbytes == end - begin
        assert np.array_equal(got, value), (name, got, value)
        assert np.array_equal(np.signbit(got), np.signbit(value)), (name, "sign bits differ")
        offset = end
    assert offset == len(data), "data section has %d bytes, tensors end at %d" % (len(data), offset)
    print("OK: python read nabla's %s" % path)


def write(path):
    """Header order, data order, whitespace and padding all differ from nabla's own choices."""
    tensors = {
        "layer\u00e9.w": ("F32", np.array([[1.5, -2.0], [3.25, 4.0]], dtype=np.float32)),
        "b64": ("F64", np.array([0.1, 0.2, 1e-310], dtype=np.float64)),
        "i": ("I64", np.array([2**62, -3], dtype=np.int64)),
        "m": ("BOOL", np.array([[True, False], [False, True]])),
        "z": ("F32", np.array(7.0, dtype=np.float32)),
        "empty": ("F64", np.zeros((0,), dtype=np.float64)),
    }
    header = {}
    chunks = []
    offset = 0
    for name in reversed(list(tensors)):  # data in the reverse of the header's order
        dtype, value = tensors[name]
        raw = value.astype(DTYPES[dtype]).tobytes()
        chunks.append(raw)
        header[name] = (dtype, list(value.shape), [offset, offset + len(raw)])
        offset += len(raw)
    obj = {}
    for name in tensors:
        dtype, shape, offs = header[name]
        obj[name] = {"shape": shape, "data_offsets": offs, "dtype": dtype}
    obj["__metadata__"] = {"source": "numpy", "quote": 'a"b'}
    text = json.dumps(obj, indent=1, ensure_ascii=True).encode("ascii")
    text += b" " * 3  # padding that leaves the data unaligned
    if (8 + len(text)) % 8 == 0:
        text += b" "
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in chunks:
            f.write(raw)
    print("OK: python wrote %s" % path)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("check", "write"):
        sys.exit("usage: safetensors_interop.py check|write <file>")
    (check if sys.argv[1] == "check" else write)(sys.argv[2])
