"""Report figures: the confusion matrix as a PNG heat map (matplotlib, Agg backend).

Apart from `slipway.evaluation` so that only the jobs that draw (evaluation) carry
matplotlib.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from slipway.io import atomic_path


def plot_confusion(confusion: np.ndarray, path: str | os.PathLike[str], title: str = "") -> Path:
    """Write a `(C, C)` confusion matrix as an annotated PNG heat map (atomically).

    Rows are true classes, columns predicted classes. Uses matplotlib's Agg backend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(confusion)
    n = cm.shape[0]
    fig, ax = plt.subplots(figsize=(6, 5.4), dpi=100)
    try:
        image = ax.imshow(cm, cmap="Blues")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        ax.set(xticks=range(n), yticks=range(n), xlabel="predicted digit", ylabel="true digit")
        if title:
            ax.set_title(title)
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        str(cm[i, j]),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if cm[i, j] > threshold else "black",
                    )
        fig.tight_layout()
        out = Path(path)
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return out
