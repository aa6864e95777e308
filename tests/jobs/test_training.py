"""jobs/training: command line, registration, kill-and-resume, and two-process torchrun DDP."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).parents[2]
SMALL = ["--hidden", "64", "--epochs", "3", "--batch-size", "64", "--learning-rate", "0.01"]


@pytest.fixture
def data_dir(processed_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(processed_root, tmp_path / "data" / "processed")
    return tmp_path / "data"


def _registry(data_dir: Path):  # type: ignore[no-untyped-def]
    from slipway.registry import Registry

    return Registry.for_data_dir(data_dir)


def test_help(run_job) -> None:  # type: ignore[no-untyped-def]
    r = run_job("training", "--help")
    assert r.returncode == 0 and "--resume" in r.stdout and "SLIPWAY_EPOCHS" in r.stdout


def test_trains_logs_and_registers(run_job, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # Progress on: stderr is a pipe here, as in a CI log, so a few plain lines, no bar.
    r = run_job("training", "--data-dir", str(data_dir), *SMALL, env={"SLIPWAY_NO_PROGRESS": "0"})
    assert r.returncode == 0, r.stderr
    assert "registered digits-classifier version 1 as challenger" in r.stdout
    progress = [line for line in r.stderr.splitlines() if "slipway.progress: train: " in line]
    assert 1 <= len(progress) <= 15 and "\r" not in r.stderr, r.stderr
    assert progress[-1].split("slipway.progress: ")[1].startswith("train: 3/3 epoch (100%)")
    reg = _registry(data_dir)
    info = reg.get_version("digits-classifier", alias="challenger")
    run = reg.client.get_run(info.run_id or "")
    assert run.info.status == "FINISHED"
    assert run.data.params["model.hidden"] == "[64]" and run.data.params["train.epochs"] == "3"
    assert run.data.metrics["val_accuracy"] > 0.8
    history = reg.client.get_metric_history(info.run_id or "", "train_loss")
    assert sorted(m.step for m in history) == [1, 2, 3]
    module, meta = __import__("slipway.registry").registry.load_model(
        "models:/digits-classifier@challenger", data_dir=data_dir
    )
    assert module(torch.zeros(2, 64)).shape == (2, 10) and meta["data_version"].startswith("v1-")


def test_bad_input(call_job, tmp_path: Path, data_dir: Path, unreachable_uri: str) -> None:  # type: ignore[no-untyped-def]
    r = call_job("training", "--data-dir", str(tmp_path / "nothing"), *SMALL)
    assert r.returncode == 1 and r.stderr.strip().splitlines()[-1].startswith(
        "error: no processed data"
    )
    r = call_job("training", "--data-dir", str(data_dir), "--tracking-uri", unreachable_uri, *SMALL)
    assert r.returncode == 1 and "error: cannot reach the MLflow tracking server" in r.stderr
    assert r.stderr.count("error:") == 1
    assert call_job("training", "--epochs", "0").returncode == 2
    assert call_job("training", "--hidden", "a,b").returncode == 2
    assert call_job("training", env={"SLIPWAY_EPOCHS": "lots"}).returncode == 2


def _wait_for_checkpoint(proc: subprocess.Popen[bytes], ckpt: Path, seconds: float) -> None:
    """Wait until the training process has written its first checkpoint (it must still run)."""
    deadline = time.monotonic() + seconds
    while not ckpt.exists():
        assert proc.poll() is None, "training exited before writing a checkpoint"
        assert time.monotonic() < deadline, f"no checkpoint within {seconds:g}s"
        time.sleep(0.02)


def test_killed_run_resumes_from_checkpoint(job_env, data_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from slipway.training import load_checkpoint

    # Small batches make each epoch long enough to be killed part-way.
    epochs = 15
    ckpt = data_dir / "checkpoints" / "digits-classifier" / "last.pt"
    cmd = [
        sys.executable,
        str(REPO / "jobs" / "training" / "main.py"),
        "--data-dir",
        str(data_dir),
        "--hidden",
        "64",
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--checkpoint-seconds",
        "0",
    ]
    proc = subprocess.Popen(cmd, env=job_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_checkpoint(proc, ckpt, 120)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed = load_checkpoint(ckpt)
    epoch, run_id = killed["epoch"], killed["extra"]["run_id"]
    assert 1 <= epoch < epochs

    r = subprocess.run([*cmd, "--resume"], env=job_env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"resuming from checkpoint at epoch {epoch}" in r.stderr
    assert f"(resumed from epoch {epoch})" in r.stdout
    assert load_checkpoint(ckpt)["epoch"] == epochs
    info = _registry(data_dir).get_version("digits-classifier", alias="challenger")
    assert info.run_id == run_id  # the killed MLflow run was continued, not replaced


def _torchrun(data_dir: Path, *args: str) -> list[str]:
    """The training job under torchrun with two ranks on this machine."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(REPO / "jobs" / "training" / "main.py"),
        "--data-dir",
        str(data_dir),
        *args,
    ]


