"""Job-level workflows: what each job does, so the entry points stay thin.

- `train_and_register`: processed data -> trained model -> MLflow run, new model
  version, `challenger` alias.
- `evaluate_and_promote`: a registered version -> test-split report and plot ->
  `champion` alias if the promotion policy says so.
- `predict_with_model`: a registered version -> batch predictions over files.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slipway import __version__, preprocessing
from slipway.data import open_processed
from slipway.evaluation import PromotionPolicy, evaluate_model, metrics_dict, plot_confusion
from slipway.inference import InferenceSummary, run_batch_inference
from slipway.io import write_json
from slipway.models import ModelConfig, count_parameters, save_model_dir
from slipway.registry import (
    CHALLENGER,
    CHAMPION,
    DEFAULT_EXPERIMENT,
    MODEL_ARTIFACT_PATH,
    ModelVersionInfo,
    Registry,
)
from slipway.training import DistContext, EpochRecord, TrainConfig, load_checkpoint, train

LOG = logging.getLogger(__name__)
REPORT_NAME = "report.json"
CONFUSION_PNG_NAME = "confusion_matrix.png"


@dataclass(frozen=True)
class TrainOutcome:
    """Result of `train_and_register` (registry fields are None on ranks other than 0)."""

    run_id: str | None
    version: ModelVersionInfo | None
    val_metrics: dict[str, Any]
    epochs: int
    resumed_from_epoch: int | None
    samples_per_second: float


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
    train_xy, val_xy = preprocessing.to_tensors(train_frame), preprocessing.to_tensors(val_frame)
    run_id: str | None = None
    if ctx.is_main:
        if registry is None:
            raise ValueError("rank 0 needs a registry")
        ckpt = Path(checkpoint_path) if checkpoint_path is not None else None
        if resume and ckpt is not None and ckpt.exists():
            run_id = load_checkpoint(ckpt).get("extra", {}).get("run_id")
        if run_id:
            registry.reopen_run(run_id)
            LOG.info("continuing MLflow run %s", run_id)
        else:
            run_id = registry.start_run(experiment, tags={"slipway.data_version": data.version})
        registry.log_params(
            run_id,
            {
                **{f"model.{k}": v for k, v in model_config.to_dict().items()},
                **{
                    f"train.{k}": v
                    for k, v in _asdict(train_config).items()
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
        registry.log_metrics(
            run_id,
            {"train_loss": record.train_loss, "val_accuracy": record.val_accuracy},
            step=record.epoch,
        )

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
        )
    assert registry is not None and run_id is not None
    registry.log_metrics(
        run_id,
        {
            "val_accuracy": val["accuracy"],
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
    with tempfile.TemporaryDirectory(prefix="slipway-train-") as tmp:
        model_dir = save_model_dir(
            result.model, model_config, Path(tmp) / MODEL_ARTIFACT_PATH, metadata
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
    )


def evaluate_and_promote(
    *,
    registry: Registry,
    model_name: str,
    processed: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    policy: PromotionPolicy,
    version: str | None = None,
    alias: str | None = None,
    split: str = "test",
) -> dict[str, Any]:
    """Evaluate a version on a split, write the report, and move `champion` if it wins.

    The current champion (if any, and if different) is re-scored on the same split so
    the comparison is like for like. Writes `<output_dir>/report.json` and
    `<output_dir>/confusion_matrix.png` (the candidate's), logs both to the candidate's
    run under `evaluation/`, and tags the version with its scores.

    Returns:
        The report: `model`, `data`, `candidate` metrics, `champion_before`, `policy`,
        `decision` and `champion` (after the decision, with its metrics under `test`).

    Raises:
        ModelNotFoundError: unknown model, version or alias. DataError: no processed data.
    """
    data = open_processed(processed)
    frame = data.read(split)
    candidate = registry.get_version(model_name, version=version, alias=alias)
    cand_model = registry.load_model(candidate.uri)
    cand_metrics = metrics_dict(evaluate_model(cand_model.module, frame))
    champ = registry.find_version(model_name, CHAMPION)
    champ_metrics: dict[str, Any] | None = None
    if champ is not None and champ.version == candidate.version:
        champ_metrics = cand_metrics
    elif champ is not None:
        champ_metrics = metrics_dict(evaluate_model(registry.load_model(champ.uri).module, frame))

    if champ is not None and champ.version == candidate.version:
        decision_dict = {
            "promote": False,
            "reason": f"version {candidate.version} is already the champion",
        }
    else:
        decision = policy.decide(cand_metrics, champ_metrics)
        decision_dict = decision.to_dict()
        if decision.promote:
            registry.set_alias(model_name, CHAMPION, candidate.version)
    promoted = bool(decision_dict["promote"])
    new_champ_version: str | None
    new_champ_metrics: dict[str, Any] | None
    if promoted:
        new_champ_version, new_champ_metrics = candidate.version, cand_metrics
    elif champ is not None:
        new_champ_version, new_champ_metrics = champ.version, champ_metrics
    else:
        new_champ_version, new_champ_metrics = None, None
    report: dict[str, Any] = {
        "model": {
            "name": model_name,
            "version": candidate.version,
            "uri": candidate.uri,
            "run_id": candidate.run_id,
        },
        "data": {"version": data.version, "split": split, "rows": len(frame)},
        "candidate": cand_metrics,
        "champion_before": None
        if champ is None
        else {"version": champ.version, "metrics": champ_metrics},
        "policy": _asdict(policy),
        "decision": decision_dict,
        "champion": None
        if new_champ_version is None
        else {
            "name": model_name,
            "version": new_champ_version,
            "uri": f"models:/{model_name}@{CHAMPION}",
            "test": new_champ_metrics,
        },
    }
    out = Path(output_dir)
    write_json(out / REPORT_NAME, report)
    plot_confusion(
        np.asarray(cand_metrics["confusion_matrix"]),
        out / CONFUSION_PNG_NAME,
        title=f"{model_name} v{candidate.version} on {split} (accuracy {cand_metrics['accuracy']:.4f})",
    )
    registry.set_version_tags(
        model_name,
        candidate.version,
        {
            f"{split}_accuracy": f"{cand_metrics['accuracy']:.6f}",
            f"{split}_macro_f1": f"{cand_metrics['macro_f1']:.6f}",
            "data_version": data.version,
        },
    )
    if candidate.run_id:
        with tempfile.TemporaryDirectory(prefix="slipway-eval-") as tmp:
            for name in (REPORT_NAME, CONFUSION_PNG_NAME):
                Path(tmp, name).write_bytes((out / name).read_bytes())
            registry.log_artifacts(candidate.run_id, tmp, "evaluation")
    return report


def predict_with_model(
    *,
    registry: Registry,
    model_uri: str,
    inputs: list[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    **kwargs: Any,
) -> tuple[ModelVersionInfo, InferenceSummary]:
    """Load `model_uri` from the registry and run `slipway.inference.run_batch_inference`.

    Extra keyword arguments go to `run_batch_inference` (id_column, batch_size, shards...).

    Raises:
        ModelNotFoundError, RegistryUnavailableError, DataError, SchemaError.
    """
    info = registry.resolve(model_uri)
    loaded = registry.load_model(info.uri)
    summary = run_batch_inference(loaded.module, inputs, output_dir, **kwargs)
    return info, summary


def _asdict(obj: Any) -> dict[str, Any]:
    return asdict(obj)
