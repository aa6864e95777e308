"""slipway.evaluation: scoring and the promotion policy."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from slipway import evaluation
from slipway.models import ModelConfig, build_model


def test_evaluate_model_on_a_table(digits_frame: pd.DataFrame) -> None:
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden=(8,))).eval()
    m = evaluation.evaluate_model(model, digits_frame.head(100))
    assert m.num_samples == 100 and m.confusion.shape == (10, 10) and 0 <= m.accuracy <= 1
    d = evaluation.metrics_dict(m)
    assert d["num_samples"] == 100 and len(d["confusion_matrix"]) == 10


def test_policy_decisions() -> None:
    p = evaluation.PromotionPolicy(metric="accuracy", min_improvement=0.01, min_value=0.9)
    assert p.decide({"accuracy": 0.95}, None).promote
    assert not p.decide({"accuracy": 0.85}, None).promote  # below the floor
    assert p.decide({"accuracy": 0.97}, {"accuracy": 0.95}).promote
    tie = p.decide({"accuracy": 0.955}, {"accuracy": 0.95})
    assert not tie.promote and "does not beat" in tie.reason
    assert not evaluation.PromotionPolicy().decide({"accuracy": 0.9}, {"accuracy": 0.9}).promote
    f1 = evaluation.PromotionPolicy(metric="macro_f1")
    assert f1.decide({"accuracy": 0.1, "macro_f1": 0.9}, {"accuracy": 0.9, "macro_f1": 0.8}).promote
    for bad in ({"metric": "loss"}, {"min_improvement": -1}, {"min_value": 2}):
        with pytest.raises(ValueError):
            evaluation.PromotionPolicy(**bad)  # type: ignore[arg-type]
