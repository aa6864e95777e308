"""The batch inference job's workflow: a registered version over input files."""

from __future__ import annotations

import os
from typing import Any

from slipway.inference import InferenceSummary, run_batch_inference
from slipway.registry import ModelVersionInfo, Registry


def predict_with_model(
    *,
    registry: Registry,
    model_uri: str,
    inputs: list[str | os.PathLike[str]],
    output_dir: str | os.PathLike[str],
    **kwargs: Any,
) -> tuple[ModelVersionInfo, InferenceSummary]:
    """Load `model_uri` from the registry and run `slipway.inference.run_batch_inference`.

    Extra keyword arguments go to `run_batch_inference` (id_column, batch_size, shards...).

    Raises:
        ModelNotFoundError, RegistryUnavailableError, DataError, SchemaError.
    """
    info = registry.resolve(model_uri)
    loaded = registry.load_model(info.uri)
    summary = run_batch_inference(loaded.module, inputs, output_dir, **kwargs)
    return info, summary
