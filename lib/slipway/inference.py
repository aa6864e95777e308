"""Batch inference: bounded-memory, shardable predictions over CSV and Parquet files.

Input files hold an ID column and the 64 pixel columns (see `slipway.data`); other
columns, such as `label`, are ignored. Each output row is the input's ID next to the
predicted digit and its softmax probability (`confidence`).

Memory stays bounded whatever the input size: Parquet is read one record batch at a
time (within the row groups this shard needs) and CSV through pyarrow's streaming
reader; predictions are written out as they are made.

Sharding: rows are grouped into consecutive batches of `batch_size` rows per file;
batch `b` of file `f` belongs to shard `(f + b) % num_shards`. All shards must use the
same `batch_size`; together they cover every row exactly once. Parquet row groups with
no rows for this shard are skipped unread.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import torch
from torch import nn

from slipway.errors import DataError, SchemaError
from slipway.io import atomic_path
from slipway.preprocessing import scale_pixels
from slipway.progress import progress_bar
from slipway.schema import FEATURE_COLUMNS, PIXEL_MAX, table_kind

LOG = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
CONFIDENCE_COLUMN = "confidence"
DEFAULT_BATCH_SIZE = 4096
_CSV_BLOCK_BYTES = 1 << 20
_WRITE_ROWS = 65536  # output rows buffered per write; outputs are 3 narrow columns


def predict(
    module: nn.Module, x: np.ndarray, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Predict digits for model inputs.

    Args:
        module: a classifier in eval mode mapping `(n, 64)` float32 to `(n, 10)` logits.
        x: `(N, 64)` float32 inputs, already scaled by `slipway.preprocessing`.
        batch_size: rows per forward pass.

    Returns:
        `(N,)` int64 predicted classes and `(N,)` float32 softmax probabilities of them.
    """
    preds = np.empty(len(x), dtype=np.int64)
    conf = np.empty(len(x), dtype=np.float32)
    _predict_into(module, x, preds, conf, batch_size)
    return preds, conf


def _predict_into(
    module: nn.Module, x: np.ndarray, preds: np.ndarray, conf: np.ndarray, batch_size: int
) -> None:
    """Write `predict`'s outputs for `x` into the `(len(x),)` views `preds` and `conf`."""
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.inference_mode():
        for start in range(0, len(x), batch_size):
            logits = module(xt[start : start + batch_size])
            p, c = torch.softmax(logits, dim=1).max(dim=1)
            preds[start : start + len(c)] = c.numpy()
            conf[start : start + len(c)] = p.numpy()


def shard_of(file_index: int, batch_index: int, num_shards: int) -> int:
    """Return the shard owning batch `batch_index` of input file `file_index`."""
    return (file_index + batch_index) % num_shards


