"""MLflow's own tools on Slipway's models: pyfunc in a separate process, `mlflow models serve`.

Each trained version is an MLflow Model (slipway.pyfunc). Against the embedded
store and against a real `mlflow server` on 127.0.0.1, MLflow's client loads
the champion as a pyfunc in a process without Slipway on its path; its
predictions must equal the service's (real gunicorn, the direct fast path).
`mlflow models serve` answers an inference with the same labels.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import requests
from slipway.data import open_processed
from slipway.registry import Registry
from slipway.schema import FEATURE_COLUMNS

if TYPE_CHECKING:
    from conftest import Server

MODEL_NAME = "digits-classifier"
START_SECONDS = 120
RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[3]))
PYFUNC = RUNFILES / "_main/tests/service/mlflow_pyfunc"
MLFLOW_MODELS = RUNFILES / "_main/tools/mlflow/models"
CHAMPION = f"models:/{MODEL_NAME}@champion"


def split_pixels(processed: Path) -> tuple[np.ndarray, np.ndarray]:
    """A processed root's test split: `(N, 64)` float32 pixels and `(N,)` labels."""
    frame = open_processed(processed).read("test")
    return frame[list(FEATURE_COLUMNS)].to_numpy(np.float32), frame["label"].to_numpy()


def outside_env(**extra: str) -> dict[str, str]:
    """This environment without this test's Python path: the child finds only its own."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


def pyfunc_predict(tracking_uri: str, pixels: np.ndarray, tmp_path: Path) -> dict[str, Any]:
    """MLflow's client in its own process: load CHAMPION as a pyfunc, predict `pixels`."""
    np.save(tmp_path / "pixels.npy", pixels)
    done = subprocess.run(
        [str(PYFUNC), CHAMPION, str(tmp_path / "pixels.npy"), str(tmp_path / "out.json")],
        env=outside_env(MLFLOW_TRACKING_URI=tracking_uri),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((tmp_path / "out.json").read_text())  # type: ignore[no-any-return]


def service_predict(server: Server, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    client = server.client()
    client.wait_ready(START_SECONDS)
    result = client.infer(pixels)
    assert result.label is not None and result.probability is not None
    return result.label, result.probability, str(result.model_version)


def promote(registry: Registry) -> None:
    registry.set_alias(MODEL_NAME, "champion", "1")


@pytest.fixture
def embedded(trained_data_dir: Path, tmp_path: Path) -> Path:
    """A copy of the trained data dir whose version 1 is champion."""
    data_dir = tmp_path / "data"
    shutil.copytree(trained_data_dir, data_dir)
    promote(Registry.for_data_dir(data_dir))
    return data_dir


def test_the_champion_is_an_mlflow_model_with_signature_and_lineage(embedded: Path) -> None:
    registry = Registry.for_data_dir(embedded)
    info = registry.resolve(CHAMPION)
    local = registry.download_model(info, embedded / "download")
    mlmodel = (local / "MLmodel").read_text()
    assert (
        "python_function:" in mlmodel
        and "loader_module: mlflow.pyfunc.loaders.code_model" in mlmodel
    )
    assert '"shape": [-1, 64]' in mlmodel and '"name": "label"' in mlmodel
    assert '"name": "probability"' in mlmodel
    assert (local / "input_example.json").exists()
    requirements = (local / "requirements.txt").read_text()
    assert "torch==" in requirements and "numpy==" in requirements
    lineage = {k: v for k, v in info.tags.items() if k.startswith("slipway.lineage.")}
    assert set(lineage) >= {
        "slipway.lineage.git_commit",
        "slipway.lineage.git_dirty",
        "slipway.lineage.data_version",
        "slipway.lineage.data_manifest_sha256",
        "slipway.lineage.requirements_lock_sha256",
    }, info.tags


def test_pyfunc_on_the_embedded_store_predicts_as_the_service(
    embedded: Path, tmp_path: Path, start_server: Callable[..., Server]
) -> None:
    pixels, labels = split_pixels(embedded / "processed")
    out = pyfunc_predict(f"sqlite:///{embedded / 'mlflow.db'}", pixels, tmp_path)
    assert out["slipway_importable"] is False  # the model brought its own code
    server = start_server("--model-uri", CHAMPION, "--data-dir", str(embedded))
    label, probability, version = service_predict(server, pixels)
    assert version == "1"
    np.testing.assert_array_equal(np.asarray(out["label"]), label)
    np.testing.assert_allclose(np.asarray(out["probability"]), probability, rtol=0, atol=1e-6)
    assert (label == labels).mean() > 0.5  # chance is 0.1; 3 epochs of a small model


@pytest.mark.server
def test_pyfunc_and_mlflow_models_serve_on_a_tracking_server(
    mlflow_server: str,
    processed_root: Path,
    tmp_path: Path,
    start_server: Callable[..., Server],
) -> None:
    from slipway.models import ModelConfig
    from slipway.training import TrainConfig
    from slipway.workflows.train import train_and_register

    registry = Registry(mlflow_server)
    train_and_register(
        registry=registry,
        processed=processed_root,
        model_name=MODEL_NAME,
        model_config=ModelConfig(hidden=(64,), dropout=0.0),
        train_config=TrainConfig(epochs=3, batch_size=64, seed=0),
        checkpoint_path=tmp_path / "last.pt",
        progress=False,
    )
    promote(registry)
    pixels, _ = split_pixels(processed_root)
    out = pyfunc_predict(mlflow_server, pixels, tmp_path)
    server = start_server("--model-uri", CHAMPION, "--tracking-uri", mlflow_server)
    label, probability, _ = service_predict(server, pixels)
    np.testing.assert_array_equal(np.asarray(out["label"]), label)
    np.testing.assert_allclose(np.asarray(out["probability"]), probability, rtol=0, atol=1e-6)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    serve = subprocess.Popen(
        [
            str(MLFLOW_MODELS),
            "models",
            "serve",
            "-m",
            CHAMPION,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=outside_env(MLFLOW_TRACKING_URI=mlflow_server),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        answer = None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and serve.poll() is None:
            try:
                answer = requests.post(
                    f"http://127.0.0.1:{port}/invocations",
                    json={"inputs": pixels[:16].tolist()},
                    timeout=10,
                )
                break
            except requests.ConnectionError:
                time.sleep(1)
        assert answer is not None, serve.stderr.read() if serve.stderr else "no answer"
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert predictions["label"] == label[:16].tolist()
    finally:
        os.killpg(serve.pid, 15)
        serve.wait(timeout=30)
