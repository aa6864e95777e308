"""The training job's workflow: train on processed data, register the `challenger`."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slipway import __version__, lineage
from slipway.data import MANIFEST_NAME, open_processed
from slipway.evaluation import evaluate_model, metrics_dict
from slipway.io import write_json
from slipway.models import ModelConfig, count_parameters, weights_sha256
from slipway.pyfunc import save_mlflow_model
from slipway.registry import (
    CHALLENGER,
    DEFAULT_EXPERIMENT,
    MODEL_ARTIFACT_PATH,
    ModelVersionInfo,
    Registry,
)
from slipway.schema import FEATURE_COLUMNS
from slipway.training import (
    DistContext,
    EpochRecord,
    TrainConfig,
    load_checkpoint,
    to_tensors,
    train,
)

LOG = logging.getLogger(__name__)

# Metrics logged once per epoch, at step = epoch.
EPOCH_METRICS = ("train_loss", "val_accuracy")
# Rows of validation pixels stored with the MLflow Model as its input example.
INPUT_EXAMPLE_ROWS = 5


@dataclass(frozen=True)
class TrainOutcome:
    """Result of `train_and_register` (registry fields are None on ranks other than 0)."""

    run_id: str | None
    version: ModelVersionInfo | None
    val_metrics: dict[str, Any]
    epochs: int
    resumed_from_epoch: int | None
    samples_per_second: float
    weights_sha256: str = ""


def train_and_register(
    *,
    registry: Registry | None,
    processed: str | os.PathLike[str],
    model_name: str,
    model_config: ModelConfig,
    train_config: TrainConfig,
    checkpoint_path: str | os.PathLike[str] | None,
    resume: bool = False,
    experiment: str = DEFAULT_EXPERIMENT,
    ctx: DistContext | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Train on a processed data version and register the model as the new `challenger`.

    Rank 0 (`registry` must be given there) creates or, on resume, reopens the MLflow
    run recorded in the checkpoint; logs parameters, per-epoch `train_loss` and
    `val_accuracy`, final validation metrics, the model directory (artifact `model`)
    and the data manifest (artifact `data`); registers a version of `model_name`; and
    points `challenger` at it. Other ranks only train.

    Raises:
        DataError: no processed data. CheckpointError: see `slipway.training.train`.
        RegistryError: the registry refused a request or is unreachable.
    """
    ctx = ctx or DistContext()
    data = open_processed(processed)
    train_frame, val_frame = data.read("train"), data.read("val")
    train_xy, val_xy = to_tensors(train_frame), to_tensors(val_frame)
    run_id: str | None = None
    # Steps each per-epoch metric already has in a continued run: the epochs that ran
    # after the last checkpoint are trained again but not logged twice.
    logged: dict[str, set[int]] = {}
    if ctx.is_main:
        if registry is None:
            raise ValueError("rank 0 needs a registry")
        ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
        if resume and ckpt is not None and ckpt.exists():
            run_id = load_checkpoint(ckpt).get("extra", {}).get("run_id")
        if run_id:
            registry.reopen_run(run_id)
            LOG.info("continuing MLflow run %s", run_id)
            logged = {key: registry.metric_steps(run_id, key) for key in EPOCH_METRICS}
        else:
            run_id = registry.start_run(experiment, tags={"slipway.data_version": data.version})
        registry.log_params(
            run_id,
            {
                **{f"model.{k}": v for k, v in model_config.to_dict().items()},
                **{
                    f"train.{k}": v
                    for k, v in asdict(train_config).items()
                    if k != "checkpoint_seconds"
                },
                "data.version": data.version,
                "data.train_rows": len(train_frame),
                "world_size": ctx.world_size,
                "slipway_version": __version__,
            },
        )

    def log_epoch(record: EpochRecord) -> None:
        assert registry is not None and run_id is not None
        values = {"train_loss": record.train_loss, "val_accuracy": record.val_accuracy}
        new = {k: v for k, v in values.items() if record.epoch not in logged.get(k, set())}
        if new:
            registry.log_metrics(run_id, new, step=record.epoch)

    extra: dict[str, Any] = {"run_id": run_id} if run_id else {}
    try:
        result = train(
            model_config,
            train_xy,
            val_xy,
            train_config,
            checkpoint_path=checkpoint_path if ctx.is_main else None,
            resume=resume,
            ctx=ctx,
            on_epoch_end=log_epoch if ctx.is_main else None,
            extra=extra,
            progress=progress,
        )
    except BaseException:
        if registry is not None and run_id is not None and ctx.is_main:
            registry.end_run(run_id, status="FAILED")
        raise
    val = metrics_dict(evaluate_model(result.model, val_frame))
    if not ctx.is_main:
        return TrainOutcome(
            None,
            None,
            val,
            train_config.epochs,
            result.resumed_from_epoch,
            result.samples_per_second,
            weights_sha256(result.model),
        )
    assert registry is not None and run_id is not None
    # val_accuracy at this step is the last epoch's, already logged.
    registry.log_metrics(
        run_id,
        {
            "val_macro_f1": val["macro_f1"],
            "samples_per_second": result.samples_per_second,
        },
        step=train_config.epochs,
    )
    metadata = {
        "data_version": data.version,
        "run_id": run_id,
        "epochs": train_config.epochs,
        "seed": train_config.seed,
        "val_accuracy": val["accuracy"],
        "val_macro_f1": val["macro_f1"],
        "parameters": count_parameters(result.model),
        "slipway_version": __version__,
    }
    tags = lineage.collect(data.version, data.path / MANIFEST_NAME)
    registry.set_run_tags(run_id, tags)
    example = val_frame[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32)[:INPUT_EXAMPLE_ROWS]
    with tempfile.TemporaryDirectory(prefix="slipway-train-") as tmp:
        model_dir = save_mlflow_model(
            result.model, model_config, Path(tmp) / MODEL_ARTIFACT_PATH, metadata, example
        )
        registry.log_artifacts(run_id, model_dir, MODEL_ARTIFACT_PATH)
        manifest_dir = Path(tmp) / "data"
        write_json(manifest_dir / "manifest.json", data.manifest)
        registry.log_artifacts(run_id, manifest_dir, "data")
    version = registry.register_model(
        model_name,
        run_id,
        tags={
            "data_version": data.version,
            "val_accuracy": f"{val['accuracy']:.6f}",
            "seed": str(train_config.seed),
            **tags,
        },
    )
    registry.set_alias(model_name, CHALLENGER, version.version)
    registry.end_run(run_id)
    return TrainOutcome(
        run_id,
        version,
        val,
        train_config.epochs,
        result.resumed_from_epoch,
        result.samples_per_second,
        weights_sha256(result.model),
    )
