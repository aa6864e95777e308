"""Digits data: loading, schema validation, deterministic splits and processed versions.

Dataset: the handwritten digits that scikit-learn ships (`sklearn.datasets.load_digits`),
1,797 grey 8x8 images of the digits 0-9 with pixel counts 0..16. They are the test part
of the UCI "Optical Recognition of Handwritten Digits" data set: E. Alpaydin and
C. Kaynak, UCI Machine Learning Repository, 1998, https://doi.org/10.24432/C50P49.

Table schema (raw input, processed splits and inference input alike):

    id            integer, unique, no nulls          -> int64
    pixel_0_0 ... pixel_7_7 (64 columns, row-major)   -> float32, finite, in [0, 16]
    label         integer in 0..9 (optional for inference input) -> int64

Extra columns are dropped with a warning. Column names follow scikit-learn's
`load_digits(as_frame=True)` (`pixel_<row>_<col>`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from slipway import __version__
from slipway.errors import DataError, SchemaError
from slipway.io import make_temp_dir, read_json, sha256_file, write_json, write_text
from slipway.schema import (  # noqa: F401 - re-exported: slipway.data.NUM_CLASSES etc.
    FEATURE_COLUMNS,
    ID_COLUMN,
    IMAGE_SIDE,
    LABEL_COLUMN,
    NUM_CLASSES,
    NUM_FEATURES,
    PIXEL_MAX,
    SCHEMA,
    table_kind,
)

LOG = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
BUILTIN_SOURCE = "digits"
MANIFEST_NAME = "manifest.json"
LATEST_NAME = "LATEST"
MANIFEST_FORMAT = 1


def load_digits_frame() -> pd.DataFrame:
    """Return the scikit-learn digits as a table in the Slipway schema.

    Returns:
        1,797 rows: `id` 0..1796 (int64), 64 pixel columns (float32, 0..16), `label`
        (int64, 0..9). Read from the copy inside the scikit-learn package; no network.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    frame = pd.DataFrame(np.asarray(bunch.data, dtype=np.float32), columns=list(FEATURE_COLUMNS))
    frame.insert(0, ID_COLUMN, np.arange(len(frame), dtype=np.int64))
    frame[LABEL_COLUMN] = np.asarray(bunch.target, dtype=np.int64)
    return frame


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a whole CSV (`.csv`, `.csv.gz`) or Parquet (`.parquet`, `.pq`) file.

    Raises:
        DataError: the file is missing, empty, has an unknown suffix or cannot be parsed.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"input file not found: {p}")
    if p.is_dir():
        raise DataError(f"input is a directory, expected a CSV or Parquet file: {p}")
    if p.stat().st_size == 0:
        raise DataError(f"input file is empty: {p}")
    kind = table_kind(p)
    try:
        frame = pd.read_csv(p) if kind == "csv" else pd.read_parquet(p)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read {kind} file {p}: {_first_line(exc)}") from exc
    if frame.empty:
        raise DataError(f"input file has no rows: {p}")
    return frame


def load_raw(source: str) -> pd.DataFrame:
    """Load raw input: `"digits"` for the built-in data set, else a CSV/Parquet path.

    Raises:
        DataError: see `read_table`.
    """
    if source == BUILTIN_SOURCE:
        return load_digits_frame()
    return read_table(source)


