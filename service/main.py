"""Run the inference service under gunicorn with the production configuration.

    tools/bazel run //service -- --model-dir path/to/model
    python service/main.py --model-uri models:/digits-classifier@champion --bind 0.0.0.0:8080

Flags fall back to environment variables (shown in --help); a flag given wins over
any variable. The process becomes gunicorn (exec), so signals such as SIGTERM
(graceful shutdown) reach it directly.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

# Not resolved: under Bazel these are runfiles symlinks.
SERVICE_DIR = os.path.dirname(os.path.abspath(__file__))
CONFIG_PATH = os.path.join(SERVICE_DIR, "gunicorn.conf.py")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="service", description=__doc__.splitlines()[0])
    # No environment defaults here: a flag given chooses the model source whatever the
    # environment says; the environment only counts when neither flag is given.
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--model-dir",
        help="serve this model directory [$SLIPWAY_MODEL_DIR]",
    )
    source.add_argument(
        "--model-uri",
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
    parser.add_argument(
        "--bind",
        help="host:port [$SLIPWAY_BIND; in the image $SLIPWAY_HOST:$PORT; default 127.0.0.1:8080]",
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


def gunicorn_environ(args: argparse.Namespace, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment gunicorn and its workers run with: `environ` updated by the flags.

    Flags win over environment variables. The model source is one of `--model-dir` and
    `--model-uri` if either is given (the other's variable is then dropped, so that a
    `SLIPWAY_MODEL_DIR` left in the environment cannot override `--model-uri`); with
    neither flag, `SLIPWAY_MODEL_DIR` and `SLIPWAY_MODEL_URI` pass through unchanged.
    """
    env = dict(environ)
    if args.model_dir or args.model_uri:
        env.pop("SLIPWAY_MODEL_DIR", None)
        env.pop("SLIPWAY_MODEL_URI", None)
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
    return env


def main(argv: Sequence[str] | None = None) -> None:
    env = gunicorn_environ(parse_args(argv), os.environ)
    os.execve(sys.executable, [sys.executable, "-m", "gunicorn", "-c", CONFIG_PATH], env)


if __name__ == "__main__":
    main()
