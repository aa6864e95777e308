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
