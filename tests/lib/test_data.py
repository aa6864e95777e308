"""slipway.data: the digits, schema validation, deterministic splits, processed versions."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from slipway import data
from slipway.errors import DataError, SchemaError
from slipway.io import sha256_file


def test_digits_match_the_published_data_set(digits_frame: pd.DataFrame) -> None:
    assert digits_frame.shape == (1797, 66)
    assert list(digits_frame.columns) == list(data.SCHEMA)
    assert {str(t) for t in digits_frame.dtypes} == {"int64", "float32"}
    assert digits_frame[list(data.FEATURE_COLUMNS)].to_numpy().max() == 16
    assert sorted(digits_frame["label"].unique()) == list(range(10))


def test_read_table_csv_and_parquet(tmp_path: Path, digits_frame: pd.DataFrame) -> None:
    small = digits_frame.head(20)
    small.to_csv(tmp_path / "d.csv", index=False)
    small.to_parquet(tmp_path / "d.parquet", index=False)
    for name in ("d.csv", "d.parquet"):
        pd.testing.assert_frame_equal(data.validate(data.read_table(tmp_path / name)), small)


@pytest.mark.parametrize("content", ["", "id,label\n"])
def test_empty_inputs_are_rejected(tmp_path: Path, content: str) -> None:
    (tmp_path / "e.csv").write_text(content)
    with pytest.raises(DataError, match="empty|no rows"):
        data.read_table(tmp_path / "e.csv")


def test_missing_and_unknown_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        data.read_table(tmp_path / "nope.csv")
    (tmp_path / "x.txt").write_text("a")
    with pytest.raises(DataError, match="unsupported"):
        data.read_table(tmp_path / "x.txt")


def test_validate_reports_schema_problems(digits_frame: pd.DataFrame) -> None:
    small = digits_frame.head(10)
    with pytest.raises(SchemaError, match="missing column.*pixel_0_0"):
        data.validate(small.drop(columns=["pixel_0_0"]))
    bad = small.astype({"pixel_3_3": object})
    bad.loc[0, "pixel_3_3"] = "dark"
    with pytest.raises(SchemaError, match="pixel_3_3.*numeric"):
        data.validate(bad)
    with pytest.raises(SchemaError, match="outside"):
        data.validate(small.assign(pixel_0_1=17.0))
    with pytest.raises(SchemaError, match="label.*outside"):
        data.validate(small.assign(label=10))
    with pytest.raises(SchemaError, match="fractional"):
        data.validate(small.assign(label=1.5))
    with pytest.raises(SchemaError, match="duplicate"):
        data.validate(small.assign(id=1))
    with pytest.raises(SchemaError, match="null"):
        data.validate(small.assign(pixel_7_7=np.nan))
    with pytest.raises(DataError):
        data.validate(small.iloc[:0])


def test_validate_without_label_and_extra_columns(digits_frame: pd.DataFrame) -> None:
    out = data.validate(
        digits_frame.head(5).drop(columns=["label"]).assign(note="x"), require_label=False
    )
    assert "label" not in out.columns and "note" not in out.columns


def test_split_is_deterministic_stratified_and_disjoint(digits_frame: pd.DataFrame) -> None:
    a = data.split(digits_frame, seed=0)
    b = data.split(digits_frame.sample(frac=1.0, random_state=1), seed=0)  # row order irrelevant
    for name in data.SPLITS:
        pd.testing.assert_frame_equal(a.as_dict()[name], b.as_dict()[name])
    ids = [set(t["id"]) for t in a.as_dict().values()]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == 1797
    assert set(a.test["label"]) == set(range(10))
    assert not data.split(digits_frame, seed=1).test["id"].equals(a.test["id"])


def test_split_rejects_bad_fractions(digits_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError):
        data.split(digits_frame, seed=0, val_fraction=0.6, test_fraction=0.5)


def test_process_writes_a_versioned_manifest(processed_root: Path, tmp_path: Path) -> None:
    pd_ = data.open_processed(processed_root)
    assert (processed_root / "LATEST").read_text().strip() == pd_.version
    m = pd_.manifest
    assert m["source"]["rows"] == sum(m["splits"][s]["rows"] for s in data.SPLITS) == 1797
    for name in data.SPLITS:
        assert sha256_file(pd_.path / m["splits"][name]["file"]) == m["splits"][name]["sha256"]
        assert len(pd_.read(name)) == m["splits"][name]["rows"]
    again = data.process("digits", tmp_path / "p", seed=0)
    assert again.version == pd_.version and again.manifest == m  # deterministic, content-addressed
    assert data.process("digits", tmp_path / "p", seed=1).version != pd_.version


def test_processed_data_follows_the_umask(tmp_path: Path) -> None:
    # A container's user (another uid) must be able to read what this one wrote.
    old = os.umask(0o022)
    try:
        out = data.process("digits", tmp_path / "p", seed=0)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.path.stat().st_mode) == 0o755
    assert {stat.S_IMODE(f.stat().st_mode) for f in out.path.iterdir()} == {0o644}


def test_process_user_file_and_tamper_detection(tmp_path: Path, digits_frame: pd.DataFrame) -> None:
    digits_frame.head(300).to_csv(tmp_path / "mine.csv", index=False)
    p = data.process(str(tmp_path / "mine.csv"), tmp_path / "out", seed=3)
    assert p.manifest["source"]["name"] == "mine.csv" and p.manifest["source"]["rows"] == 300
    (p.path / "test.parquet").write_bytes(b"garbage")
    with pytest.raises(DataError, match="checksum"):
        p.read("test")


def test_open_processed_without_data(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no processed data"):
        data.open_processed(tmp_path)
