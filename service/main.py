"""Run the inference service under gunicorn with the production configuration.

    tools/bazel run //service -- --model-dir path/to/model
    python service/main.py --model-uri models:/digits-classifier@champion --bind 0.0.0.0:8080

Flags fall back to environment variables (shown in --help); the process becomes
gunicorn (exec), so signals such as SIGTERM (graceful shutdown) reach it directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

# Not resolved: under Bazel these are runfiles symlinks.
SERVICE_DIR = os.path.dirname(os.path.abspath(__file__))
CONFIG_PATH = os.path.join(SERVICE_DIR, "gunicorn.conf.py")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="service", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model-dir",
        default=env.get("SLIPWAY_MODEL_DIR"),
        help="serve this model directory [$SLIPWAY_MODEL_DIR]",
    )
    source.add_argument(
        "--model-uri",
        default=env.get("SLIPWAY_MODEL_URI"),
        help="serve this registry model [$SLIPWAY_MODEL_URI; default models:/digits-classifier@champion]",
    )
    parser.add_argument(
        "--tracking-uri",
        default=env.get("MLFLOW_TRACKING_URI"),
        help="MLflow tracking URI [$MLFLOW_TRACKING_URI; default the embedded store]",
    )
    parser.add_argument(
        "--data-dir",
        default=env.get("SLIPWAY_DATA_DIR"),
        help="data dir of the embedded registry [$SLIPWAY_DATA_DIR]",
    )
    port = env.get("PORT")
    parser.add_argument(
        "--bind",
        default=env.get("SLIPWAY_BIND") or (f"0.0.0.0:{port}" if port else "127.0.0.1:8080"),
        help="host:port [$SLIPWAY_BIND, or 0.0.0.0:$PORT; default 127.0.0.1:8080]",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes [$SLIPWAY_WORKERS; default: cores]",
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="threads per worker [$SLIPWAY_THREADS; default 4]"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    env = os.environ
    # Paths made absolute here: gunicorn workers may run from another directory.
    settings = {
        "SLIPWAY_MODEL_DIR": os.path.abspath(args.model_dir) if args.model_dir else None,
        "SLIPWAY_MODEL_URI": args.model_uri,
        "MLFLOW_TRACKING_URI": args.tracking_uri,
        "SLIPWAY_DATA_DIR": os.path.abspath(args.data_dir) if args.data_dir else None,
        "SLIPWAY_BIND": args.bind,
        "SLIPWAY_WORKERS": None if args.workers is None else str(args.workers),
        "SLIPWAY_THREADS": None if args.threads is None else str(args.threads),
    }
    env.update({k: v for k, v in settings.items() if v})
    # So that workers import `service.app` from this tree whatever the working directory.
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (os.path.dirname(SERVICE_DIR), env.get("PYTHONPATH")) if p
    )
    os.execv(sys.executable, [sys.executable, "-m", "gunicorn", "-c", CONFIG_PATH])


if __name__ == "__main__":
    main()
