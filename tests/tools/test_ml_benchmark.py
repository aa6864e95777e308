"""tools/benchmarks/ml_benchmark.py: the pieces run and the table renders (timings are not asserted)."""

from __future__ import annotations

from pathlib import Path

import torch
from slipway.models import ModelConfig, build_model, save_model_dir
from slipway.training import TrainConfig

from tools.benchmarks import ml_benchmark as benchmarks


def test_bare_loop_trains_the_same_model() -> None:
    x, y = torch.rand(64, 64), torch.randint(0, 10, (64,))
    model = benchmarks.bare_training_loop(ModelConfig(hidden=(8,)), x, y, TrainConfig(epochs=1))
    assert model(x).shape == (64, 10)


def test_training_row(tmp_path: Path) -> None:
    row = benchmarks.bench_training(epochs=1, repeat=1, workdir=tmp_path)
    assert row.slipway > 0 and row.baseline > 0 and row.ratio > 0


def test_inference_rows_and_peak_memory(tmp_path: Path) -> None:
    cfg = ModelConfig(hidden=(8,))
    model_dir = save_model_dir(build_model(cfg), cfg, tmp_path / "m")
    n = benchmarks._write_scaled_parquet(tmp_path / "x2.parquet", 2)
    assert n == 2 * 1797
    rows = benchmarks.bench_inference(model_dir, tmp_path / "x2.parquet", n, 1, tmp_path)
    assert [r.unit for r in rows] == ["rows/s", "rows/s"]
    assert (
        benchmarks.peak_inference_bytes(model_dir, tmp_path / "x2.parquet", tmp_path / "o") > 2**20
    )
    table = benchmarks.markdown(rows)
    assert table.startswith("| benchmark |") and table.count("\n") == 3
