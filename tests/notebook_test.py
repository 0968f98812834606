#!/usr/bin/env python3
"""Keeps the notebooks of docs/notebooks/ honest (see docs/notebooks/README.md for the cell convention).

    notebook_test.py extract NOTEBOOK.md PROGRAM.c
        writes the C program made of the notebook's code cells, in order
    notebook_test.py check NOTEBOOK.md PROGRAM [--rtol R] [--atol A]
        runs PROGRAM (built from NOTEBOOK.md) in an empty directory and fails, with a diff per cell, unless each
        cell printed what the notebook's output block below it says, and each file the program wrote equals the
        file of that name next to the notebook. Text must match exactly; numbers within the tolerance.
    notebook_test.py update NOTEBOOK.md PROGRAM [NOTEBOOK.md PROGRAM ...]
        runs each program and writes what it printed into the notebook's output blocks, and the files it wrote
        next to the notebook

Standard library only, so that it runs wherever meson does.
"""
import difflib
import os
import re
import subprocess
import sys
import tempfile

# A number matches when |actual - expected| <= ATOL + RTOL |expected|.
RTOL = 1e-6
ATOL = 1e-9

FENCE_OPEN = re.compile(r"^```([A-Za-z0-9_+-]*)[ \t]*(.*?)[ \t]*$")
FENCE_CLOSE = re.compile(r"^```[ \t]*$")
# The program prints this after each cell, so that the output can be cut into cells.
MARK = "\x1fnotebook-cell-end"
MARK_ENV = "NABLA_NOTEBOOK_MARKERS"
MARK_RE = re.compile(re.escape(MARK) + r" (\d+)\x1f\n")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?|[-+]?(?:nan|inf)(?![A-Za-z])")


class Cell:
    """A fenced block: kind is 'code' (statements inside main), 'file' (file scope), 'output' or 'other'.
    first/last are the 0-based line numbers of the opening and closing fences."""

    def __init__(self, kind, first, last, lines):
        self.kind, self.first, self.last, self.lines = kind, first, last, lines
        self.output = None  # for a code cell: its output block, if any


def die(msg):
    print("notebook_test: " + msg, file=sys.stderr)
    sys.exit(1)


