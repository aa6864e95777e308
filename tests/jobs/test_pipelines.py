"""jobs/pipelines: the whole pipeline end to end, determinism, failure and resume-from-step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

FAST = ["--epochs", "4", "--log-level", "INFO"]


def test_help(run_job) -> None:  # type: ignore[no-untyped-def]
    r = run_job("pipelines", "--help")
    assert r.returncode == 0 and "--from-step" in r.stdout and "SLIPWAY_DATA_DIR" in r.stdout


def test_end_to_end_is_deterministic(run_job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    a = run_job("pipelines", "--data-dir", str(tmp_path / "a"), *FAST)
    assert a.returncode == 0, a.stderr[-3000:]
    lines = a.stdout.strip().splitlines()
    assert lines[0] == "champion: digits-classifier version 1 (models:/digits-classifier@champion)"
    assert lines[1].startswith("test accuracy: ") and "test samples:  269" in a.stdout
    for step in ("processing", "training", "evaluation", "inference"):
        assert f"step {step} done" in a.stderr
    assert (tmp_path / "a" / "predictions" / "test.predictions.parquet").exists()
    report = json.loads((tmp_path / "a" / "reports" / "evaluation" / "report.json").read_text())
    assert f"{report['champion']['test']['accuracy']:.4f}" in lines[1]

    again = run_job("pipelines", "--data-dir", str(tmp_path / "a"), *FAST)  # same seed, same dir
    assert again.returncode == 0 and again.stdout == a.stdout
    assert "does not beat the champion" in again.stderr  # version 2 ties version 1 ...
    report2 = json.loads((tmp_path / "a" / "reports" / "evaluation" / "report.json").read_text())
    assert report2["model"]["version"] == "2"
    assert report2["candidate"] == report["candidate"]  # ... because training is deterministic

    only = run_job("pipelines", "--data-dir", str(tmp_path / "a"), "--from-step", "inference")
    assert only.returncode == 0 and "step training" not in only.stderr and only.stdout == a.stdout


def test_bazel_run_puts_data_under_the_workspace(run_job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_job(
        "pipelines",
        "--from-step",
        "evaluation",
        cwd=tmp_path,
        env={"BUILD_WORKSPACE_DIRECTORY": str(tmp_path / "ws")},
    )
    assert r.returncode == 1
    assert f"no processed data at {tmp_path / 'ws' / 'slipway-data' / 'processed'}" in r.stderr


def test_stops_at_first_failed_step(run_job, tmp_path: Path, unreachable_uri: str) -> None:  # type: ignore[no-untyped-def]
    r = run_job("pipelines", "--data-dir", str(tmp_path), "--input", str(tmp_path / "missing.csv"))
    assert r.returncode == 1
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: step 'processing' failed: input file not found")
    assert "step training" not in r.stderr and not (tmp_path / "mlflow.db").exists()

    r = run_job("pipelines", "--data-dir", str(tmp_path), "--tracking-uri", unreachable_uri, *FAST)
    assert r.returncode == 1
    assert "error: step 'training' failed: cannot reach the MLflow tracking server" in r.stderr

    r = run_job("pipelines", "--data-dir", str(tmp_path / "empty"), "--from-step", "evaluation")
    assert r.returncode == 1 and "error: step 'evaluation' failed: no processed data" in r.stderr
    assert run_job("pipelines", "--from-step", "deploy").returncode == 2


@pytest.mark.server
def test_against_a_real_tracking_server(run_job, tmp_path: Path, mlflow_server: str) -> None:  # type: ignore[no-untyped-def]
    r = run_job(
        "pipelines",
        "--data-dir",
        str(tmp_path),
        "--epochs",
        "2",
        env={"MLFLOW_TRACKING_URI": mlflow_server, "SLIPWAY_MODEL_NAME": "digits-on-server"},
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "champion: digits-on-server version 1" in r.stdout
    assert not (tmp_path / "mlflow.db").exists()  # nothing embedded: all in the server

    from slipway.registry import Registry

    info = Registry(mlflow_server).resolve("models:/digits-on-server@champion")
    assert info.version == "1" and info.source.startswith("mlflow-artifacts:")