def validate(frame: pd.DataFrame, *, require_label: bool = True) -> pd.DataFrame:
    """Check `frame` against the schema and return a copy with canonical dtypes and order.

    Args:
        frame: any table; extra columns are dropped (with a warning).
        require_label: whether the `label` column must be present (False for inference).

    Returns:
        Columns `id`, the 64 pixels and (if present) `label`, as int64/float32/int64.

    Raises:
        SchemaError: missing columns, nulls, non-numeric or non-integer values, values
            out of range, or duplicate ids. The message names the first offending column.
        DataError: `frame` has no rows.
    """
    if len(frame) == 0:
        raise DataError("input has no rows")
    wanted = [ID_COLUMN, *FEATURE_COLUMNS]
    has_label = LABEL_COLUMN in frame.columns
    if require_label or has_label:
        wanted.append(LABEL_COLUMN)
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise SchemaError(f"missing column(s): {shown}")
    extra = [c for c in frame.columns if c not in wanted]
    if extra:
        LOG.warning("ignoring %d extra column(s): %s", len(extra), ", ".join(map(str, extra[:5])))

    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    out[ID_COLUMN] = _integer_column(frame[ID_COLUMN], ID_COLUMN)
    if out[ID_COLUMN].duplicated().any():
        dup = out[ID_COLUMN][out[ID_COLUMN].duplicated()].iloc[0]
        raise SchemaError(f"column {ID_COLUMN!r} has duplicate values (e.g. {dup})")
    pixels = np.empty((len(frame), NUM_FEATURES), dtype=np.float32)
    for i, name in enumerate(FEATURE_COLUMNS):
        col = frame[name]
        if not (pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)):
            raise SchemaError(f"column {name!r} must be numeric, got dtype {col.dtype}")
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(values).all():
            raise SchemaError(f"column {name!r} has null or non-finite values")
        if values.min() < 0 or values.max() > PIXEL_MAX:
            raise SchemaError(f"column {name!r} has values outside [0, {PIXEL_MAX:g}]")
        pixels[:, i] = values
    out = pd.concat([out, pd.DataFrame(pixels, columns=list(FEATURE_COLUMNS))], axis=1)
    if LABEL_COLUMN in wanted:
        labels = _integer_column(frame[LABEL_COLUMN], LABEL_COLUMN)
        if labels.min() < 0 or labels.max() >= NUM_CLASSES:
            raise SchemaError(f"column {LABEL_COLUMN!r} has values outside 0..{NUM_CLASSES - 1}")
        out[LABEL_COLUMN] = labels
    return out


def _integer_column(col: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        raise SchemaError(f"column {name!r} must be integer, got dtype {col.dtype}")
    if col.isna().any():
        raise SchemaError(f"column {name!r} has null values")
    values = col.to_numpy()
    if pd.api.types.is_float_dtype(col) and not np.all(np.mod(values, 1) == 0):
        raise SchemaError(f"column {name!r} must be integer, found fractional values")
    return values.astype(np.int64)


@dataclass(frozen=True)
class Splits:
    """Train/validation/test tables, each sorted by `id`."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    def as_dict(self) -> dict[str, pd.DataFrame]:
        """Return `{"train": ..., "val": ..., "test": ...}`."""
        return {"train": self.train, "val": self.val, "test": self.test}


def split(
    frame: pd.DataFrame, *, seed: int, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> Splits:
    """Split a validated table into train/val/test, stratified by label, deterministic in `seed`.

    Within each class the rows (ordered by `id`, so the input row order does not matter)
    are shuffled with `numpy.random.default_rng(seed)`; `round(n * fraction)` go to test,
    then to val, the rest to train.

    Raises:
        ValueError: fractions outside [0, 1) or summing to 1 or more.
        DataError: the training split would be empty.
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError("val_fraction + test_fraction must be below 1")
    ordered = frame.sort_values(ID_COLUMN, kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLITS}
    for label in sorted(ordered[LABEL_COLUMN].unique()):
        idx = np.flatnonzero(ordered[LABEL_COLUMN].to_numpy() == label)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test : n_test + n_val])
        parts["train"].append(idx[n_test + n_val :])
    tables = {
        name: ordered.iloc[np.sort(np.concatenate(chunks))].reset_index(drop=True)
        for name, chunks in parts.items()
    }
    if len(tables["train"]) == 0:
        raise DataError("too few rows to split: the training split is empty")
    return Splits(**tables)


