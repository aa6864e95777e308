"""jobs/inference: batch predictions by alias, sharding, and bad input, as a real subprocess."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

CHALLENGER = ["--alias", "challenger"]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, digits_frame: pd.DataFrame) -> Path:
    root = tmp_path_factory.mktemp("inputs")
    digits_frame.head(700).drop(columns=["label"]).to_csv(root / "batch.csv", index=False)
    digits_frame.iloc[700:1000].to_parquet(root / "more.parquet", index=False)
    (root / "empty.csv").write_text("")
    digits_frame.head(10).drop(columns=["pixel_5_5"]).to_parquet(root / "schema.parquet")
    bad = digits_frame.head(10).astype({"pixel_0_3": object})
    bad.loc[1, "pixel_0_3"] = "n/a"
    bad.to_csv(root / "dtype.csv", index=False)
    return root


def test_help(run_job) -> None:  # type: ignore[no-untyped-def]
    r = run_job("inference", "--help")
    assert r.returncode == 0 and "--shard-index" in r.stdout and "SLIPWAY_NUM_SHARDS" in r.stdout


def test_predicts_next_to_ids(
    run_job, trained_data_dir: Path, inputs: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    r = run_job(
        "inference",
        "--data-dir",
        str(trained_data_dir),
        *CHALLENGER,
        "--input",
        str(inputs / "batch.csv"),
        str(inputs / "more.parquet"),
        "--output-dir",
        str(tmp_path),
        "--batch-size",
        "128",
    )
    assert r.returncode == 0, r.stderr
    assert "predicted 1000 rows with digits-classifier version 1" in r.stdout
    out = pd.read_parquet(tmp_path / "batch.predictions.parquet")
    assert list(out.columns) == ["id", "prediction", "confidence"]
    assert out["id"].tolist() == list(range(700)) and out["prediction"].between(0, 9).all()
    more = pd.read_parquet(tmp_path / "more.predictions.parquet")
    assert (more["prediction"] == pd.read_parquet(inputs / "more.parquet")["label"]).mean() > 0.8


def test_shards_split_the_rows(
    run_job, trained_data_dir: Path, inputs: Path, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    parts = []
    for shard in ("0", "1"):
        r = run_job(
            "inference",
            "--data-dir",
            str(trained_data_dir),
            *CHALLENGER,
            "--input",
            str(inputs / "batch.csv"),
            "--output-dir",
            str(tmp_path),
            "--batch-size",
            "70",
            env={"SLIPWAY_SHARD_INDEX": shard, "SLIPWAY_NUM_SHARDS": "2"},
        )
        assert r.returncode == 0, r.stderr
        parts.append(
            pd.read_parquet(tmp_path / f"batch.predictions.shard-0000{shard}-of-00002.parquet")
        )
    assert len(parts[0]) == len(parts[1]) == 350
    assert sorted(pd.concat(parts)["id"]) == list(range(700))


def test_processed_split_as_input(run_job, trained_data_dir: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    r = run_job(
        "inference",
        "--data-dir",
        str(trained_data_dir),
        *CHALLENGER,
        "--input",
        str(trained_data_dir / "processed"),
        "--output-dir",
        str(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert len(pd.read_parquet(tmp_path / "test.predictions.parquet")) == 269


def _fails(r, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert r.returncode == 1, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and all(w in last for w in words), r.stderr


def test_bad_input(
    call_job, trained_data_dir: Path, inputs: Path, tmp_path: Path, unreachable_uri: str
) -> None:  # type: ignore[no-untyped-def]
    d = ["--data-dir", str(trained_data_dir), "--output-dir", str(tmp_path)]
    ok = str(inputs / "batch.csv")
    _fails(
        call_job("inference", *d, *CHALLENGER, "--input", str(inputs / "missing.csv")), "not found"
    )
    _fails(call_job("inference", *d, *CHALLENGER, "--input", str(inputs / "empty.csv")), "empty")
    _fails(
        call_job("inference", *d, *CHALLENGER, "--input", str(inputs / "schema.parquet")),
        "missing column",
        "pixel_5_5",
    )
    _fails(
        call_job("inference", *d, *CHALLENGER, "--input", str(inputs / "dtype.csv")), "pixel_0_3"
    )
    _fails(call_job("inference", *d, "--alias", "gold", "--input", ok), "no alias 'gold'")
    _fails(call_job("inference", *d, "--input", ok), "no alias 'champion'")
    _fails(
        call_job("inference", *d, *CHALLENGER, "--input", ok, "--tracking-uri", unreachable_uri),
        "cannot reach",
    )
    assert (
        call_job(
            "inference", *d, "--input", ok, "--shard-index", "2", "--num-shards", "2"
        ).returncode
        == 2
    )
    assert call_job("inference", *d).returncode == 2  # no --input
    assert not list(tmp_path.glob("*.tmp"))  # failed outputs leave no temp files
