"""Start-up and shutdown: the registry source, readiness while loading, a failed load, SIGTERM."""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import requests
from slipway.client import InferenceServiceError
from slipway.registry import embedded_tracking_uri

if TYPE_CHECKING:
    from conftest import MlflowServer, Server

MODEL_NAME = "digits-classifier"
START_SECONDS = 120


def test_serves_the_champion_from_the_registry(
    start_server: Callable[..., Server], registry_data_dir: Path
) -> None:
    server = start_server(
        "--model-uri", f"models:/{MODEL_NAME}@champion", "--data-dir", str(registry_data_dir)
    )
    client = server.client()
    client.wait_ready(START_SECONDS)
    assert client.model_metadata()["versions"] == ["1"]
    result = client.infer(np.zeros((2, 64), dtype=np.int64))
    assert result.model_version == "1"
    assert result.label is not None and result.label.shape == (2,)

    # The version served answers on its versioned paths; any other is a 404 naming it.
    # On the client's kept-alive connection: the worker that answered ready (each
    # worker loads the model itself; a new connection may reach one still loading).
    http = client.session
    versions = f"{server.url}/v2/models/{MODEL_NAME}/versions"
    assert http.get(f"{versions}/1").json()["versions"] == ["1"]
    assert http.get(f"{versions}/1/ready").json() == {
        "name": MODEL_NAME,
        "version": "1",
        "ready": True,
        "state": "ready",
    }
    body = {"inputs": [{"name": "pixels", "datatype": "INT64", "shape": [1, 64], "data": [0] * 64}]}
    answer = http.post(f"{versions}/1/infer", json=body)
    assert answer.status_code == 200 and answer.json()["model_version"] == "1"
    for response in (
        http.get(f"{versions}/2"),
        http.get(f"{versions}/2/ready"),
        http.post(f"{versions}/2/infer", json=body),
    ):
        assert response.status_code == 404
        assert response.json() == {
            "error": f"unknown version '2' of model '{MODEL_NAME}'; this server serves only version '1'"
        }


def test_a_flag_wins_over_the_environment(
    start_server: Callable[..., Server], registry_data_dir: Path, model_dir: Path
) -> None:
    # A model directory left in the environment (e.g. by an image) must not override
    # the registry model asked for on the command line.
    server = start_server(
        "--model-uri",
        f"models:/{MODEL_NAME}@champion",
        "--data-dir",
        str(registry_data_dir),
        env={"SLIPWAY_MODEL_DIR": str(model_dir), **foreign_settings(model_dir)},
    )
    client = server.client()
    client.wait_ready(START_SECONDS)
    assert client.model_metadata()["versions"] == ["1"]
    assert client.model_metadata()["name"] == MODEL_NAME
    # MAX_BODY_BYTES=10 in the environment is not Slipway's: a normal body is served.
    assert client.infer(np.zeros((4, 64), dtype=np.int64)).model_version == "1"


def foreign_settings(model_dir: Path) -> dict[str, str]:
    """Variables that look like settings but belong to someone else."""
    return {
        "MODEL_DIR": str(model_dir),
        "model_dir": str(model_dir),
        "MODEL_URI": "models:/someone-else@champion",
        "MODEL_NAME": "someone-else",
        "DATA_DIR": "/nonexistent",
        "MAX_BODY_BYTES": "10",
        "MAX_BATCH_SIZE": "0",
    }


