"""slipway.training: seeding, exact resume, checkpoints, sharded epochs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from slipway import training
from slipway.data import split
from slipway.errors import CheckpointError
from slipway.models import ModelConfig

CFG = ModelConfig(hidden=(32,), dropout=0.2)  # dropout on, so the RNG handling is exercised


@pytest.fixture(scope="module")
def xy(digits_frame: pd.DataFrame):  # type: ignore[no-untyped-def]
    s = split(digits_frame, seed=0)
    return training.to_tensors(s.train), training.to_tensors(s.val)


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seed_same_weights_and_learns(xy) -> None:  # type: ignore[no-untyped-def]
    tc = training.TrainConfig(epochs=3, batch_size=64, learning_rate=1e-2, seed=5)
    a = training.train(CFG, *xy, tc, progress=False)
    b = training.train(CFG, *xy, tc, progress=False)
    assert _states_equal(a.model, b.model)
    assert a.history[-1].train_loss == b.history[-1].train_loss
    assert a.final.val_accuracy > 0.8
    assert a.history[0].train_loss > a.final.train_loss
    c = training.train(
        CFG,
        *xy,
        training.TrainConfig(epochs=3, batch_size=64, learning_rate=1e-2, seed=6),
        progress=False,
    )
    assert not _states_equal(a.model, c.model)


def test_resume_matches_uninterrupted_run(xy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    full = training.train(CFG, *xy, training.TrainConfig(epochs=4, batch_size=64), progress=False)
    ckpt = tmp_path / "last.pt"
    first = training.train(
        CFG,
        *xy,
        training.TrainConfig(epochs=2, batch_size=64),
        checkpoint_path=ckpt,
        extra={"run_id": "r1"},
        progress=False,
    )
    assert first.resumed_from_epoch is None and training.load_checkpoint(ckpt)["epoch"] == 2
    extra: dict[str, str] = {}
    resumed = training.train(
        CFG,
        *xy,
        training.TrainConfig(epochs=4, batch_size=64),
        checkpoint_path=ckpt,
        resume=True,
        extra=extra,
        progress=False,
    )
    assert resumed.resumed_from_epoch == 2 and extra == {"run_id": "r1"}
    assert [r.epoch for r in resumed.history] == [1, 2, 3, 4]
    assert _states_equal(full.model, resumed.model)


def test_resume_without_checkpoint_starts_fresh(xy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = training.train(
        CFG,
        *xy,
        training.TrainConfig(epochs=1),
        checkpoint_path=tmp_path / "c.pt",
        resume=True,
        progress=False,
    )
    assert r.resumed_from_epoch is None and (tmp_path / "c.pt").exists()


def test_resume_rejects_other_config_and_corrupt_files(xy, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ckpt = tmp_path / "last.pt"
    training.train(CFG, *xy, training.TrainConfig(epochs=1), checkpoint_path=ckpt, progress=False)
    with pytest.raises(CheckpointError, match="train config"):
        training.train(
            CFG,
            *xy,
            training.TrainConfig(epochs=2, learning_rate=0.5),
            checkpoint_path=ckpt,
            resume=True,
            progress=False,
        )
    with pytest.raises(CheckpointError, match="model config"):
        training.train(
            ModelConfig(hidden=(8,)),
            *xy,
            training.TrainConfig(epochs=2),
            checkpoint_path=ckpt,
            resume=True,
            progress=False,
        )
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        training.load_checkpoint(ckpt)


def test_epoch_indices_shard_like_distributed_sampler() -> None:
    full = training.epoch_indices(10, seed=1, epoch=3)
    assert sorted(full.tolist()) == list(range(10))
    parts = [training.epoch_indices(10, seed=1, epoch=3, rank=r, world_size=3) for r in range(3)]
    assert all(len(p) == 4 for p in parts)  # padded to 12
    assert set(np.concatenate(parts).tolist()) == set(range(10))
    assert not np.array_equal(full, training.epoch_indices(10, seed=1, epoch=4))


def test_config_validation_and_dist_context() -> None:
    with pytest.raises(ValueError):
        training.TrainConfig(epochs=0)
    ctx = training.DistContext.from_env({"RANK": "1", "WORLD_SIZE": "2"})
    assert ctx.distributed and not ctx.is_main and ctx.local_world_size == 2
    assert training.DistContext.from_env({}).is_main


def test_threads_follow_omp_num_threads_else_the_cpus_it_may_run_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    before, cpus = torch.get_num_threads(), os.sched_getaffinity(0)
    try:
        torch.set_num_threads(3)
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        training.init_distributed(training.DistContext())
        assert torch.get_num_threads() == 3  # the user's setting stands
        monkeypatch.delenv("OMP_NUM_THREADS")
        os.sched_setaffinity(0, {min(cpus)})  # as under `taskset -c` or a cpuset
        training.init_distributed(training.DistContext())
        assert torch.get_num_threads() == 1  # not os.cpu_count()
    finally:
        os.sched_setaffinity(0, cpus)
        torch.set_num_threads(before)


def test_to_tensors(digits_frame: pd.DataFrame) -> None:
    xt, yt = training.to_tensors(digits_frame.head(4))
    assert xt.dtype == torch.float32 and tuple(xt.shape) == (4, 64)
    assert yt.dtype == torch.int64 and yt.tolist() == digits_frame["label"].head(4).tolist()


STUCK_RANKS = """
import os, sys, time
import torch, torch.distributed as dist
from slipway import training

# Both ranks join at once: the 3 s timeout also bounds the rendezvous, and on
# a loaded machine one rank's imports can lag the other's by more than that.
print("imported", flush=True)
sys.stdin.readline()
ctx = training.DistContext.from_env(timeout_seconds=3)
training.init_distributed(ctx)
if ctx.rank == 1:
    time.sleep(60)  # never joins the all-reduce
    sys.exit(0)
try:
    with ctx.collective("the test's all-reduce"):
        dist.all_reduce(torch.ones(1))
except Exception as exc:
    print(type(exc).__name__, exc, flush=True)
    # Not sys.exit: gloo's threads, still waiting on the timed-out receive, can
    # abort the interpreter's teardown ("terminate called"), a race at exit.
    os._exit(3)
"""


def test_a_stuck_collective_fails_in_bounded_time_naming_rank_and_wait(tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
    }
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", STUCK_RANKS],
            env={**env, "RANK": str(rank)},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    for rank in ranks:
        assert rank.stdout is not None
        lines = []
        while (line := rank.stdout.readline()) not in ("imported\n", ""):
            lines.append(line)
        assert line, "".join(lines)  # ended before "imported": it crashed
    for rank in ranks:
        assert rank.stdin is not None
        rank.stdin.write("go\n")
        rank.stdin.flush()
    try:
        out, _ = ranks[0].communicate(timeout=50)
        # Rank 0 gave up while rank 1 was still stuck: bounded by the timeout, not by rank 1.
        assert ranks[1].poll() is None
    finally:
        ranks[1].kill()
        ranks[1].wait()
    assert ranks[0].returncode == 3, out
    assert "DistributedError" in out and "rank 0 of 2" in out, out
    assert "gave up after 3 s waiting for the test's all-reduce" in out, out
