"""jobs/processing: command line, happy paths and bad input, run as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


def test_help(run_job) -> None:  # type: ignore[no-untyped-def]
    r = run_job("processing", "--help")
    assert r.returncode == 0 and "--input" in r.stdout and "SLIPWAY_DATA_DIR" in r.stdout


def test_digits_to_versioned_splits(run_job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_job("processing", "--data-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "train 1259, val 269, test 269" in r.stdout
    version = (tmp_path / "processed" / "LATEST").read_text().strip()
    manifest = json.loads((tmp_path / "processed" / version / "manifest.json").read_text())
    assert manifest["source"] == {**manifest["source"], "name": "digits", "rows": 1797}
    assert set(manifest["splits"]) == {"train", "val", "test"}
    again = run_job("processing", "--data-dir", str(tmp_path))
    assert again.returncode == 0 and again.stdout == r.stdout  # same input, same version


def test_user_files_via_env_fallback(run_job, tmp_path: Path, digits_frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    digits_frame.head(400).to_parquet(tmp_path / "mine.parquet", index=False)
    r = run_job(
        "processing",
        env={
            "SLIPWAY_INPUT": str(tmp_path / "mine.parquet"),
            "SLIPWAY_DATA_DIR": str(tmp_path / "d"),
            "SLIPWAY_SEED": "4",
        },
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "d" / "processed" / "LATEST").exists()
    digits_frame.head(400).to_csv(tmp_path / "mine.csv", index=False)
    r = run_job(
        "processing", "--input", str(tmp_path / "mine.csv"), "--data-dir", str(tmp_path / "e")
    )
    assert r.returncode == 0, r.stderr


def _fails(r, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(w in last for w in words), r.stderr


def test_bad_input(run_job, tmp_path: Path, digits_frame: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    d = ["--data-dir", str(tmp_path / "d")]
    _fails(run_job("processing", "--input", str(tmp_path / "missing.csv"), *d), "not found")
    (tmp_path / "empty.csv").write_text("")
    _fails(run_job("processing", "--input", str(tmp_path / "empty.csv"), *d), "empty")
    digits_frame.head(20).drop(columns=["label"]).to_csv(tmp_path / "nolabel.csv", index=False)
    _fails(
        run_job("processing", "--input", str(tmp_path / "nolabel.csv"), *d),
        "missing column",
        "label",
    )
    bad = digits_frame.head(20).astype({"pixel_2_5": object})
    bad.loc[3, "pixel_2_5"] = "bright"
    bad.to_csv(tmp_path / "dtype.csv", index=False)
    _fails(
        run_job("processing", "--input", str(tmp_path / "dtype.csv"), *d), "pixel_2_5", "numeric"
    )
    assert not (tmp_path / "d" / "processed" / "LATEST").exists()


def test_usage_errors_exit_2(run_job, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_job(
        "processing", "--data-dir", str(tmp_path), "--test-fraction", "0.9", "--val-fraction", "0.5"
    )
    assert r.returncode == 2 and "must be below 1" in r.stderr
    assert run_job("processing", "--seed", "x").returncode == 2