def parse(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        lang, info = m.group(1), m.group(2).split()
        j = i + 1
        while j < len(lines) and not FENCE_CLOSE.match(lines[j]):
            j += 1
        if j == len(lines):
            die("%s:%d: code fence never closed" % (path, i + 1))
        if lang == "c" and not info:
            kind = "code"
        elif lang == "c" and info == ["file"]:
            kind = "file"
        elif lang == "output":
            kind = "output"
        else:
            kind = "other"  # ```sh, ```text, ```c norun, ...: shown, never run
        blocks.append(Cell(kind, i, j, lines[i + 1:j]))
        i = j + 1
    # An output block belongs to the code cell right before it (prose may sit between them).
    code = []
    for k, b in enumerate(blocks):
        if b.kind == "output":
            prev = blocks[k - 1] if k > 0 else None
            if prev is None or prev.kind != "code":
                die("%s:%d: an ```output block must follow a ```c cell" % (path, b.first + 1))
            prev.output = b
        if b.kind == "code":
            code.append(b)
    return lines, blocks, code


def extract(md, out_c):
    _, blocks, code = parse(md)
    name = os.path.abspath(md).replace("\\", "\\\\").replace('"', '\\"')
    src = ["/* Generated from %s by tests/notebook_test.py: edit the notebook, not this file. */" % os.path.basename(md),
           "#include <stdio.h>", "#include <stdlib.h>"]
    for b in blocks:
        if b.kind == "file":
            src.append('#line %d "%s"' % (b.first + 2, name))
            src.extend(b.lines)
    src.append('#line %d "%s"' % (len(src) + 2, os.path.basename(out_c)))
    # Markers only for the test: run by hand, the program prints just the notebook's outputs.
    src.append("static void notebook_cell_end_(int k)\n{\n    if (!getenv(\"%s\")) return;\n    fflush(stdout);\n"
               '    printf("%s %%d\\x1f\\n", k);\n    fflush(stdout);\n}' % (MARK_ENV, MARK.replace("\x1f", "\\x1f")))
    src.append("int main(void)\n{")
    for k, b in enumerate(code, 1):
        src.append('#line %d "%s"' % (b.first + 2, name))
        src.extend(b.lines)
        src.append("notebook_cell_end_(%d);" % k)
    src.append("return 0;\n}\n")
    if not code:
        die("%s: no ```c cell" % md)
    with open(out_c, "w", encoding="utf-8") as f:
        f.write("\n".join(src))


def normalize(text_lines):
    """Trailing spaces and trailing empty lines do not count (editors strip them)."""
    out = [l.rstrip() for l in text_lines]
    while out and out[-1] == "":
        out.pop()
    return out


def run(md, program, workdir):
    env = dict(os.environ)
    env.pop("NABLA_TRACE", None)  # the notebooks turn the trace on themselves, where they show it
    env[MARK_ENV] = "1"
    proc = subprocess.run([os.path.abspath(program)], cwd=workdir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=600)
    out = proc.stdout.decode("utf-8", "replace")
    chunks, pos = {}, 0
    for m in MARK_RE.finditer(out):
        chunks[int(m.group(1))] = out[pos:m.start()]
        pos = m.end()
    return proc, chunks, out[pos:]


def numbers_match(a, b, rtol, atol):
    fa, fb = float(a), float(b)
    if fa != fa or fb != fb:
        return fa != fa and fb != fb
    if fa == fb:
        return True
    return abs(fa - fb) <= atol + rtol * abs(fb)


def line_matches(actual, expected, rtol, atol):
    if actual == expected:
        return True
    if NUMBER.sub("#", actual) != NUMBER.sub("#", expected):
        return False
    na, ne = NUMBER.findall(actual), NUMBER.findall(expected)
    return len(na) == len(ne) and all(numbers_match(x, y, rtol, atol) for x, y in zip(na, ne))


def compare(actual, expected, rtol, atol):
    return len(actual) == len(expected) and all(line_matches(a, e, rtol, atol) for a, e in zip(actual, expected))


def report(label, expected, actual, rtol, atol):
    """A unified diff in which lines equal within the tolerance show as unchanged, so that only real
    differences stand out."""
    shown = [expected[i] if i < len(expected) and line_matches(a, expected[i], rtol, atol) else a
             for i, a in enumerate(actual)]
    sys.stdout.writelines(difflib.unified_diff([l + "\n" for l in expected], [l + "\n" for l in shown],
                                               label + " (notebook)", label + " (actual)"))


def check(md, program, rtol, atol):
    _, _, code = parse(md)
    full = os.path.abspath(md).replace(os.sep, "/")
    rel = full[full.rfind("docs/notebooks/"):] if "docs/notebooks/" in full else md
    failures = 0
    with tempfile.TemporaryDirectory(prefix="notebook-") as work:
        proc, chunks, tail = run(md, program, work)
        for k, cell in enumerate(code, 1):
            where = "%s:%d: cell %d" % (rel, cell.first + 1, k)
            if k not in chunks:
                how = ("was killed by signal %d" % -proc.returncode if proc.returncode < 0
                       else "exited with status %d" % proc.returncode)
                print("%s did not finish: the program %s before its end" % (where, how))
                err = proc.stderr.decode("utf-8", "replace")
                if err:
                    print("its standard error:\n" + err)
                if tail:
                    print("it printed:\n" + tail)
                failures += 1
                break
            expected = normalize(cell.output.lines if cell.output else [])
            actual = normalize(chunks[k].split("\n"))
            if not compare(actual, expected, rtol, atol):
                print("%s prints something else (numbers compared with rtol %g, atol %g):" % (where, rtol, atol))
                report("cell %d" % k, expected, actual, rtol, atol)
                failures += 1
        else:
            if proc.returncode != 0:
                print("%s: the program exited with status %d after its last cell" % (rel, proc.returncode))
                print(proc.stderr.decode("utf-8", "replace"))
                failures += 1
        notebook_dir = os.path.dirname(os.path.abspath(md))
        for name in sorted(os.listdir(work)):
            committed = os.path.join(notebook_dir, name)
            if not os.path.isfile(committed):
                print("%s writes %s, which is not committed next to the notebook" % (rel, name))
                failures += 1
                continue
            with open(os.path.join(work, name), encoding="utf-8", errors="replace") as f:
                actual = normalize(f.read().split("\n"))
            with open(committed, encoding="utf-8", errors="replace") as f:
                expected = normalize(f.read().split("\n"))
            if not compare(actual, expected, rtol, atol):
                print("%s writes a %s that differs from the committed one:" % (rel, name))
                report(name, expected, actual, rtol, atol)
                failures += 1
    if failures:
        print("\n%s: %d difference(s). If the change is intended, regenerate the outputs with\n"
              "    meson compile -C <build directory> notebooks-update\nand review the diff." % (rel, failures))
        return 1
    print("%s: %d cells print what the notebook says" % (rel, len(code)))
    return 0


def update(md, program):
    lines, _, code = parse(md)
    with tempfile.TemporaryDirectory(prefix="notebook-") as work:
        proc, chunks, tail = run(md, program, work)
        if proc.returncode != 0 or len(chunks) != len(code):
            sys.stderr.write(proc.stderr.decode("utf-8", "replace") + tail)
            die("%s: the program failed (status %d) after %d of %d cells; notebook left unchanged"
                % (md, proc.returncode, len(chunks), len(code)))
        # Rewrite from the end so that earlier line numbers stay valid.
        for k in range(len(code), 0, -1):
            cell = code[k - 1]
            out = normalize(chunks[k].split("\n"))
            if cell.output:
                lines[cell.output.first + 1:cell.output.last] = out
            elif out:
                lines[cell.last + 1:cell.last + 1] = ["", "```output"] + out + ["```"]
        for name in sorted(os.listdir(work)):
            target = os.path.join(os.path.dirname(os.path.abspath(md)), name)
            with open(os.path.join(work, name), "rb") as f:
                data = f.read()
            if os.path.isfile(target):
                with open(target, "rb") as f:
                    if f.read() == data:
                        continue
            with open(target, "wb") as f:
                f.write(data)
            print("notebook_test: wrote %s" % os.path.normpath(os.path.join(os.path.dirname(md), name)))
    text = "\n".join(lines)
    with open(md, encoding="utf-8") as f:
        if f.read() == text:
            print("notebook_test: %s is up to date (%d cells)" % (os.path.normpath(md), len(code)))
            return
    with open(md, "w", encoding="utf-8") as f:
        f.write(text)
    print("notebook_test: updated %s (%d cells)" % (os.path.normpath(md), len(code)))


def main(argv):
    rtol, atol = RTOL, ATOL
    args = []
    it = iter(argv[1:])
    for a in it:
        if a == "--rtol":
            rtol = float(next(it))
        elif a == "--atol":
            atol = float(next(it))
        else:
            args.append(a)
    if len(args) == 3 and args[0] == "extract":
        extract(args[1], args[2])
        return 0
    if len(args) == 3 and args[0] == "check":
        return check(args[1], args[2], rtol, atol)
    if len(args) >= 3 and args[0] == "update" and len(args) % 2 == 1:
        for md, program in zip(args[1::2], args[2::2]):
            update(md, program)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
