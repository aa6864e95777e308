"""The source tree itself passes every style check (buildifier, ruff), and //:srcs holds it all.

Runs on the real work tree, not on declared inputs, so the target is tagged
`external` (never cached): an edit anywhere is always checked.
"""

import os
import subprocess
import sys
from pathlib import Path

from tools.lint import source_files

# MODULE.bazel in the runfiles links back to the work tree.
ROOT = Path(os.path.realpath("MODULE.bazel")).parent
# Written by //tests/tools:srcs_list from //:srcs.
SRCS_LIST = Path("tests/tools/srcs.txt")


def test_source_tree_is_clean() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "tools/lint.py",
            "--root",
            str(ROOT),
            "--buildifier",
            os.environ["BUILDIFIER"],
            "--ruff",
            os.environ["RUFF"],
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        f"style findings (fix: tools/bazel run //tools:format):\n{result.stdout}{result.stderr}"
    )


def test_every_tracked_file_is_in_srcs() -> None:
    """The files the style checks read (git's, and new ones not ignored) are all in //:srcs.

    The nested-Bazel tests build their copy of the repository from //:srcs, so
    a file missing there is missing in their copy.
    """
    tracked = {str(path) for path in source_files(ROOT)}
    missing = sorted(tracked - set(SRCS_LIST.read_text().splitlines()))
    assert not missing, (
        "files not in //:srcs: add a new package's `srcs` filegroup (the last target of "
        "its BUILD.bazel) to the `srcs` of the package above it:\n" + "\n".join(missing)
    )
