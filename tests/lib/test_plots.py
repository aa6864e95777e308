"""slipway.plots: the confusion-matrix PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from slipway import plots


def test_plot_confusion_writes_png(tmp_path: Path) -> None:
    out = plots.plot_confusion(np.eye(10, dtype=int) * 5, tmp_path / "cm.png", title="t")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["cm.png"]  # no temporary left behind
