"""Classification metrics on integer labels, in plain numpy.

Definitions follow scikit-learn's `accuracy_score`, `f1_score(average="macro")` and
`confusion_matrix` (https://scikit-learn.org/stable/modules/model_evaluation.html);
the tests check agreement with scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _check(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1 or t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {t.shape}, {p.shape}")
    if t.size == 0:
        raise ValueError("cannot compute metrics on zero samples")
    return t.astype(np.int64), p.astype(np.int64)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of `(N,)` predictions equal to the labels, in [0, 1].

    Raises:
        ValueError: shapes differ, are not 1-D, or N is 0.
    """
    t, p = _check(y_true, y_pred)
    return float(np.mean(t == p))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the `(C, C)` int64 count matrix: row = true class, column = predicted class.

    Raises:
        ValueError: shapes differ, N is 0, or a label is outside 0..C-1.
    """
    t, p = _check(y_true, y_pred)
    if min(t.min(), p.min()) < 0 or max(t.max(), p.max()) >= num_classes:
        raise ValueError(f"labels must lie in 0..{num_classes - 1}")
    flat = np.bincount(t * num_classes + p, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes).astype(np.int64)


def per_class_f1(confusion: np.ndarray) -> np.ndarray:
    """Return the `(C,)` float64 F1 score of each class of a confusion matrix.

    F1 = 2 TP / (2 TP + FP + FN); a class with no true and no predicted samples scores 0
    (scikit-learn's `zero_division=0`).
    """
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes present in `y_true` or `y_pred`.

    Matches `sklearn.metrics.f1_score(average="macro", zero_division=0)` with its
    default `labels=None` (the union of classes seen).
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    seen = (cm.sum(axis=0) + cm.sum(axis=1)) > 0
    return float(per_class_f1(cm)[seen].mean())


@dataclass(frozen=True)
class ClassificationMetrics:
    """Accuracy and macro-F1 in [0, 1], the `(C, C)` confusion matrix and the sample count."""

    accuracy: float
    macro_f1: float
    confusion: np.ndarray
    num_samples: int

    def scalars(self, prefix: str = "") -> dict[str, float]:
        """Return `{prefix+"accuracy": ..., prefix+"macro_f1": ...}` for logging."""
        return {f"{prefix}accuracy": self.accuracy, f"{prefix}macro_f1": self.macro_f1}


def classification_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, num_classes: int
) -> ClassificationMetrics:
    """Compute all metrics of `(N,)` integer labels and predictions at once."""
    cm = confusion_matrix(y_true, y_pred, num_classes)
    return ClassificationMetrics(
        accuracy=accuracy(y_true, y_pred),
        macro_f1=macro_f1(y_true, y_pred, num_classes),
        confusion=cm,
        num_samples=int(cm.sum()),
    )
