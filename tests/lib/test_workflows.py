"""slipway.workflows.{train,evaluate,predict}: train -> register -> evaluate -> promote -> predict on the embedded store."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from slipway.errors import ModelNotFoundError
from slipway.evaluation import PromotionPolicy
from slipway.models import ModelConfig
from slipway.registry import Registry
from slipway.training import TrainConfig
from slipway.workflows.evaluate import evaluate_and_promote
from slipway.workflows.predict import predict_with_model
from slipway.workflows.train import train_and_register


def test_trained_fixture_is_registered_as_challenger(trained_data_dir: Path) -> None:
    reg = Registry.for_data_dir(trained_data_dir)
    info = reg.get_version("digits-classifier", alias="challenger")
    assert info.version == "1" and info.tags["data_version"].startswith("v1-")
    metrics = reg.get_run_metrics(info.run_id or "")
    assert {"train_loss", "val_accuracy", "val_macro_f1"} <= set(metrics)


def test_evaluate_promote_then_keep_champion(data_dir_copy: Path) -> None:
    reg = Registry.for_data_dir(data_dir_copy)
    out = data_dir_copy / "reports"
    report = evaluate_and_promote(
        registry=reg,
        model_name="digits-classifier",
        processed=data_dir_copy / "processed",
        output_dir=out,
        policy=PromotionPolicy(),
        alias="challenger",
    )
    assert report["decision"]["promote"] and report["champion"]["version"] == "1"
    assert json.loads((out / "report.json").read_text()) == report
    assert (out / "confusion_matrix.png").exists()
    assert reg.get_version("digits-classifier", alias="champion").version == "1"

    # A second, worse model does not take the champion alias under a strict policy.
    second = train_and_register(
        registry=reg,
        processed=data_dir_copy / "processed",
        model_name="digits-classifier",
        model_config=ModelConfig(hidden=(4,), dropout=0.0),
        train_config=TrainConfig(epochs=1),
        checkpoint_path=None,
        progress=False,
    )
    assert second.version is not None and second.version.version == "2"
    report = evaluate_and_promote(
        registry=reg,
        model_name="digits-classifier",
        processed=data_dir_copy / "processed",
        output_dir=out,
        policy=PromotionPolicy(min_improvement=0.5),
        version="2",
    )
    assert not report["decision"]["promote"]
    assert report["champion"]["version"] == "1" and report["champion_before"]["version"] == "1"
    assert reg.get_version("digits-classifier", alias="champion").version == "1"
    assert reg.get_version("digits-classifier", alias="challenger").version == "2"

    with pytest.raises(ModelNotFoundError):
        evaluate_and_promote(
            registry=reg,
            model_name="digits-classifier",
            processed=data_dir_copy / "processed",
            output_dir=out,
            policy=PromotionPolicy(),
            alias="nope",
        )


def test_predict_with_model(
    trained_data_dir: Path, tmp_path: Path, digits_frame: pd.DataFrame
) -> None:
    digits_frame.head(50).to_csv(tmp_path / "in.csv", index=False)
    info, summary = predict_with_model(
        registry=Registry.for_data_dir(trained_data_dir),
        model_uri="models:/digits-classifier@challenger",
        inputs=[tmp_path / "in.csv"],
        output_dir=tmp_path / "out",
        progress=False,
    )
    assert info.version == "1" and summary.rows == 50


class _CrashAfterLogging(Registry):
    """The real registry, but the process "dies" right after logging epoch `crash_epoch`.

    The crash lands between the epoch's metrics and its checkpoint, as a kill can.
    """

    def __init__(self, tracking_uri: str, crash_epoch: int) -> None:
        super().__init__(tracking_uri)
        self.crash_epoch = crash_epoch

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        super().log_metrics(run_id, metrics, step)
        if step == self.crash_epoch and "train_loss" in metrics:
            raise KeyboardInterrupt("killed after logging epoch 3")


def test_a_resumed_training_logs_each_epoch_once(processed_root: Path, tmp_path: Path) -> None:
    reg = Registry.for_data_dir(tmp_path)
    settings = {
        "processed": processed_root,
        "model_name": "digits-classifier",
        "model_config": ModelConfig(hidden=(16,)),
        "train_config": TrainConfig(epochs=4, checkpoint_seconds=0),
        "checkpoint_path": tmp_path / "last.pt",
        "progress": False,
    }
    with pytest.raises(KeyboardInterrupt):
        train_and_register(registry=_CrashAfterLogging(reg.tracking_uri, 3), **settings)
    outcome = train_and_register(registry=reg, resume=True, **settings)
    assert outcome.resumed_from_epoch == 2 and outcome.run_id is not None
    for key in ("train_loss", "val_accuracy"):
        steps = [m.step for m in reg.client.get_metric_history(outcome.run_id, key)]
        assert sorted(steps) == [1, 2, 3, 4], key


def _weak_version(reg: Registry, processed: Path) -> str:
    """Register a deliberately weak version (4 hidden units, 1 epoch); return its number."""
    weak = train_and_register(
        registry=reg,
        processed=processed,
        model_name="digits-classifier",
        model_config=ModelConfig(hidden=(4,), dropout=0.0),
        train_config=TrainConfig(epochs=1),
        checkpoint_path=None,
        progress=False,
    )
    assert weak.version is not None
    return weak.version.version


def test_a_better_challenger_replaces_the_champion(data_dir_copy: Path) -> None:
    reg = Registry.for_data_dir(data_dir_copy)
    weak = _weak_version(reg, data_dir_copy / "processed")
    reg.set_alias("digits-classifier", "champion", weak)
    report = evaluate_and_promote(
        registry=reg,
        model_name="digits-classifier",
        processed=data_dir_copy / "processed",
        output_dir=data_dir_copy / "reports",
        policy=PromotionPolicy(min_improvement=0.05),
        version="1",
    )
    assert report["champion_before"]["version"] == weak
    assert report["candidate"]["accuracy"] > report["champion_before"]["metrics"]["accuracy"] + 0.05
    assert report["decision"]["promote"] and report["champion"]["version"] == "1"
    assert reg.get_version("digits-classifier", alias="champion").version == "1"


class _ChampionMovesWhileEvaluating(Registry):
    """The real registry; loading the champion's model lets another writer move `champion`."""

    def __init__(self, tracking_uri: str, move_to: str) -> None:
        super().__init__(tracking_uri)
        self.move_to = move_to

    def load_model(self, uri: str):  # type: ignore[no-untyped-def]
        loaded = super().load_model(uri)
        if self.find_version("digits-classifier", "champion").uri == uri:  # type: ignore[union-attr]
            Registry(self.tracking_uri).set_alias("digits-classifier", "champion", self.move_to)
        return loaded


def test_promotion_does_not_overwrite_a_concurrent_promotion(data_dir_copy: Path) -> None:
    from slipway.errors import AliasConflictError

    reg = Registry.for_data_dir(data_dir_copy)
    weak = _weak_version(reg, data_dir_copy / "processed")
    reg.set_alias("digits-classifier", "champion", weak)
    info = reg.get_version("digits-classifier", version="1")
    other = reg.register_model("digits-classifier", info.run_id or "").version
    out = data_dir_copy / "reports"
    with pytest.raises(AliasConflictError, match=rf"moved to version {other} \(it was {weak}"):
        evaluate_and_promote(
            registry=_ChampionMovesWhileEvaluating(reg.tracking_uri, other),
            model_name="digits-classifier",
            processed=data_dir_copy / "processed",
            output_dir=out,
            policy=PromotionPolicy(),
            version="1",
        )
    assert reg.get_version("digits-classifier", alias="champion").version == other
    report = json.loads((out / "report.json").read_text())
    assert not report["decision"]["promote"] and "conflict" in report["decision"]["reason"]
    assert (out / "confusion_matrix.png").exists()
