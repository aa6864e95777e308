"""slipway.metrics agrees with scikit-learn's definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from slipway import metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, 500)
    p = np.where(rng.random(500) < 0.8, y, rng.integers(0, 10, 500))
    assert metrics.accuracy(y, p) == pytest.approx(skm.accuracy_score(y, p))
    assert metrics.macro_f1(y, p, 10) == pytest.approx(skm.f1_score(y, p, average="macro"))
    np.testing.assert_array_equal(
        metrics.confusion_matrix(y, p, 10), skm.confusion_matrix(y, p, labels=range(10))
    )


def test_missing_classes_follow_sklearn() -> None:
    y, p = np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1])
    assert metrics.macro_f1(y, p, 10) == pytest.approx(
        skm.f1_score(y, p, average="macro", zero_division=0)
    )


def test_bundle_and_errors() -> None:
    m = metrics.classification_metrics(np.array([1, 2, 3]), np.array([1, 2, 0]), 4)
    assert m.num_samples == 3 and m.accuracy == pytest.approx(2 / 3)
    assert m.scalars("test_") == {"test_accuracy": m.accuracy, "test_macro_f1": m.macro_f1}
    with pytest.raises(ValueError):
        metrics.accuracy(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        metrics.accuracy(np.array([1, 2]), np.array([1]))
    with pytest.raises(ValueError):
        metrics.confusion_matrix(np.array([1]), np.array([12]), 10)
