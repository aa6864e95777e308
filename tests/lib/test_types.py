"""mypy over the library: the public API is fully typed, and a type error fails the build."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

LIB = Path("lib")


def mypy(root: Path) -> subprocess.CompletedProcess[str]:
    """Runs mypy with pyproject.toml's settings on `root`/slipway.

    Incremental, with its cache in `root`: the second run of this file rechecks
    only what changed, not torch's and mlflow's stubs again.
    """
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "pyproject.toml",
            "--cache-dir",
            str(root / ".mypy_cache"),
            "slipway",
        ],
        cwd=root,
        env={**os.environ, "MYPYPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture(scope="module")
def lib_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the library and pyproject.toml (the tests edit it)."""
    root = tmp_path_factory.mktemp("lib")
    shutil.copytree(LIB / "slipway", root / "slipway", symlinks=False)
    shutil.copy("pyproject.toml", root / "pyproject.toml")
    return root


def test_library_type_checks(lib_copy: Path) -> None:
    result = mypy(lib_copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_type_error_names_file_and_line(lib_copy: Path) -> None:
    module = lib_copy / "slipway" / "io.py"
    original = module.read_text()
    lines = original.splitlines()
    lines.append('WRONG: int = "not an int"')
    module.write_text("\n".join(lines) + "\n")
    try:
        result = mypy(lib_copy)
    finally:
        module.write_text(original)
    assert result.returncode == 1
    assert f"slipway/io.py:{len(lines)}: error: Incompatible types in assignment" in result.stdout
