"""The training loop: seeded, checkpointed, resumable, and data-parallel under torchrun.

Determinism: the model is initialised after `torch.manual_seed(seed)`; each epoch's
shuffle and dropout draw from generators re-seeded from `(seed, epoch, rank)`. A run
resumed from a checkpoint therefore ends with exactly the weights of an uninterrupted
run with the same seed, and two runs with the same seed on the same machine agree.

Distributed: under `torchrun` (`RANK`/`WORLD_SIZE` set) the model is wrapped in
`DistributedDataParallel` with the gloo backend (CPU). Each rank takes every
`world_size`-th index of the epoch's permutation, padded like
`torch.utils.data.DistributedSampler`; `batch_size` is per process. Only rank 0
reads and writes checkpoints and calls `on_epoch_end`; on resume it broadcasts the
checkpoint, so every rank continues at the same epoch with the same model and
optimizer state (and no shared file system is needed). Every collective is bounded
by `DistContext.timeout_seconds`; when one does not complete, the error names the
rank and the collective it was waiting for.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from slipway import preprocessing
from slipway.errors import CheckpointError, DistributedError
from slipway.io import atomic_path
from slipway.models import ModelConfig, build_model
from slipway.progress import progress_bar

if TYPE_CHECKING:
    import pandas as pd

LOG = logging.getLogger(__name__)
CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (Adam, constant learning rate, cross-entropy loss).

    Attributes:
        epochs: total passes over the training split, >= 1.
        batch_size: rows per optimiser step and process, >= 1.
        learning_rate: Adam step size.
        weight_decay: L2 penalty (Adam's `weight_decay`).
        seed: seeds initialisation, shuffling and dropout.
        checkpoint_seconds: minimum wall time between checkpoints; 0 writes one every
            epoch. The last epoch is always checkpointed.
    """

    epochs: int = 60
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    checkpoint_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if self.checkpoint_seconds < 0:
            raise ValueError(f"checkpoint_seconds must be >= 0, got {self.checkpoint_seconds}")

    def resume_key(self) -> dict[str, Any]:
        """Settings that must match for a checkpoint to be resumed (all but epochs, cadence)."""
        out = asdict(self)
        out.pop("epochs")
        out.pop("checkpoint_seconds")
        return out


