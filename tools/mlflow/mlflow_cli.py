"""MLflow's command line (`mlflow server`, `mlflow ui`, ...), as the `mlflow` script runs it.

`mlflow models serve` runs `uvicorn` from PATH, a console script that pip would
have installed; Bazel's runfiles have the package but no script. So a `uvicorn`
that runs `python -m uvicorn` with this interpreter (and this PYTHONPATH, which
the launcher exported) goes first on PATH while the command runs.
"""

import os
import shutil
import sys
import tempfile
from pathlib import Path

from mlflow.cli import cli


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="slipway-mlflow-") as shims:
        if shutil.which("uvicorn") is None:
            shim = Path(shims) / "uvicorn"
            shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m uvicorn "$@"\n')
            shim.chmod(0o755)
            os.environ["PATH"] = f"{shims}{os.pathsep}{os.environ.get('PATH', '')}"
        return cli()  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.exit(main())
