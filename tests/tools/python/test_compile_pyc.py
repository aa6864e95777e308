"""tools/python/compile_pyc.py: build-time bytecode that the interpreter really uses."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[4]))
COMPILE_PYC = RUNFILES / "_main/tools/python/compile_pyc"


def compile_pyc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMPILE_PYC), *args], capture_output=True, text=True)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_interpreter_loads_the_bytecode_and_checks_the_source(tmp_path: Path) -> None:
    src = write(tmp_path / "repo/site-packages/pkg/mod.py", "VALUE = 1\n")
    write(tmp_path / "repo/site-packages/pkg/__init__.py", "")
    out_root = tmp_path / "out"
    done = compile_pyc(str(out_root), str(src))
    assert done.returncode == 0, done.stderr
    pyc = out_root / "site-packages/pkg/__pycache__/mod.cpython-311.pyc"
    assert pyc.is_file()
    # PEP 552 flags: hash-based (bit 0) and checked (bit 1).
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b11
    # Beside the source, as the genrule's output sits beside it in runfiles.
    target = src.parent / "__pycache__" / pyc.name
    target.parent.mkdir()
    target.write_bytes(pyc.read_bytes())
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(src.parents[1])}
    env.pop("PYTHONPYCACHEPREFIX", None)
    probe = [sys.executable, "-v", "-c", "import pkg.mod; print(pkg.mod.VALUE)"]
    done = subprocess.run(probe, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "1"
    assert f"code object from '{target}'" in done.stderr
    # A changed source no longer matches the hash: the interpreter reads the source.
    src.write_text("VALUE = 2\n")
    done = subprocess.run(probe, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "2"
    assert f"code object from '{target}'" not in done.stderr


def test_a_source_that_does_not_compile_gets_an_empty_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "site-packages/tpl.py", "print 'python 2'\n")
    done = compile_pyc(str(tmp_path / "out"), str(bad))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out/site-packages/__pycache__/tpl.cpython-311.pyc").read_bytes() == b""


def test_bad_arguments_name_the_problem(tmp_path: Path) -> None:
    done = compile_pyc()
    assert done.returncode == 2 and "usage: compile_pyc.py OUT_ROOT SRC" in done.stderr
    stray = write(tmp_path / "lib/mod.py", "")
    done = compile_pyc(str(tmp_path / "out"), str(stray))
    assert done.returncode == 1
    assert f"{stray}: not under a site-packages folder" in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_listed_pip_package_has_its_bytecode_in_runfiles() -> None:
    spec = importlib.util.find_spec("numpy")
    assert spec is not None and spec.origin is not None
    pyc = Path(importlib.util.cache_from_source(spec.origin))
    assert pyc.is_file(), f"no build-time bytecode for numpy at {pyc}"
    assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 0b11
