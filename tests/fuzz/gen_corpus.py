#!/usr/bin/env python3
"""Writes the seed corpora of nabla's fuzz targets into corpus/<target>/ (small valid and near-valid files).

Standard library only. Run from anywhere: python3 tests/fuzz/gen_corpus.py. The output is committed; rerun it
after changing it. Files named regress_* are inputs a fuzzer once found failing, added by hand (see run.sh); the
script leaves them alone and replaces everything else."""
import gzip
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data, mtime=0):
    return gzip.compress(data, compresslevel=9, mtime=mtime)


def safetensors(entries, metadata=None, pad=True):
    """entries: list of (name, dtype, shape, raw bytes)."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def st_corpus():
    f32 = struct.pack("<6f", 1, 2, 3, 4, 5, 6)
    f64 = struct.pack("<3d", 0.5, -1, 2)
    i64 = struct.pack("<q", 7)
    bools = bytes([1, 0, 0, 1])
    model = [("w", "F32", [2, 3], f32), ("b", "F64", [3], f64), ("n", "I64", [], i64), ("m", "BOOL", [2, 2], bools)]
    write("safetensors", "model", safetensors(model, {"format": "pt", "optim.steps": "3"}))
    write("safetensors", "model_nometa", safetensors(model))
    write("safetensors", "empty", safetensors([]))
    write("safetensors", "zero_size", safetensors([("z", "F32", [0, 4], b"")]))
    write("safetensors", "wrong_shape", safetensors([("w", "F32", [3, 2], f32)]))
    write("safetensors", "converted", safetensors([
        ("h", "F16", [2], struct.pack("<2e", 1.5, -2)),
        ("bf", "BF16", [1], b"\x80\x3f"),
        ("i8", "I8", [3], bytes([0xff, 1, 0x80])),
        ("u16", "U16", [2], struct.pack("<2H", 1, 65535)),
        ("i32", "I32", [1], struct.pack("<i", -5)),
        ("u64", "U64", [1], struct.pack("<Q", 9)),
    ]))
    write("safetensors", "f8", safetensors([("e", "F8_E4M3", [1], b"\x01")]))
    write("safetensors", "escapes", safetensors([("a\\u00e9\\n\"", "F32", [1], struct.pack("<f", 1))]))
    full = safetensors(model)
    write("safetensors", "truncated", full[:-5])
    write("safetensors", "huge_header_length", struct.pack("<Q", 1 << 62) + full[8:])
    write("safetensors", "huge_shape", safetensors([("w", "F32", [1 << 40, 1 << 40], f32)]))
    write("safetensors", "bad_offsets", full.replace(b"[0,24]", b"[0,99]"))


def idx(dims, payload, type_=8):
    return bytes([0, 0, type_, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def idx_corpus():
    labels = idx([5], bytes([0, 1, 2, 9, 3]))
    images = idx([2, 3, 3], bytes(range(18)))
    write("idx", "labels", labels)
    write("idx", "images", images)
    write("idx", "labels.gz", gz(labels))
    write("idx", "images.gz", gz(images))
    write("idx", "empty", idx([0, 28, 28], b""))
    write("idx", "float_type", idx([2], struct.pack(">2f", 1, 2), 0x0D))
    write("idx", "huge_dims", idx([0xFFFFFFFF, 0xFFFFFFFF], bytes(16)))
    write("idx", "truncated", images[:-3])
    write("idx", "trailing", labels + b"x")
    write("idx", "gz_bad_crc", gz(labels)[:-8] + b"\0\0\0\0" + gz(labels)[-4:])


def gzip_corpus():
    text = b"nabla " * 40 + bytes(range(256))
    write("gzip", "text.gz", gz(text))
    write("gzip", "empty.gz", gz(b""))
    write("gzip", "stored.gz", gzip.compress(bytes(range(200)), compresslevel=0, mtime=0))
    write("gzip", "two_members.gz", gz(b"first\n") + gz(b"second\n"))
    # FNAME and FCOMMENT header fields.
    write("gzip", "named.gz", b"\x1f\x8b\x08\x18\0\0\0\0\0\x03name\0comment\0" + gz(b"abc")[10:])
    write("gzip", "huge_isize.gz", gz(b"abc")[:-4] + struct.pack("<I", 0xFFFFFFF0))
    write("gzip", "truncated.gz", gz(text)[:-10])


def csv_corpus():
    write("csv", "basic", b"a,b,c\n1,2,3\n4.5,-6e2,7\n")
    write("csv", "crlf", b"x,y\r\n1,2\r\n3,4\r\n\r\n")
    write("csv", "header_only", b"only\n")
    write("csv", "quoted", b"\"a\",\"b\"\n1,2\n")
    write("csv", "ragged", b"a,b\n1,2\n3\n")
    write("csv", "not_numeric", b"a,b\n1,x\n")
    write("csv", "special", b"a,b\nnan,inf\n-inf,0x10\n1e999,  2 \n")
    write("csv", "iris_head", b"sepal_length,sepal_width,petal_length,petal_width,species\n"
          b"5.1,3.5,1.4,0.2,0\n4.9,3.0,1.4,0.2,0\n7.0,3.2,4.7,1.4,1\n6.3,3.3,6.0,2.5,2\n")


if __name__ == "__main__":
    for t in ("safetensors", "idx", "gzip", "csv"):
        d = os.path.join(HERE, "corpus", t)
        for name in os.listdir(d) if os.path.isdir(d) else []:
            if not name.startswith("regress_"):
                os.remove(os.path.join(d, name))
    st_corpus()
    idx_corpus()
    gzip_corpus()
    csv_corpus()
