"""Table rows to model inputs.

The only transform is a fixed rescale of pixel counts from [0, 16] to [0, 1]: it needs
no fitted state, so training, evaluation, batch inference and the service cannot drift
apart. The spec is stored with each model (`spec()`) and checked on load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from slipway.errors import SchemaError
from slipway.schema import FEATURE_COLUMNS, LABEL_COLUMN, NUM_FEATURES, PIXEL_MAX

if TYPE_CHECKING:
    import pandas as pd

SPEC_NAME = "pixel_scale"


def spec() -> dict[str, Any]:
    """Return the JSON-able description of this preprocessing, saved with each model."""
    return {"name": SPEC_NAME, "divisor": PIXEL_MAX, "columns": list(FEATURE_COLUMNS)}


def scale_pixels(pixels: np.ndarray) -> np.ndarray:
    """Rescale raw pixel counts to model inputs.

    Args:
        pixels: `(N, 64)` array of counts in [0, 16], any real dtype.

    Returns:
        `(N, 64)` float32 in [0, 1], C-contiguous.

    Raises:
        SchemaError: `pixels` is not 2-D with 64 columns.
    """
    if pixels.ndim != 2 or pixels.shape[1] != NUM_FEATURES:
        raise SchemaError(f"expected pixels of shape (N, {NUM_FEATURES}), got {pixels.shape}")
    out = np.asarray(pixels, dtype=np.float32) / np.float32(PIXEL_MAX)
    return np.ascontiguousarray(out)


def features(frame: pd.DataFrame) -> np.ndarray:
    """Return the `(N, 64)` float32 model inputs in [0, 1] of a validated table."""
    return scale_pixels(frame[list(FEATURE_COLUMNS)].to_numpy(dtype=np.float32))


def labels(frame: pd.DataFrame) -> np.ndarray:
    """Return the `(N,)` int64 class labels 0..9 of a validated table."""
    return frame[LABEL_COLUMN].to_numpy(dtype=np.int64, copy=True)
