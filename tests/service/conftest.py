"""Fixtures of the service tests: model directories, a registry, real gunicorn servers.

Servers run `service/main.py`, the production entry point and gunicorn configuration,
with 2 workers on 127.0.0.1 and a free port.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from slipway.client import InferenceClient

# Not resolved: under Bazel the tree is a runfiles symlink farm.
SERVICE_MAIN = Path(__file__).parent.parent.parent / "service" / "main.py"
MODEL_NAME = "digits-classifier"
START_SECONDS = 120


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running `service/main.py` (gunicorn master) and where it logs."""

    proc: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def client(self, model_name: str = MODEL_NAME) -> InferenceClient:
        return InferenceClient(self.url, model_name=model_name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = START_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged; log:\n{self.log()}")
            time.sleep(0.1)

    def wait_every_worker_ready(self, timeout: float = START_SECONDS) -> None:
        """Wait until every worker has loaded the model, not only the one that answers.

        `/v2/health/ready` comes from whichever worker takes the connection; the
        `slipway_model_ready` gauge is the minimum over the live workers
        (prometheus_client's livemin), so a new connection cannot reach one still loading.
        """
        self.client().wait_ready(timeout)
        deadline = time.monotonic() + timeout
        while "slipway_model_ready 1.0" not in requests.get(f"{self.url}/metrics").text:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"not every worker ready after {timeout:.0f}s; log:\n{self.log()}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 40) -> int:
        """SIGTERM (gunicorn's graceful shutdown); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="session")
def service_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Inherited environment minus Slipway/MLflow/Prometheus settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLIPWAY_", "MLFLOW_TRACKING_URI", "PROMETHEUS_MULTIPROC_DIR", "PORT"))
    }
    env["PYTHONUNBUFFERED"] = "1"
    env["SLIPWAY_WORKERS"] = "2"
    env["SLIPWAY_THREADS"] = "2"
    return env


@pytest.fixture(scope="session")
def start_server(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., Server]]:
    """Start `service/main.py ARGS` with extra env; every server is stopped at the end."""
    started: list[Server] = []

    def start(*args: str, env: dict[str, str] | None = None, port: int | None = None) -> Server:
        port = port or free_port()
        log_path = tmp_path_factory.mktemp("server") / "server.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [sys.executable, str(SERVICE_MAIN), "--bind", f"127.0.0.1:{port}", *args],
                env={**service_env, **(env or {})},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        server = Server(proc=proc, url=f"http://127.0.0.1:{port}", log_path=log_path)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained classifier (default config, seed 0) saved as a model directory."""
    import torch
    from slipway.models import ModelConfig, build_model, save_model_dir

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "model"
    save_model_dir(build_model(ModelConfig()), ModelConfig(), path, metadata={"note": "untrained"})
    return path


@pytest.fixture(scope="session")
def registry_data_dir(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A data dir whose embedded registry has `digits-classifier` version 1 as champion."""
    from slipway.registry import Registry

    data_dir = tmp_path_factory.mktemp("registry")
    registry = Registry.for_data_dir(data_dir)
    run_id = registry.start_run(run_name="service-test")
    registry.log_artifacts(run_id, model_dir, "model")
    registry.end_run(run_id)
    info = registry.register_model(MODEL_NAME, run_id)
    registry.set_alias(MODEL_NAME, "champion", info.version)
    return data_dir


@pytest.fixture(scope="session")
def server(start_server: Callable[..., Server], model_dir: Path) -> Server:
    """A ready service with 2 workers serving `model_dir` (both loaded)."""
    srv = start_server("--model-dir", str(model_dir))
    srv.wait_every_worker_ready()
    return srv
