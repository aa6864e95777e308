"""The digits table schema and the file types a table comes in; no third-party imports.

Kept apart from `slipway.data` (pandas) so that models, batch inference and the
service can share the schema without loading pandas.

    id            integer, unique, no nulls          -> int64
    pixel_0_0 ... pixel_7_7 (64 columns, row-major)   -> float32, finite, in [0, 16]
    label         integer in 0..9 (optional for inference input) -> int64

Column names follow scikit-learn's `load_digits(as_frame=True)` (`pixel_<row>_<col>`).
"""

from __future__ import annotations

import os
from pathlib import Path

from slipway.errors import DataError

ID_COLUMN = "id"
LABEL_COLUMN = "label"
IMAGE_SIDE = 8
FEATURE_COLUMNS: tuple[str, ...] = tuple(
    f"pixel_{r}_{c}" for r in range(IMAGE_SIDE) for c in range(IMAGE_SIDE)
)
NUM_FEATURES = len(FEATURE_COLUMNS)  # 64
NUM_CLASSES = 10
PIXEL_MAX = 16.0  # each pixel counts set bits in a 4x4 block of the 32x32 bitmap (UCI)

SCHEMA: dict[str, str] = {
    ID_COLUMN: "int64",
    **{name: "float32" for name in FEATURE_COLUMNS},
    LABEL_COLUMN: "int64",
}


def table_kind(path: str | os.PathLike[str]) -> str:
    """Return "csv" or "parquet" from a file name's suffix.

    Raises:
        DataError: the suffix is neither.
    """
    name = Path(path).name.lower()
    if name.endswith((".csv", ".csv.gz")):
        return "csv"
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    raise DataError(f"unsupported file type (want .csv or .parquet): {path}")