DEFAULT_COLLECTIVE_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class DistContext:
    """Process-group coordinates; `world_size == 1` outside torchrun.

    `timeout_seconds` bounds every collective (gloo's own default is 30 minutes).
    """

    rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    timeout_seconds: float = DEFAULT_COLLECTIVE_TIMEOUT_SECONDS

    @property
    def is_main(self) -> bool:
        """True on rank 0, the process that logs, checkpoints and registers."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @classmethod
    def from_env(
        cls,
        environ: dict[str, str] | None = None,
        timeout_seconds: float = DEFAULT_COLLECTIVE_TIMEOUT_SECONDS,
    ) -> DistContext:
        """Read `RANK`, `WORLD_SIZE`, `LOCAL_WORLD_SIZE` as set by torchrun (defaults 0, 1, 1)."""
        env = os.environ if environ is None else environ
        world = int(env.get("WORLD_SIZE", "1"))
        return cls(
            rank=int(env.get("RANK", "0")),
            world_size=world,
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", str(world))),
            timeout_seconds=timeout_seconds,
        )

    @contextmanager
    def collective(self, what: str) -> Iterator[None]:
        """Run collectives; a failure or timeout becomes a `DistributedError` naming them.

        Raises:
            DistributedError: e.g. "rank 1 of 2: gave up after 300 s waiting for the
                all-reduce of epoch 3's loss: ...".
        """
        try:
            yield
        except (RuntimeError, dist.DistBackendError) as exc:
            if not self.distributed:
                raise
            raise DistributedError(
                f"rank {self.rank} of {self.world_size}: gave up after {self.timeout_seconds:g} s"
                f" waiting for {what} (another rank died or is stuck):"
                f" {str(exc).splitlines()[0]}"
            ) from exc


def init_distributed(ctx: DistContext) -> None:
    """Join the gloo process group (if distributed) and share the CPU cores between ranks.

    Intra-op threads: `OMP_NUM_THREADS` when it is set (torch reads it at start-up;
    torchrun sets it to 1 when it starts several ranks), else the CPUs this process
    may run on (its affinity: taskset, a container's cpuset) divided by the ranks
    on this node. Collectives time out after `ctx.timeout_seconds`.
    """
    if not os.environ.get("OMP_NUM_THREADS"):
        cores = len(os.sched_getaffinity(0))
        torch.set_num_threads(max(1, cores // max(1, ctx.local_world_size)))
    if ctx.distributed and not dist.is_initialized():
        with ctx.collective("the other ranks to join the process group"):
            dist.init_process_group(backend="gloo", timeout=timedelta(seconds=ctx.timeout_seconds))


def shutdown_distributed() -> None:
    """Leave the process group, if joined."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def set_determinism() -> None:
    """Ask torch for deterministic kernels (cheap on CPU) and a fixed intra-op setup."""
    torch.use_deterministic_algorithms(True)


def derive_seed(*parts: int) -> int:
    """Return a 63-bit seed mixed from integers with SHA-256 (stable across processes)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def epoch_indices(
    n: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1
) -> np.ndarray:
    """Return this rank's `(ceil(n / world_size),)` int64 row order for one epoch.

    The permutation depends only on `(seed, epoch)`; it is padded by wrapping around
    to a multiple of `world_size` and strided by rank, as `DistributedSampler` does.
    """
    if n <= 0:
        raise ValueError("cannot draw indices from an empty data set")
    perm = np.random.default_rng(derive_seed(seed, epoch)).permutation(n)
    per_rank = math.ceil(n / world_size)
    total = per_rank * world_size
    if total > n:
        perm = np.concatenate([perm, perm[: total - n]])
    return perm[rank:total:world_size].astype(np.int64)


@dataclass(frozen=True)
class EpochRecord:
    """Summary of one epoch: mean training loss (nats), validation metrics, wall seconds."""

    epoch: int
    train_loss: float
    val_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    """What `train` returns: the unwrapped module (eval mode) and the epoch history."""

    model: nn.Module
    history: list[EpochRecord]
    resumed_from_epoch: int | None
    samples_per_second: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> EpochRecord:
        """The last epoch's record."""
        return self.history[-1]


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by `train` (tensors and plain types only).

    Raises:
        CheckpointError: missing, unreadable or of another format.
    """
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"no checkpoint at {p}")
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for truncated/corrupt files
        raise CheckpointError(f"cannot read checkpoint {p}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{p} is not a slipway checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def evaluate_accuracy(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 4096
) -> float:
    """Return the accuracy of `model` on `(N, 64)` float32 inputs and `(N,)` int64 labels."""
    was_training = model.training
    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            logits = model(x[start : start + batch_size])
            correct += int((logits.argmax(dim=1) == y[start : start + batch_size]).sum())
    model.train(was_training)
    return correct / max(1, len(x))


def train(
    model_config: ModelConfig,
    train_xy: tuple[torch.Tensor, torch.Tensor],
    val_xy: tuple[torch.Tensor, torch.Tensor],
    config: TrainConfig,
    *,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    ctx: DistContext | None = None,
    on_epoch_end: Callable[[EpochRecord], None] | None = None,
    extra: dict[str, Any] | None = None,
    progress: bool = True,
) -> TrainResult:
    """Train a classifier from scratch, or from `checkpoint_path` when `resume` is set.

    Args:
        model_config: architecture to build.
        train_xy: `(N, 64)` float32 inputs and `(N,)` int64 labels.
        val_xy: the validation split in the same form, evaluated after every epoch.
        config: optimisation settings.
        checkpoint_path: file to write checkpoints to (rank 0); None disables them.
        resume: continue from `checkpoint_path` if it exists (else start fresh).
        ctx: process-group coordinates (call `init_distributed` first); None = one process.
        on_epoch_end: called on rank 0 after each epoch (e.g. to log metrics).
        extra: JSON-able values stored in each checkpoint and returned on resume
            (e.g. the tracking run id); updated in place from the checkpoint.
        progress: report progress over epochs on rank 0 (`slipway.progress`: a bar
            on a terminal, a log line per tenth otherwise).

    Returns:
        The trained module (unwrapped, eval mode) and the full history, including epochs
        from before a resume.

    Raises:
        CheckpointError: the checkpoint is unreadable or was made with another model or
            optimisation config.
    """
    ctx = ctx or DistContext()
    extra = {} if extra is None else extra
    set_determinism()
    x_train, y_train = train_xy
    x_val, y_val = val_xy
    if len(x_train) == 0:
        raise ValueError("the training split is empty")

    torch.manual_seed(config.seed)
    module = build_model(model_config)
    optimizer = torch.optim.Adam(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    history: list[EpochRecord] = []
    start_epoch = 1
    resumed_from: int | None = None
    ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
    state: dict[str, Any] | None = None
    if ctx.is_main and resume and ckpt is not None and ckpt.exists():
        state = load_checkpoint(ckpt)
        if state["model_config"] != model_config.to_dict():
            raise CheckpointError(
                f"checkpoint {ckpt} was made with model config {state['model_config']}"
            )
        if state["train_config"] != config.resume_key():
            raise CheckpointError(
                f"checkpoint {ckpt} was made with train config {state['train_config']}"
            )
    elif resume and ctx.is_main:
        LOG.info("no checkpoint at %s; starting from epoch 1", ckpt)
    if ctx.distributed and resume:
        # Rank 0's checkpoint (or None) to every rank: all resume the same epoch and state.
        shared: list[Any] = [state]
        with ctx.collective("the checkpoint broadcast from rank 0"):
            dist.broadcast_object_list(shared, src=0)
        state = shared[0]
    if state is not None:
        module.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        history = [EpochRecord(**r) for r in state["history"]]
        extra.update(state.get("extra", {}))
        resumed_from = int(state["epoch"])
        start_epoch = resumed_from + 1
        if ctx.is_main:
            LOG.info("resuming from checkpoint at epoch %d: %s", resumed_from, ckpt)

    model: nn.Module = module
    if ctx.distributed:
        with ctx.collective("rank 0's initial weights (DistributedDataParallel)"):
            model = nn.parallel.DistributedDataParallel(module)
    loss_fn = nn.CrossEntropyLoss()
    last_save = time.monotonic()
    trained_samples = 0
    train_seconds = 0.0
    bar = progress_bar(
        range(start_epoch, config.epochs + 1),
        desc="train",
        unit="epoch",
        initial=start_epoch - 1,
        total=config.epochs,
        enabled=progress and ctx.is_main,
    )
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        torch.manual_seed(derive_seed(config.seed, epoch, ctx.rank, 1))  # dropout stream
        order = torch.from_numpy(
            epoch_indices(
                len(x_train),
                seed=config.seed,
                epoch=epoch,
                rank=ctx.rank,
                world_size=ctx.world_size,
            )
        )
        loss_sum = torch.zeros((), dtype=torch.float64)
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            xb, yb = x_train[idx], y_train[idx]
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            with ctx.collective(f"the gradient all-reduce of epoch {epoch}"):
                loss.backward()
            optimizer.step()
            loss_sum += loss.detach() * len(idx)
        stats = torch.stack([loss_sum, torch.tensor(float(len(order)), dtype=torch.float64)])
        if ctx.distributed:
            with ctx.collective(f"the all-reduce of epoch {epoch}'s loss"):
                dist.all_reduce(stats)
        trained_samples += len(order) * ctx.world_size
        train_seconds += time.perf_counter() - t0
        record = EpochRecord(
            epoch=epoch,
            train_loss=float(stats[0] / stats[1]),
            val_accuracy=evaluate_accuracy(module, x_val, y_val) if len(x_val) else float("nan"),
            seconds=time.perf_counter() - t0,
        )
        history.append(record)
        bar.set_postfix(loss=f"{record.train_loss:.4f}", val_acc=f"{record.val_accuracy:.4f}")
        if ctx.is_main:
            LOG.debug("epoch %d: %s", epoch, record)
            if on_epoch_end is not None:
                on_epoch_end(record)
            due = time.monotonic() - last_save >= config.checkpoint_seconds
            if ckpt is not None and (due or epoch == config.epochs):
                _save_checkpoint(
                    ckpt, epoch, module, optimizer, model_config, config, history, extra
                )
                last_save = time.monotonic()
    bar.close()
    if ctx.distributed:
        with ctx.collective("the barrier after the last epoch"):
            dist.barrier()
    module.eval()
    rate = trained_samples / train_seconds if train_seconds > 0 else 0.0
    return TrainResult(
        model=module,
        history=history,
        resumed_from_epoch=resumed_from,
        samples_per_second=rate,
        extra=extra,
    )


def _save_checkpoint(
    path: Path,
    epoch: int,
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_config: ModelConfig,
    config: TrainConfig,
    history: list[EpochRecord],
    extra: dict[str, Any],
) -> None:
    state = {
        "format": CHECKPOINT_FORMAT,
        "epoch": epoch,
        "model": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_config": model_config.to_dict(),
        "train_config": config.resume_key(),
        "history": [asdict(r) for r in history],
        "extra": extra,
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    LOG.debug("checkpoint for epoch %d written to %s", epoch, path)


def to_tensors(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """Return `(x, y)`: `(N, 64)` float32 and `(N,)` int64 tensors of a validated table."""
    return torch.from_numpy(preprocessing.features(frame)), torch.from_numpy(
        preprocessing.labels(frame)
    )
