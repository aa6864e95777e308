"""Compiles a pip package's modules to bytecode at build time (a genrule's tool).

rules_python 0.22.1 installs wheels without .pyc files, and a test sandbox or an
image cannot write them beside the sources, so every process would compile
torch, MLflow, pandas, ... again (about 6 s of CPU each). The genrule in
bytecode.annotation.json runs this once per package and build instead.

Usage: compile_pyc.py OUT_ROOT SRC...  Each SRC `.../site-packages/<path>.py`
gets `OUT_ROOT/site-packages/<dir>/__pycache__/<name>.<cache tag>.pyc`, hash-based
and checked (PEP 552): the interpreter compares the source's hash, not its mtime,
so the file stays valid in runfiles and sandboxes. A source that does not compile
(a template, Python 2 code) gets an empty file: the interpreter rejects it and
reads the source, as it would without bytecode.
"""

from __future__ import annotations

import importlib.util
import os
import py_compile
import sys

# The cache tag the genrule's output names hard-code (the toolchain's Python 3.11).
CACHE_TAG = "cpython-311"
MARKER = "/site-packages/"


def output_path(out_root: str, src: str) -> str:
    """Where `src`'s bytecode goes under `out_root`, mirroring its site-packages path."""
    if MARKER not in src:
        raise ValueError(f"{src}: not under a site-packages folder")
    rel = "site-packages/" + src.split(MARKER, 1)[1]
    return importlib.util.cache_from_source(os.path.join(out_root, rel))


def main(argv: list[str]) -> int:
    if len(argv) < 1:
        print("usage: compile_pyc.py OUT_ROOT SRC...", file=sys.stderr)
        return 2
    if sys.implementation.cache_tag != CACHE_TAG:
        print(
            f"compile_pyc: this is {sys.implementation.cache_tag}, but the genrule declares "
            f"{CACHE_TAG} outputs (tools/python/bytecode.annotation.json)",
            file=sys.stderr,
        )
        return 1
    out_root, srcs = argv[0], argv[1:]
    for src in srcs:
        try:
            out = output_path(out_root, src)
        except ValueError as err:
            print(f"compile_pyc: {err}", file=sys.stderr)
            return 1
        try:
            py_compile.compile(
                src,
                cfile=out,
                dfile=src.split(MARKER, 1)[1],
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
            )
        except py_compile.PyCompileError:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            open(out, "wb").close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
