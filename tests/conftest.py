"""Fixtures shared by every Slipway test.

The processed digits, a data dir with a trained model in the embedded registry, a real
`mlflow server` on 127.0.0.1, and a runner for the job entry points.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# Not resolved: under Bazel the tree is a runfiles symlink farm.
REPO = Path(__file__).parent.parent
SERVER_START_SECONDS = 90
# MLflow's command line from the full package (//tools/mlflow): tests that start a
# tracking server list it in their `data`.
MLFLOW = REPO / "tools" / "mlflow" / "mlflow"


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root (the folder holding lib/, jobs/, tests/)."""
    return REPO


@pytest.fixture(scope="session")
def job_env() -> dict[str, str]:
    """Environment for job subprocesses: inherited, minus Slipway/MLflow settings, no bars."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLIPWAY_", "MLFLOW_TRACKING_URI", "BUILD_WORKSPACE_DIRECTORY"))
    }
    env["SLIPWAY_NO_PROGRESS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def run_job(job_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run `jobs/<job>/main.py` with arguments; returns the completed process (text)."""

    def run(
        job: str,
        *args: str,
        env: dict[str, str] | None = None,
        timeout: float = 300,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(REPO / "jobs" / job / "main.py"), *args],
            env={**job_env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )

    return run


@pytest.fixture(scope="session")
def call_job(job_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Like `run_job`, but in this process: `cli.run(main, args)` with job_env (plus `env`).

    For the many bad-input cases of one job: each would pay a new interpreter's
    ~10 s of torch and MLflow imports in a subprocess. The exit code is the
    SystemExit code that `cli.run` raises; stdout and stderr are captured.
    """
    import importlib.util
    import io
    from unittest import mock

    from slipway import cli

    mains: dict[str, Callable[..., int]] = {}

    def call(
        job: str, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        if job not in mains:
            spec = importlib.util.spec_from_file_location(
                f"slipway_job_{job}", REPO / "jobs" / job / "main.py"
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            mains[job] = module.main
        out, err = io.StringIO(), io.StringIO()
        with (
            mock.patch.dict(os.environ, {**job_env, **(env or {})}, clear=True),
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            try:
                cli.run(mains[job], list(args))
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
        return subprocess.CompletedProcess([job, *args], code, out.getvalue(), err.getvalue())

    return call


@pytest.fixture(scope="session")
def digits_frame():  # type: ignore[no-untyped-def]
    """The validated digits table (1,797 rows)."""
    from slipway import data

    return data.validate(data.load_digits_frame())


@pytest.fixture(scope="session")
def processed_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A processed-data root holding the digits split with seed 0 (read-only for tests)."""
    from slipway import data

    root = tmp_path_factory.mktemp("processed")
    data.process("digits", root, seed=0)
    return root


@pytest.fixture(scope="session")
def trained_data_dir(tmp_path_factory: pytest.TempPathFactory, processed_root: Path) -> Path:
    """A data dir with processed digits and an embedded registry holding one small model.

    Version 1 of `digits-classifier` (3 epochs, one hidden layer of 64) is `challenger`.
    Copy it (see `data_dir_copy`) before changing aliases.
    """
    from slipway.models import ModelConfig
    from slipway.registry import Registry
    from slipway.training import TrainConfig
    from slipway.workflows.train import train_and_register

    data_dir = tmp_path_factory.mktemp("trained")
    shutil.copytree(processed_root, data_dir / "processed")
    train_and_register(
        registry=Registry.for_data_dir(data_dir),
        processed=data_dir / "processed",
        model_name="digits-classifier",
        model_config=ModelConfig(hidden=(64,), dropout=0.0),
        train_config=TrainConfig(epochs=3, batch_size=64, seed=0),
        checkpoint_path=data_dir / "checkpoints" / "last.pt",
        progress=False,
    )
    return data_dir


@pytest.fixture
def data_dir_copy(trained_data_dir: Path, tmp_path: Path) -> Path:
    """A private copy of `trained_data_dir` (artifacts still read from the original)."""
    dest = tmp_path / "data"
    shutil.copytree(trained_data_dir, dest)
    return dest


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def unreachable_uri() -> str:
    """An http URI on 127.0.0.1 where nothing listens."""
    return f"http://127.0.0.1:{free_port()}"


@dataclass
class MlflowServer:
    """A running `mlflow server` on 127.0.0.1: its process (own session), URI and log."""

    proc: subprocess.Popen[bytes]
    uri: str
    log_path: Path

    def wait_healthy(self, timeout: float = SERVER_START_SECONDS) -> None:
        """Return once `/health` answers 200; RuntimeError if it exits or times out."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"mlflow server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"mlflow server did not start in {timeout}s; see {self.log_path}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        """SIGTERM to the whole session (the server runs uvicorn in child processes)."""
        if self.proc.returncode is not None:
            return
        _signal_group(self.proc, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="session")
def start_mlflow_server() -> Iterator[Callable[..., MlflowServer]]:
    """Start `mlflow server` on 127.0.0.1; every server started is stopped at the end.

    The one command line of the tests' tracking servers. The returned function takes
    `root` (working directory, holds `mlflow.log`), `backend_store_uri` (e.g. the
    embedded registry's SQLite URI), and optionally `port` (default: a free one) and
    `artifacts_destination` (default: none, artifacts stay where the store says). It
    does not wait: call `wait_healthy()` on the result, or let a client retry.
    """
    started: list[MlflowServer] = []

    def start(
        root: Path,
        backend_store_uri: str,
        port: int | None = None,
        artifacts_destination: Path | None = None,
    ) -> MlflowServer:
        port = port or free_port()
        log_path = root / "mlflow.log"
        artifacts = (
            ["--artifacts-destination", str(artifacts_destination)] if artifacts_destination else []
        )
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    str(MLFLOW),
                    "server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--backend-store-uri",
                    backend_store_uri,
                    *artifacts,
                    "--workers",
                    "1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                # MLflow 3's server otherwise also starts a job runner for its GenAI
                # features (eight more processes, ~25 s of CPU per server, and a
                # folder in /dev/shm left behind); the registry needs none of it.
                env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
                start_new_session=True,
            )
        server = MlflowServer(proc=proc, uri=f"http://127.0.0.1:{port}", log_path=log_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def mlflow_server(
    tmp_path_factory: pytest.TempPathFactory, start_mlflow_server: Callable[..., MlflowServer]
) -> str:
    """A real `mlflow server` on 127.0.0.1 (SQLite backend, proxied artifacts) for the session.

    Returns its http URI once `/health` answers.
    """
    root = tmp_path_factory.mktemp("mlflow-server")
    server = start_mlflow_server(
        root, f"sqlite:///{root / 'mlflow.db'}", artifacts_destination=root / "artifacts"
    )
    server.wait_healthy()
    return server.uri


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
