"""slipway.inference: predictions, streaming over CSV/Parquet, sharding, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from slipway import inference, preprocessing
from slipway.errors import DataError, SchemaError
from slipway.models import ModelConfig, build_model


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(ModelConfig(hidden=(16,))).eval()


def _expected(model: torch.nn.Module, frame: pd.DataFrame) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(preprocessing.features(frame))).argmax(1).numpy()


def test_predict_matches_forward(model: torch.nn.Module, digits_frame: pd.DataFrame) -> None:
    x = preprocessing.features(digits_frame)
    preds, conf = inference.predict(model, x, batch_size=100)
    assert preds.dtype == np.int64 and conf.dtype == np.float32 and preds.shape == (1797,)
    np.testing.assert_array_equal(preds, _expected(model, digits_frame))
    assert ((conf > 0) & (conf <= 1)).all()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_batch_inference_keeps_ids_and_order(
    model: torch.nn.Module, digits_frame: pd.DataFrame, tmp_path: Path, fmt: str
) -> None:
    frame = digits_frame.head(500).rename(columns={"id": "image_id"})
    frame["image_id"] = [f"img-{i}" for i in range(500)]  # IDs of any type pass through
    src = tmp_path / f"in.{fmt}"
    if fmt == "csv":
        frame.to_csv(src, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src, row_group_size=128)
    summary = inference.run_batch_inference(
        model, [src], tmp_path / "out", id_column="image_id", batch_size=64, progress=False
    )
    assert summary.rows == 500 and summary.rows_per_second > 0
    out = pd.read_parquet(summary.outputs[0])
    assert list(out.columns) == ["image_id", "prediction", "confidence"]
    assert out["image_id"].tolist() == frame["image_id"].tolist()
    np.testing.assert_array_equal(out["prediction"].to_numpy(), _expected(model, frame))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_shards_cover_every_row_once(
    model: torch.nn.Module, digits_frame: pd.DataFrame, tmp_path: Path, fmt: str
) -> None:
    src = tmp_path / f"in.{fmt}"
    frame = digits_frame.head(1000)
    if fmt == "csv":
        frame.to_csv(src, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), src, row_group_size=100)
    parts = []
    for shard in range(3):
        s = inference.run_batch_inference(
            model,
            [src],
            tmp_path / "out",
            batch_size=50,
            shard_index=shard,
            num_shards=3,
            progress=False,
            output_format="csv",
        )
        assert s.outputs[0].name == f"in.predictions.shard-{shard:05d}-of-00003.csv"
        parts.append(pd.read_csv(s.outputs[0]))
    assert all(0 < len(p) < 1000 for p in parts)
    merged = pd.concat(parts).sort_values("id")
    assert merged["id"].tolist() == frame["id"].tolist()
    np.testing.assert_array_equal(merged["prediction"].to_numpy(), _expected(model, frame))


def test_empty_shard_still_writes_a_file(
    model: torch.nn.Module, digits_frame: pd.DataFrame, tmp_path: Path
) -> None:
    digits_frame.head(10).to_parquet(tmp_path / "in.parquet", index=False)
    s = inference.run_batch_inference(
        model,
        [tmp_path / "in.parquet"],
        tmp_path / "out",
        batch_size=64,
        shard_index=1,
        num_shards=2,
        progress=False,
    )
    assert s.rows == 0 and len(pd.read_parquet(s.outputs[0])) == 0


def test_directories_and_bad_inputs(
    model: torch.nn.Module, digits_frame: pd.DataFrame, tmp_path: Path
) -> None:
    good = tmp_path / "in"
    good.mkdir()
    digits_frame.head(5).to_csv(good / "a.csv", index=False)
    digits_frame.iloc[5:9].to_parquet(good / "b.parquet", index=False)
    assert inference.list_inputs([good]) == [good / "a.csv", good / "b.parquet"]
    assert inference.run_batch_inference(model, [good], tmp_path / "o", progress=False).rows == 9

    run = lambda p: inference.run_batch_inference(model, [p], tmp_path / "o", progress=False)  # noqa: E731
    with pytest.raises(DataError, match="not found"):
        run(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        run(tmp_path / "empty.csv")
    digits_frame.head(5).drop(columns=["pixel_4_4"]).to_csv(tmp_path / "cols.csv", index=False)
    with pytest.raises(SchemaError, match="pixel_4_4"):
        run(tmp_path / "cols.csv")
    digits_frame.head(5).drop(columns=["pixel_4_4"]).to_parquet(tmp_path / "cols.parquet")
    with pytest.raises(SchemaError, match="missing column.*pixel_4_4"):
        run(tmp_path / "cols.parquet")
    digits_frame.head(5).astype({"pixel_1_1": str}).to_parquet(tmp_path / "types.parquet")
    with pytest.raises(SchemaError, match="numeric"):
        run(tmp_path / "types.parquet")
    bad = digits_frame.head(5).astype({"pixel_1_1": object})
    bad.loc[2, "pixel_1_1"] = "dark"
    bad.to_csv(tmp_path / "types.csv", index=False)
    with pytest.raises(SchemaError):
        run(tmp_path / "types.csv")
    digits_frame.head(5).assign(pixel_0_0=99).to_csv(tmp_path / "range.csv", index=False)
    with pytest.raises(SchemaError, match="outside"):
        run(tmp_path / "range.csv")
    with pytest.raises(ValueError):
        inference.run_batch_inference(model, [good], tmp_path / "o", shard_index=2, num_shards=2)