def list_inputs(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Expand files and directories (their `*.csv`/`*.parquet`, sorted) into a file list.

    Raises:
        DataError: a path does not exist, a file has an unknown suffix, or nothing is found.
    """
    files: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                q
                for q in p.iterdir()
                if q.is_file() and q.name.lower().endswith((".csv", ".csv.gz", ".parquet", ".pq"))
            )
            files.extend(found)
        elif p.exists():
            table_kind(p)
            files.append(p)
        else:
            raise DataError(f"input file not found: {p}")
    if not files:
        raise DataError("no input files (want .csv or .parquet files or directories holding them)")
    return files


def output_path(
    input_path: Path, output_dir: Path, shard_index: int, num_shards: int, fmt: str
) -> Path:
    """Return `<output_dir>/<stem>.predictions[.shard-<i>-of-<n>].<fmt>` for an input file."""
    stem = input_path.name
    for suffix in (".csv.gz", ".csv", ".parquet", ".pq"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    shard = f".shard-{shard_index:05d}-of-{num_shards:05d}" if num_shards > 1 else ""
    return output_dir / f"{stem}.predictions{shard}.{fmt}"


@dataclass
class InferenceSummary:
    """Totals of a batch-inference run: rows predicted, files written, wall seconds."""

    rows: int = 0
    seconds: float = 0.0
    outputs: list[Path] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float:
        """Predicted rows per wall-clock second (0 if nothing ran)."""
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def run_batch_inference(
    module: nn.Module,
    inputs: Sequence[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    *,
    id_column: str = "id",
    batch_size: int = DEFAULT_BATCH_SIZE,
    shard_index: int = 0,
    num_shards: int = 1,
    output_format: str = "parquet",
    progress: bool = True,
) -> InferenceSummary:
    """Predict every row of this shard of `inputs`, writing one output file per input file.

    Args:
        module: classifier in eval mode (`(n, 64)` float32 -> `(n, 10)` logits).
        inputs: CSV/Parquet files or directories of them.
        output_dir: where outputs go (created); each is written atomically.
        id_column: input column copied to the output, any type, no nulls.
        batch_size: rows per batch (also the sharding unit), >= 1.
        shard_index, num_shards: this worker's share, `0 <= shard_index < num_shards`.
        output_format: "parquet" or "csv".
        progress: report progress over rows (`slipway.progress`: a bar on a
            terminal, a log line every 30 s otherwise).

    Raises:
        ValueError: bad batch size, shard coordinates or format.
        DataError, SchemaError: missing/empty/unreadable input, missing columns,
            non-numeric, null or out-of-range pixels, null IDs.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ValueError(f"need 0 <= shard_index < num_shards, got {shard_index} and {num_shards}")
    if output_format not in ("parquet", "csv"):
        raise ValueError(f"output_format must be parquet or csv, got {output_format!r}")
    files = list_inputs(inputs)
    out_dir = Path(output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    module.eval()
    summary = InferenceSummary()
    t0 = time.perf_counter()
    bar = progress_bar(desc="predict", unit="row", enabled=progress)
    try:
        for file_index, path in enumerate(files):
            dest = output_path(path, out_dir, shard_index, num_shards, output_format)
            rows = _predict_file(
                module,
                path,
                dest,
                file_index=file_index,
                id_column=id_column,
                batch_size=batch_size,
                shard_index=shard_index,
                num_shards=num_shards,
                output_format=output_format,
                bar=bar,
            )
            summary.rows += rows
            summary.outputs.append(dest)
            LOG.info("%s: %d rows -> %s", path.name, rows, dest)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary


def _predict_file(
    module: nn.Module,
    path: Path,
    dest: Path,
    *,
    file_index: int,
    id_column: str,
    batch_size: int,
    shard_index: int,
    num_shards: int,
    output_format: str,
    bar: Any,
) -> int:
    if path.stat().st_size == 0:
        raise DataError(f"input file is empty: {path}")
    columns = [id_column, *FEATURE_COLUMNS]
    # Predictions go into buffers allocated once per file, not one small array per batch:
    # small arrays kept until a write land in the holes that each batch's large, freed
    # temporaries (activations, pixels) leave in the malloc heap, so the heap, and the
    # peak RSS, grew with every batch until the write (about 5 MiB per 4096 rows).
    capacity = max(_WRITE_ROWS, batch_size)
    preds = np.empty(capacity, dtype=np.int64)
    conf = np.empty(capacity, dtype=np.float32)
    ids: list[pa.Array] = []  # copies in Arrow's own pool, outside the malloc heap
    filled = 0
    total = 0
    writer: pq.ParquetWriter | pacsv.CSVWriter | None = None
    with atomic_path(dest) as tmp:
        try:
            for piece in _my_pieces(path, columns, file_index, batch_size, shard_index, num_shards):
                n = piece.num_rows
                if filled + n > capacity:
                    writer = _write(
                        writer, tmp, id_column, ids, preds[:filled], conf[:filled], output_format
                    )
                    ids, filled = [], 0
                piece_ids, pixels = _piece_arrays(piece, id_column, path)
                _predict_into(
                    module,
                    scale_pixels(pixels),
                    preds[filled : filled + n],
                    conf[filled : filled + n],
                    batch_size,
                )
                ids.append(piece_ids)
                filled += n
                total += n
                bar.update(n)
            if filled or writer is None:
                if not ids:  # nothing for this shard: still write a valid, empty file
                    ids = [pa.array([], type=_open_schema(path).field(id_column).type)]
                writer = _write(
                    writer, tmp, id_column, ids, preds[:filled], conf[:filled], output_format
                )
        finally:
            if writer is not None:
                writer.close()
    return total


def _write(
    writer: pq.ParquetWriter | pacsv.CSVWriter | None,
    tmp: Path,
    id_column: str,
    ids: list[pa.Array],
    preds: np.ndarray,
    conf: np.ndarray,
    fmt: str,
) -> pq.ParquetWriter | pacsv.CSVWriter:
    """Write one chunk of output rows, opening `writer` on `tmp` on the first call."""
    # Zero-copy views of the reused buffers: safe, as the write is done before they refill.
    table = pa.Table.from_arrays(
        [pa.chunked_array(ids), pa.array(preds), pa.array(conf)],
        names=[id_column, PREDICTION_COLUMN, CONFIDENCE_COLUMN],
    )
    if writer is None:
        writer = (
            pq.ParquetWriter(tmp, table.schema)
            if fmt == "parquet"
            else pacsv.CSVWriter(tmp, table.schema)
        )
    writer.write_table(table)
    return writer


def _open_schema(path: Path) -> pa.Schema:
    if table_kind(path) == "parquet":
        return pq.read_schema(path)
    with pacsv.open_csv(
        path, read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES)
    ) as reader:
        return reader.schema


def _my_pieces(
    path: Path,
    columns: list[str],
    file_index: int,
    batch_size: int,
    shard_index: int,
    num_shards: int,
) -> Iterator[pa.RecordBatch]:
    """Yield this shard's rows of one file as record batches of at most `batch_size` rows."""
    for start, batch in _read_batches(
        path, columns, file_index, batch_size, shard_index, num_shards
    ):
        offset = 0
        while offset < batch.num_rows:
            row = start + offset
            b = row // batch_size
            take = min(batch.num_rows - offset, (b + 1) * batch_size - row)
            if shard_of(file_index, b, num_shards) == shard_index:
                yield batch.slice(offset, take)
            offset += take


def _read_batches(
    path: Path,
    columns: list[str],
    file_index: int,
    batch_size: int,
    shard_index: int,
    num_shards: int,
) -> Iterator[tuple[int, pa.RecordBatch]]:
    """Yield `(first row number, batch)` over the file, skipping Parquet row groups not needed."""
    try:
        if table_kind(path) == "parquet":
            pf = pq.ParquetFile(path)
            _check_columns(pf.schema_arrow, columns, path)
            start = 0
            for rg in range(pf.num_row_groups):
                n = pf.metadata.row_group(rg).num_rows
                first_b, last_b = start // batch_size, (start + n - 1) // batch_size
                needed = n > 0 and any(
                    shard_of(file_index, b, num_shards) == shard_index
                    for b in range(first_b, min(last_b, first_b + num_shards - 1) + 1)
                )
                if needed:
                    row = start
                    for batch in pf.iter_batches(
                        batch_size=batch_size, row_groups=[rg], columns=columns
                    ):
                        yield row, batch
                        row += batch.num_rows
                start += n
            if start == 0:
                raise DataError(f"input file has no rows: {path}")
        else:
            # Pixels as float64 accept integer text too; a stray string fails the block.
            types = {name: pa.float64() for name in FEATURE_COLUMNS}
            reader = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(block_size=_CSV_BLOCK_BYTES),
                convert_options=pacsv.ConvertOptions(column_types=types, include_columns=columns),
            )
            row = 0
            with reader:
                for batch in reader:
                    yield row, batch
                    row += batch.num_rows
            if row == 0:
                raise DataError(f"input file has no rows: {path}")
    except pa.ArrowException as exc:
        if isinstance(exc, OSError) and not isinstance(exc, pa.ArrowInvalid):
            raise DataError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from exc
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "does not exist" in text.lower() or "not found" in text.lower():
            raise SchemaError(f"{path}: missing column(s): {text}") from exc
        raise SchemaError(f"{path}: cannot read: {text}") from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from exc


