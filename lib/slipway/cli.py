"""Conventions shared by the job entry points: flags, logging, exit codes.

Every flag may fall back to an environment variable (shown in `--help`), so the same
binary runs from a shell, a container or an orchestrator. Exit codes: 0 success,
1 a failure with a one-line `error: ...` on stderr, 2 a usage error (argparse),
130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from slipway.errors import SlipwayError

LOG = logging.getLogger("slipway")

DATA_DIR_ENV = "SLIPWAY_DATA_DIR"
DEFAULT_DATA_DIR_NAME = "slipway-data"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def default_data_dir(environ: dict[str, str] | None = None) -> Path:
    """Return the data directory the jobs use when `--data-dir` is not given.

    Order: `$SLIPWAY_DATA_DIR`; else `$BUILD_WORKSPACE_DIRECTORY/slipway-data` (set by
    `bazel run`, whose working directory is the runfiles tree); else `./slipway-data`.
    """
    env = os.environ if environ is None else environ
    if env.get(DATA_DIR_ENV):
        return Path(env[DATA_DIR_ENV])
    if env.get("BUILD_WORKSPACE_DIRECTORY"):
        return Path(env["BUILD_WORKSPACE_DIRECTORY"]) / DEFAULT_DATA_DIR_NAME
    return Path(DEFAULT_DATA_DIR_NAME)


def parse_bool(text: str) -> bool:
    """Parse "1/true/yes/on" or "0/false/no/off/" (any case).

    Raises:
        argparse.ArgumentTypeError: any other text.
    """
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {text!r}")


def add_flag(
    parser: argparse.ArgumentParser | Any,
    *names: str,
    env: str,
    default: Any = None,
    help: str,
    **kwargs: Any,
) -> argparse.Action:
    """Add a flag whose default comes from environment variable `env`, then `default`.

    A string default (including one from the environment) is converted with the flag's
    `type` by argparse, so a bad environment value is a usage error (exit code 2).
    `action="store_true"` flags read the variable as a boolean.
    """
    raw = os.environ.get(env)
    if kwargs.get("action") == "store_true":
        if raw is not None:
            try:
                default = parse_bool(raw)
            except argparse.ArgumentTypeError as exc:
                parser.error(f"{env}: {exc}")
        default = bool(default)
    elif raw is not None:
        default = raw
    shown = "unset" if default is None else default
    return parser.add_argument(
        *names, default=default, help=f"{help} (env {env}; default: {shown})", **kwargs
    )


def add_common_flags(parser: argparse.ArgumentParser, *, registry: bool = True) -> None:
    """Add `--data-dir`, `--tracking-uri` and `--model-name` (if `registry`), `--log-level`
    and `--no-progress`."""
    add_flag(
        parser,
        "--data-dir",
        env=DATA_DIR_ENV,
        default=str(default_data_dir()),
        type=Path,
        help="Directory for processed data, checkpoints, reports and the embedded registry",
    )
    if registry:
        add_flag(
            parser,
            "--tracking-uri",
            env="MLFLOW_TRACKING_URI",
            default=None,
            help="MLflow tracking/registry URI; unset means the embedded SQLite store in --data-dir",
        )
        add_flag(
            parser,
            "--model-name",
            env="SLIPWAY_MODEL_NAME",
            default="digits-classifier",
            help="Registered model name",
        )
    add_flag(
        parser,
        "--log-level",
        env="SLIPWAY_LOG_LEVEL",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        type=str.upper,
        help="Logging level",
    )
    add_flag(
        parser,
        "--no-progress",
        env="SLIPWAY_NO_PROGRESS",
        action="store_true",
        help="Hide progress bars",
    )


def add_processed_flag(parser: argparse.ArgumentParser) -> None:
    """Add `--processed`: the processed-data version a job reads."""
    add_flag(
        parser,
        "--processed",
        env="SLIPWAY_PROCESSED_DIR",
        default=None,
        help="Processed version dir or root (default: <data-dir>/processed, its LATEST)",
    )


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """Return an `ArgumentParser` for a job, showing defaults in the help text."""
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def setup_logging(level: str = "INFO") -> None:
    """Log to stderr with timestamps; quiet the chattiest third-party loggers and warnings."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    third_party = logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING
    for name in ("mlflow", "alembic", "urllib3", "matplotlib", "PIL", "torch.distributed"):
        logging.getLogger(name).setLevel(third_party)
    if level.upper() != "DEBUG":
        # MLflow and pandas warn about things the jobs deliberately do (e.g. no signature).
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow(\..*)?")
        warnings.filterwarnings("ignore", category=DeprecationWarning)


def one_line(exc: BaseException) -> str:
    """Return the first non-empty line of an exception's message (or its type name)."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> NoReturn:
    """Run a job's `main(argv)` and exit with its code, mapping errors to one line on stderr.

    `SlipwayError`, `FileNotFoundError` and `PermissionError` are user-fixable: exit 1
    with `error: <reason>`. Any other exception is reported the same way with its type
    (the traceback is logged at DEBUG). Ctrl-C exits 130.
    """
    try:
        code = main(argv)
    except SlipwayError as exc:
        LOG.debug("failure", exc_info=True)
        _fail(one_line(exc))
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as exc:
        LOG.debug("failure", exc_info=True)
        what = exc.strerror or type(exc).__name__
        _fail(f"{what}: {exc.filename}" if exc.filename else one_line(exc))
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: still one line, traceback on request
        LOG.debug("unexpected failure", exc_info=True)
        _fail(
            f"unexpected {type(exc).__name__}: {one_line(exc)} "
            "(rerun with --log-level DEBUG for the traceback)"
        )
    sys.exit(code)


def _fail(reason: str) -> NoReturn:
    sys.stdout.flush()
    print(f"error: {reason}", file=sys.stderr, flush=True)
    sys.exit(1)
