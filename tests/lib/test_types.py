"""mypy over the library: the public API is fully typed, and a type error fails the build."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

LIB = Path("lib")


def mypy(root: Path) -> subprocess.CompletedProcess[str]:
    """Runs mypy with pyproject.toml's settings on `root`/slipway."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "pyproject.toml",
            "--no-incremental",
            "slipway",
        ],
        cwd=root,
        env={**os.environ, "MYPYPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
    )


def copy_of_lib(tmp_path: Path) -> Path:
    shutil.copytree(LIB / "slipway", tmp_path / "slipway", symlinks=False)
    shutil.copy("pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_library_type_checks(tmp_path: Path) -> None:
    result = mypy(copy_of_lib(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_type_error_names_file_and_line(tmp_path: Path) -> None:
    root = copy_of_lib(tmp_path)
    module = root / "slipway" / "io.py"
    lines = module.read_text().splitlines()
    lines.append('WRONG: int = "not an int"')
    module.write_text("\n".join(lines) + "\n")
    result = mypy(root)
    assert result.returncode == 1
    assert f"slipway/io.py:{len(lines)}: error: Incompatible types in assignment" in result.stdout
