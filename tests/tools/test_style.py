"""The source tree itself passes every style check (buildifier, ruff).

Runs on the real work tree, not on declared inputs, so the target is tagged
`external` (never cached): an edit anywhere is always checked.
"""

import os
import subprocess
import sys
from pathlib import Path


def test_source_tree_is_clean() -> None:
    # MODULE.bazel in the runfiles links back to the work tree.
    root = Path(os.path.realpath("MODULE.bazel")).parent
    result = subprocess.run(
        [
            sys.executable,
            "tools/lint.py",
            "--root",
            str(root),
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