def content_sha256(frame: pd.DataFrame) -> str:
    """Hex SHA-256 of a validated table's values (id, pixels, label), independent of file format."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(frame[ID_COLUMN].to_numpy(np.int64)).tobytes())
    digest.update(np.ascontiguousarray(frame[list(FEATURE_COLUMNS)].to_numpy(np.float32)).tobytes())
    if LABEL_COLUMN in frame.columns:
        digest.update(np.ascontiguousarray(frame[LABEL_COLUMN].to_numpy(np.int64)).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class ProcessedData:
    """A processed data version on disk: `<root>/<version>/{train,val,test}.parquet`."""

    path: Path
    manifest: dict[str, Any]

    @property
    def version(self) -> str:
        """The version name, e.g. `v1-3f2a9c0d1b7e`."""
        return str(self.manifest["version"])

    def read(self, split_name: str, *, verify: bool = True) -> pd.DataFrame:
        """Read one split as a validated table.

        Raises:
            DataError: unknown split name, missing file or checksum mismatch (when `verify`).
        """
        if split_name not in SPLITS:
            raise DataError(f"unknown split {split_name!r}; expected one of {', '.join(SPLITS)}")
        entry = self.manifest["splits"][split_name]
        file = self.path / entry["file"]
        if not file.exists():
            raise DataError(f"processed split missing: {file}")
        if verify and sha256_file(file) != entry["sha256"]:
            raise DataError(f"checksum mismatch for {file}; the processed data was modified")
        return validate(pd.read_parquet(file))


def process(
    source: str,
    out_root: str | os.PathLike[str],
    *,
    seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
) -> ProcessedData:
    """Load, validate and split `source`, writing a processed version under `out_root`.

    The version name is derived from the input's content and the split parameters, so
    processing the same input twice yields the same version (reused, not rewritten).
    The version directory is assembled in a temporary sibling and renamed into place;
    `<out_root>/LATEST` then names it.

    Returns:
        The processed version, whose manifest holds row counts, SHA-256 checksums of
        each Parquet file, the schema and the split parameters.

    Raises:
        DataError, SchemaError: see `load_raw`, `validate`, `split`.
    """
    root = Path(out_root)
    frame = validate(load_raw(source))
    content = content_sha256(frame)
    params = f"{MANIFEST_FORMAT}:{content}:{seed}:{val_fraction!r}:{test_fraction!r}"
    version = f"v{MANIFEST_FORMAT}-{hashlib.sha256(params.encode()).hexdigest()[:12]}"
    final = root / version
    if (final / MANIFEST_NAME).exists():
        LOG.info("processed version %s already exists; reusing it", version)
    else:
        splits = split(frame, seed=seed, val_fraction=val_fraction, test_fraction=test_fraction)
        root.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(root, prefix=f".{version}.")
        try:
            entries = {}
            for name, table in splits.as_dict().items():
                file = tmp / f"{name}.parquet"
                table.to_parquet(file, index=False, engine="pyarrow")
                entries[name] = {
                    "file": file.name,
                    "rows": len(table),
                    "sha256": sha256_file(file),
                    "class_counts": {
                        str(k): int(v)
                        for k, v in table[LABEL_COLUMN].value_counts().sort_index().items()
                    },
                }
            manifest = {
                "format": MANIFEST_FORMAT,
                "version": version,
                "created_by": f"slipway {__version__}",
                "source": {
                    "name": source if source == BUILTIN_SOURCE else Path(source).name,
                    "rows": len(frame),
                    "content_sha256": content,
                },
                "split": {
                    "seed": seed,
                    "val_fraction": val_fraction,
                    "test_fraction": test_fraction,
                },
                "schema": SCHEMA,
                "splits": entries,
            }
            write_json(tmp / MANIFEST_NAME, manifest)
            try:
                os.rename(tmp, final)
            except OSError:
                # Lost a race with a concurrent writer of the same version: keep theirs.
                if not (final / MANIFEST_NAME).exists():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    write_text(root / LATEST_NAME, version + "\n")
    return open_processed(final)


def open_processed(path: str | os.PathLike[str]) -> ProcessedData:
    """Open a processed version directory, or a processed root (follows its `LATEST`).

    Raises:
        DataError: neither a manifest nor a `LATEST` pointer is found.
    """
    p = Path(path)
    if not (p / MANIFEST_NAME).exists() and (p / LATEST_NAME).exists():
        p = p / (p / LATEST_NAME).read_text(encoding="utf-8").strip()
    manifest_path = p / MANIFEST_NAME
    if not manifest_path.exists():
        raise DataError(f"no processed data at {path} (run the processing job first)")
    try:
        manifest = read_json(manifest_path)
    except ValueError as exc:
        raise DataError(f"corrupt manifest {manifest_path}: {_first_line(exc)}") from exc
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DataError(
            f"unsupported manifest format {manifest.get('format')!r} in {manifest_path}"
        )
    return ProcessedData(path=p, manifest=manifest)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
