"""slipway.preprocessing: fixed pixel scaling to (N, 64) float32 in [0, 1]."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from slipway import preprocessing
from slipway.errors import SchemaError


def test_features_and_labels(digits_frame: pd.DataFrame) -> None:
    x = preprocessing.features(digits_frame)
    y = preprocessing.labels(digits_frame)
    assert x.shape == (1797, 64) and x.dtype == np.float32
    assert x.min() == 0.0 and x.max() == 1.0
    assert y.shape == (1797,) and y.dtype == np.int64


def test_scale_pixels_checks_shape() -> None:
    assert preprocessing.scale_pixels(np.full((2, 64), 8)).tolist()[0][0] == 0.5
    with pytest.raises(SchemaError):
        preprocessing.scale_pixels(np.zeros((2, 63)))


def test_spec_is_json_able() -> None:
    import json

    assert json.loads(json.dumps(preprocessing.spec())) == preprocessing.spec()