# Small batches: epochs long enough to be killed part-way; a checkpoint every epoch.
KILLABLE = [
    "--hidden",
    "64",
    "--epochs",
    "8",
    "--batch-size",
    "8",
    "--checkpoint-seconds",
    "0",
    "--collective-timeout",
    "60",
]


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants, children first (a node dying at once)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += children.get(current, [])
    for member in reversed(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


def _rank_digests(stdout: str) -> dict[str, str]:
    return dict(re.findall(r"rank (\d) of 2: weights sha256 ([0-9a-f]{64})", stdout))


def _challenger_run_id(data_dir: Path) -> str:
    return _registry(data_dir).get_version("digits-classifier", alias="challenger").run_id or ""


def _epoch_metrics(data_dir: Path) -> dict[str, list[tuple[int, float]]]:
    reg = _registry(data_dir)
    run_id = _challenger_run_id(data_dir)
    return {
        key: sorted((m.step, m.value) for m in reg.client.get_metric_history(run_id, key))
        for key in ("train_loss", "val_accuracy")
    }


def test_two_process_torchrun_killed_and_resumed(  # type: ignore[no-untyped-def]
    job_env, processed_root: Path, tmp_path: Path
) -> None:
    """Two ranks under torchrun, run through, then killed part-way and resumed.

    The uninterrupted run also stands for a plain two-process run: rank 0 alone
    registers the model, and the MLflow run records the world size.
    """
    from slipway.training import load_checkpoint

    dirs = {}
    for name in ("full", "killed"):
        dirs[name] = tmp_path / name
        shutil.copytree(processed_root, dirs[name] / "processed")
    full = subprocess.run(
        _torchrun(dirs["full"], *KILLABLE), env=job_env, capture_output=True, text=True, timeout=600
    )
    assert full.returncode == 0, full.stderr[-3000:]
    # Rank 0 alone registers and logs; the run records both ranks.
    assert full.stdout.count("registered digits-classifier version 1 as challenger") == 1
    run = _registry(dirs["full"]).client.get_run(_challenger_run_id(dirs["full"]))
    assert run.data.params["world_size"] == "2"
    assert run.data.metrics["val_accuracy"] > 0.8
    expected = _rank_digests(full.stdout)
    assert set(expected) == {"0", "1"} and len(set(expected.values())) == 1, full.stdout

    ckpt = dirs["killed"] / "checkpoints" / "digits-classifier" / "last.pt"
    proc = subprocess.Popen(
        _torchrun(dirs["killed"], *KILLABLE),
        env=job_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_for_checkpoint(proc, ckpt, 300)
        _kill_tree(proc.pid)  # torchrun and both ranks (each in a session of its own)
    finally:
        proc.wait()
    epoch = load_checkpoint(ckpt)["epoch"]
    assert 1 <= epoch < 8

    resumed = subprocess.run(
        _torchrun(dirs["killed"], *KILLABLE, "--resume"),
        env=job_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"(resumed from epoch {epoch})" in resumed.stdout
    # Every rank continued from the same state: the same weights as the uninterrupted run.
    assert _rank_digests(resumed.stdout) == expected, resumed.stdout
    assert _epoch_metrics(dirs["killed"]) == _epoch_metrics(dirs["full"])
