"""MLflow's command line (`mlflow server`, `mlflow ui`, ...), as the `mlflow` script runs it."""

import sys

from mlflow.cli import cli

if __name__ == "__main__":
    sys.exit(cli())