def _check_columns(schema: pa.Schema, columns: list[str], path: Path) -> None:
    missing = [c for c in columns if c not in schema.names]
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise SchemaError(f"{path}: missing column(s): {shown}")
    for name in FEATURE_COLUMNS:
        t = schema.field(name).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
            raise SchemaError(f"{path}: column {name!r} must be numeric, got {t}")


def _piece_arrays(piece: pa.RecordBatch, id_column: str, path: Path) -> tuple[pa.Array, np.ndarray]:
    # A copy: a slice would pin the whole input batch's buffers while outputs are buffered.
    ids = pa.concat_arrays([piece.column(id_column)])
    if ids.null_count:
        raise SchemaError(f"{path}: column {id_column!r} has null values")
    pixels = np.empty((piece.num_rows, len(FEATURE_COLUMNS)), dtype=np.float32)
    for i, name in enumerate(FEATURE_COLUMNS):
        pixels[:, i] = piece.column(name).to_numpy(zero_copy_only=False)
    finite = np.isfinite(pixels).all(axis=0)
    if not finite.all():
        name = FEATURE_COLUMNS[int(np.argmin(finite))]
        raise SchemaError(f"{path}: column {name!r} has null or non-finite values")
    in_range = ((pixels >= 0) & (pixels <= PIXEL_MAX)).all(axis=0)
    if not in_range.all():
        name = FEATURE_COLUMNS[int(np.argmin(in_range))]
        raise SchemaError(f"{path}: column {name!r} has values outside [0, {PIXEL_MAX:g}]")
    return ids, pixels
