"""tools/lint.py on copies: each kind of style finding names the file and line."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LINT = Path("tools/lint.py")
TOOLS = ["--buildifier", os.environ["BUILDIFIER"], "--ruff", os.environ["RUFF"]]

CLEAN_BUILD = 'load("@rules_python//python:defs.bzl", "py_library")\n\npy_library(\n    name = "x",\n    srcs = ["x.py"],\n)\n'
CLEAN_PY = '"""A clean module."""\n\n\ndef double(x: int) -> int:\n    return 2 * x\n'


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A tiny workspace copy: pyproject.toml (ruff settings), a BUILD file, a Python file."""
    shutil.copy("pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "BUILD.bazel").write_text(CLEAN_BUILD)
    (tmp_path / "lib" / "x.py").write_text(CLEAN_PY)
    return tmp_path


def lint(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(LINT), "--root", str(root), *TOOLS, *extra],
        capture_output=True,
        text=True,
        check=False,
    )


def test_clean_tree_passes(tree: Path) -> None:
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_misformatted_build_file_names_file_and_line(tree: Path) -> None:
    lines = CLEAN_BUILD.splitlines()
    lines[4] = "    srcs=['x.py'],"  # line 5
    (tree / "lib" / "BUILD.bazel").write_text("\n".join(lines) + "\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "lib/BUILD.bazel:5: buildifier: not formatted" in result.stdout


def test_buildifier_lint_warning_names_file_and_line(tree: Path) -> None:
    (tree / "lib" / "BUILD.bazel").write_text(CLEAN_BUILD + '\nload("//:a.bzl", "unused")\n')
    result = lint(tree)
    assert result.returncode == 1
    assert "lib/BUILD.bazel:8: buildifier:" in result.stdout


def test_misformatted_python_file_names_file_and_line(tree: Path) -> None:
    (tree / "lib" / "x.py").write_text(CLEAN_PY.replace("return 2 * x", "return 2*x"))
    result = lint(tree)
    assert result.returncode == 1
    assert "lib/x.py:5: ruff format: not formatted" in result.stdout


def test_python_lint_error_names_file_and_line(tree: Path) -> None:
    (tree / "lib" / "x.py").write_text(CLEAN_PY + "\n\nimport os\n")
    result = lint(tree)
    assert result.returncode == 1
    assert "lib/x.py:8:1: ruff: " in result.stdout


def test_fix_rewrites_in_place_and_leaves_nothing(tree: Path) -> None:
    (tree / "lib" / "x.py").write_text(CLEAN_PY.replace("return 2 * x", "return 2*x"))
    (tree / "lib" / "BUILD.bazel").write_text(
        CLEAN_BUILD.replace('srcs = ["x.py"]', "srcs=['x.py']")
    )
    assert lint(tree, "--fix").returncode == 0
    assert (tree / "lib" / "x.py").read_text() == CLEAN_PY
    assert (tree / "lib" / "BUILD.bazel").read_text() == CLEAN_BUILD


def test_shell_script_warning_names_file_and_line(tree: Path) -> None:
    script = tree / "tools" / "run"
    script.parent.mkdir()
    script.write_text('#!/usr/bin/env bash\nset -eu\nfor f in $(ls "$1"); do\n  echo $f\ndone\n')
    result = lint(tree)
    assert result.returncode == 1
    assert "tools/run:3: shellcheck:" in result.stdout and "[SC2045]" in result.stdout
    assert "tools/run:4: shellcheck:" in result.stdout and "[SC2086]" in result.stdout


def test_shell_templates_are_checked_too(tree: Path) -> None:
    (tree / "lib" / "push.sh.tpl").write_text('if [ -n "{{tags}}" ]; then\n  echo "tags"\nfi\n')
    result = lint(tree)
    assert result.returncode == 1
    assert "lib/push.sh.tpl:1: shellcheck:" in result.stdout and "[SC2157]" in result.stdout