def test_only_slipway_variables_configure_the_service(tmp_path: Path) -> None:
    from slipway.serving import ServiceConfig

    foreign = ServiceConfig.from_env(foreign_settings(tmp_path))
    assert foreign == ServiceConfig()
    config = ServiceConfig.from_env(
        {
            **foreign_settings(tmp_path),
            "SLIPWAY_MODEL_URI": "models:/m/3",
            "SLIPWAY_MAX_BODY_BYTES": "2048",
            "MLFLOW_TRACKING_URI": "http://127.0.0.1:5000",
        }
    )
    assert (config.model_dir, config.model_uri, config.max_body_bytes) == (
        None,
        "models:/m/3",
        2048,
    )
    assert config.tracking_uri == "http://127.0.0.1:5000"
    both = {"SLIPWAY_TRACKING_URI": "http://a:1", "MLFLOW_TRACKING_URI": "http://b:2"}
    assert ServiceConfig.from_env(both).tracking_uri == "http://a:1"
    with pytest.raises(ValueError, match="unknown service settings"):
        ServiceConfig.from_mapping({"MODEL_DIR": "x"})


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "127.0.0.1:8080"),
        ({"PORT": "9000"}, "127.0.0.1:8080"),
        ({"SLIPWAY_BIND": "127.0.0.1:9001", "PORT": "9000"}, "127.0.0.1:9001"),
        ({"SLIPWAY_HOST": "0.0.0.0"}, "0.0.0.0:8080"),  # noqa: S104 - the image's setting
        ({"SLIPWAY_HOST": "0.0.0.0", "PORT": "9000"}, "0.0.0.0:9000"),  # noqa: S104
    ],
    ids=["default", "host-port-ignored", "bind", "image", "image-port"],
)
def test_bind_address(
    environ: dict[str, str], expected: str, service_env: dict[str, str], tmp_path: Path
) -> None:
    # gunicorn.conf.py read as gunicorn reads it, in a process of its own (it edits os.environ).
    from service import main

    env = {**service_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), **environ}
    code = "import runpy, sys; print(runpy.run_path(sys.argv[1])['bind'])"
    out = subprocess.run(
        [sys.executable, "-c", code, main.CONFIG_PATH],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == expected
    # service/main.py passes --bind on only when it is given.
    assert "SLIPWAY_BIND" not in main.gunicorn_environ(main.parse_args([]), {})


@pytest.mark.parametrize(
    ("flags", "environ", "expected"),
    [
        (
            ["--model-uri", "models:/m@champion"],
            {"SLIPWAY_MODEL_DIR": "/models/a"},
            {"SLIPWAY_MODEL_URI": "models:/m@champion"},
        ),
        (
            ["--model-dir", "/models/b"],
            {"SLIPWAY_MODEL_URI": "models:/m@champion"},
            {"SLIPWAY_MODEL_DIR": "/models/b"},
        ),
        (
            ["--model-dir", "/models/b"],
            {"SLIPWAY_MODEL_DIR": "/models/a"},
            {"SLIPWAY_MODEL_DIR": "/models/b"},
        ),
        ([], {"SLIPWAY_MODEL_DIR": "/models/a"}, {"SLIPWAY_MODEL_DIR": "/models/a"}),
        ([], {"SLIPWAY_MODEL_URI": "models:/m/3"}, {"SLIPWAY_MODEL_URI": "models:/m/3"}),
        ([], {}, {}),
    ],
    ids=[
        "uri-flag-over-dir-env",
        "dir-flag-over-uri-env",
        "dir-flag-over-dir-env",
        "dir-env",
        "uri-env",
        "none",
    ],
)
def test_model_source_flags_and_environment(
    flags: list[str], environ: dict[str, str], expected: dict[str, str]
) -> None:
    from service import main

    env = main.gunicorn_environ(main.parse_args(flags), environ)
    source = {k: v for k, v in env.items() if k in ("SLIPWAY_MODEL_DIR", "SLIPWAY_MODEL_URI")}
    assert source == expected


@pytest.fixture
def mlflow_server_on(
    start_mlflow_server: Callable[..., MlflowServer], tmp_path: Path
) -> Iterator[Callable[[int, Path], None]]:
    """Start `mlflow server` on a given port over a given embedded registry's database."""
    started: list[MlflowServer] = []

    def start(port: int, data_dir: Path) -> None:
        started.append(start_mlflow_server(tmp_path, embedded_tracking_uri(data_dir), port=port))

    yield start
    for server in started:
        server.stop()


def test_live_but_not_ready_while_the_registry_is_down(
    start_server: Callable[..., Server],
    registry_data_dir: Path,
    mlflow_server_on: Callable[[int, Path], None],
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        registry_port = s.getsockname()[1]
    server = start_server(
        "--model-uri",
        f"models:/{MODEL_NAME}@champion",
        "--tracking-uri",
        f"http://127.0.0.1:{registry_port}",
        env={"SLIPWAY_LOAD_RETRY_SECONDS": "0.5", "SLIPWAY_INFER_WAIT_SECONDS": "0"},
    )
    server.wait_for_log("registry unreachable, retrying")
    client = server.client()
    for _ in range(4):  # new connections, so that both workers answer some
        assert requests.get(server.url + "/v2/health/live").status_code == 200
        assert requests.get(server.url + "/v2/health/ready").status_code == 503
        ready = requests.get(server.url + f"/v2/models/{MODEL_NAME}/ready")
        assert ready.status_code == 503 and ready.json()["state"] == "loading"
        # A version cannot be checked before the model is loaded: not ready, not a 404.
        versioned = requests.get(server.url + f"/v2/models/{MODEL_NAME}/versions/1/ready")
        assert versioned.status_code == 503 and versioned.json()["state"] == "loading"
        metadata = requests.get(server.url + f"/v2/models/{MODEL_NAME}/versions/1")
        assert metadata.status_code == 503 and "cannot be checked" in metadata.json()["error"]
        with pytest.raises(InferenceServiceError) as raised:
            client.infer(np.zeros((1, 64)))
        assert raised.value.status == 503 and "still loading" in raised.value.message

    mlflow_server_on(registry_port, registry_data_dir)
    server.wait_every_worker_ready()
    for _ in range(6):  # new connections: whichever worker answers serves version 1
        answer = requests.post(
            server.url + f"/v2/models/{MODEL_NAME}/infer",
            json={
                "inputs": [
                    {"name": "pixels", "datatype": "FP32", "shape": [1, 64], "data": [0] * 64}
                ]
            },
        )
        assert answer.status_code == 200 and answer.json()["model_version"] == "1"


def test_a_model_that_fails_to_load_leaves_the_server_live_not_ready(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    (tmp_path / "config.json").write_text("{}")  # no model.pt
    server = start_server("--model-dir", str(tmp_path))
    server.wait_for_log("model failed to load")
    assert "not a model directory" in server.log()
    client = server.client()
    deadline = time.monotonic() + START_SECONDS
    while len([line for line in server.log().splitlines() if "model failed to load" in line]) < 2:
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.1)
    for _ in range(4):
        assert client.live()
        assert not client.ready()
        assert (
            requests.get(server.url + f"/v2/models/{MODEL_NAME}/ready").json()["state"] == "failed"
        )
        with pytest.raises(InferenceServiceError) as raised:
            client.infer(np.zeros((1, 64)))
        assert raised.value.status == 503 and "failed to load" in raised.value.message
    assert "slipway_model_ready 0.0" in client.metrics()


def test_recycling_workers_fails_no_request_on_kept_alive_connections(
    start_server: Callable[..., Server], model_dir: Path
) -> None:
    # Workers recycled every ~40 requests (max_requests with jitter) under 8 clients
    # that, like wrk, send each POST on their kept-alive connection and never retry:
    # a worker that stops must end every connection with `Connection: close`, never
    # close one it has just answered as keep-alive.
    server = start_server(
        "--model-dir",
        str(model_dir),
        "--threads",
        "4",
        env={"SLIPWAY_MAX_REQUESTS": "40"},
    )
    server.client().wait_ready(START_SECONDS)
    body = json.dumps(
        {"inputs": [{"name": "pixels", "datatype": "INT64", "shape": [1, 64], "data": [0] * 64}]}
    )
    host, port = server.url.removeprefix("http://").split(":")
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def client() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        while not stop.is_set():
            try:
                conn.request(
                    "POST",
                    f"/v2/models/{MODEL_NAME}/infer",
                    body,
                    {"Content-Type": "application/json"},
                )
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    failures.append(f"HTTP {response.status}")
                answered[0] += 1
            except (OSError, http.client.HTTPException) as exc:
                failures.append(repr(exc))
                conn.close()  # the next request opens a new connection
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 60
    while server.log().count("Autorestarting worker") < 8 and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    recycled = server.log().count("Autorestarting worker")
    assert recycled >= 4, f"only {recycled} workers recycled in {answered[0]} requests"
    assert not failures, f"{len(failures)} of {answered[0]} requests failed: {failures[:5]}"


def test_sigterm_shuts_down_gracefully_and_cleans_up(
    start_server: Callable[..., Server], model_dir: Path, tmp_path: Path
) -> None:
    server = start_server("--model-dir", str(model_dir), env={"TMPDIR": str(tmp_path)})
    with server.client() as client:
        client.wait_ready(START_SECONDS)
    assert list(tmp_path.glob("slipway-metrics-*")), "the config makes its metrics dir under TMPDIR"
    start = time.monotonic()
    assert server.stop() == 0
    # Within graceful_timeout (10 s) and the master's own shutdown.
    assert time.monotonic() - start < 20
    assert "Handling signal: term" in server.log()
    assert not list(tmp_path.glob("slipway-metrics-*"))
