"""Evaluating a model on a labelled split, reporting it, and the champion policy."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from slipway import preprocessing
from slipway.inference import predict
from slipway.metrics import ClassificationMetrics, classification_metrics
from slipway.schema import NUM_CLASSES

if TYPE_CHECKING:
    import pandas as pd
    from torch import nn

METRICS = ("accuracy", "macro_f1")


def evaluate_model(
    module: nn.Module, frame: pd.DataFrame, batch_size: int = 4096
) -> ClassificationMetrics:
    """Score `module` on a validated, labelled table.

    Returns:
        Accuracy, macro-F1, the `(10, 10)` confusion matrix (rows = true digit) and N.
    """
    predictions, _ = predict(module, preprocessing.features(frame), batch_size=batch_size)
    return classification_metrics(preprocessing.labels(frame), predictions, NUM_CLASSES)


def metrics_dict(m: ClassificationMetrics) -> dict[str, Any]:
    """JSON-able form: accuracy, macro_f1, num_samples and the confusion matrix as lists."""
    return {
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "num_samples": m.num_samples,
        "confusion_matrix": m.confusion.tolist(),
    }


@dataclass(frozen=True)
class PromotionPolicy:
    """When a candidate version takes the `champion` alias.

    The candidate is promoted when there is no champion yet, or when its `metric` beats
    the champion's by more than `min_improvement` (a tie keeps the champion, so rerunning
    with the same seed does not churn the alias). In both cases it must also reach
    `min_value`.

    Attributes:
        metric: "accuracy" or "macro_f1" (both in [0, 1]).
        min_improvement: required margin over the champion, >= 0.
        min_value: absolute floor for the candidate, in [0, 1].
    """

    metric: str = "accuracy"
    min_improvement: float = 0.0
    min_value: float = 0.0

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown policy metric {self.metric!r}; expected one of {METRICS}")
        if self.min_improvement < 0:
            raise ValueError(f"min_improvement must be >= 0, got {self.min_improvement}")
        if not 0.0 <= self.min_value <= 1.0:
            raise ValueError(f"min_value must be in [0, 1], got {self.min_value}")

    def decide(self, candidate: dict[str, float], champion: dict[str, float] | None) -> Decision:
        """Compare metric dicts (as from `metrics_dict`); `champion` None means no champion."""
        score = float(candidate[self.metric])
        if score < self.min_value:
            return Decision(
                False, f"{self.metric} {score:.4f} is below the floor {self.min_value:.4f}"
            )
        if champion is None:
            return Decision(True, f"no champion yet; {self.metric} {score:.4f}")
        best = float(champion[self.metric])
        if score > best + self.min_improvement:
            return Decision(
                True,
                f"{self.metric} {score:.4f} beats the champion's {best:.4f}"
                f" by more than {self.min_improvement:g}",
            )
        return Decision(
            False,
            f"{self.metric} {score:.4f} does not beat the champion's {best:.4f}"
            f" by more than {self.min_improvement:g}",
        )


@dataclass(frozen=True)
class Decision:
    """Outcome of a `PromotionPolicy`: promote or not, and why (one line)."""

    promote: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)
