"""Slipway models as MLflow Models: a `python_function` flavor loaded from code.

`save_mlflow_model` writes an MLflow Model directory (https://mlflow.org/docs/latest/
models.html) that any MLflow 3 client loads with `mlflow.pyfunc.load_model` and
that `mlflow models serve` serves:

    MLmodel                   flavor python_function, "models from code": MLflow
                              runs pyfunc_code.py (no cloudpickle of objects)
    pyfunc_code.py            calls mlflow.models.set_model(DigitsClassifier())
    code/slipway/             this package, put on sys.path when MLflow loads it
    artifacts/slipway_model/  Slipway's own model directory (slipway.models:
                              model.pt, read with weights_only=True; config.json)
    input_example.json, serving_input_example.json, requirements.txt, ...

Signature: input `(N, 64)` float32 pixels (0-16, as in the digits table); outputs
`label` int64 `(N,)` and `probability` float32 `(N,)`, the softmax probability of
the label. Slipway's jobs and the service read `artifacts/slipway_model/` directly
(`slipway.models.load_model_dir` finds it), without pyfunc in their request loop.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mlflow.pyfunc import PythonModel

from slipway.models import MLFLOW_ARTIFACT, ModelConfig, load_model_dir, save_model_dir
from slipway.preprocessing import scale_pixels
from slipway.schema import NUM_FEATURES

# The "models from code" file, beside this one.
CODE_FILE = Path(__file__).with_name("pyfunc_code.py")
# Distributions the model needs at load time, pinned to the versions installed here.
REQUIREMENTS = ("torch", "numpy", "mlflow-skinny")


def signature() -> Any:
    """The model signature: `(N, 64)` float32 in; `label` int64, `probability` float32 out."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, NUM_FEATURES))]),
        outputs=Schema(
            [
                TensorSpec(np.dtype(np.int64), (-1,), "label"),
                TensorSpec(np.dtype(np.float32), (-1,), "probability"),
            ]
        ),
    )


def pinned_requirements() -> list[str]:
    """`name==version` of REQUIREMENTS as installed (e.g. torch==2.13.0+cpu)."""
    return [f"{name}=={importlib.metadata.version(name)}" for name in REQUIREMENTS]


class DigitsClassifier(PythonModel):
    """The pyfunc model: Slipway's classifier behind MLflow's `predict`."""

    def load_context(self, context: Any) -> None:
        self.loaded = load_model_dir(context.artifacts[MLFLOW_ARTIFACT])

    # No type hints: MLflow would read them as a schema of their own (the
    # signature above is the schema).
    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        """Predict digits.

        Args:
            model_input: `(N, 64)` pixels, 0-16 (an array, a DataFrame, or nested lists).

        Returns:
            {"label": `(N,)` int64, "probability": `(N,)` float32}.

        Raises:
            ValueError: the input is not `(N, 64)`.
        """
        values = model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input
        pixels = np.asarray(values, dtype=np.float32)
        if pixels.ndim != 2 or pixels.shape[1] != NUM_FEATURES:
            raise ValueError(f"expected (N, {NUM_FEATURES}) pixels, got shape {pixels.shape}")
        with torch.inference_mode():
            logits = self.loaded.module(torch.from_numpy(scale_pixels(pixels)))
            probability, label = torch.softmax(logits, dim=1).max(dim=1)
        return {
            "label": label.numpy().astype(np.int64),
            "probability": probability.numpy().astype(np.float32),
        }


def save_mlflow_model(
    model: torch.nn.Module,
    config: ModelConfig,
    path: str | os.PathLike[str],
    metadata: dict[str, Any],
    input_example: np.ndarray,
) -> Path:
    """Write `model` as an MLflow Model directory at `path` (must not exist).

    Args:
        model: the trained classifier (a DDP wrapper is unwrapped).
        config: its architecture.
        path: the directory to create.
        metadata: free-form facts kept in Slipway's config.json (metrics, data version).
        input_example: a few `(n, 64)` float32 rows of pixels, stored with the model.

    Returns:
        `path` as a `Path`.
    """
    import mlflow.pyfunc

    out = Path(path)
    with (
        tempfile.TemporaryDirectory(prefix="slipway-pyfunc-") as tmp,
        warnings.catch_warnings(),
    ):
        # MLflow asks for type hints on predict; the explicit signature is the schema.
        warnings.filterwarnings("ignore", message=".*type hint", category=UserWarning)
        # Without pip importable (Bazel's runfiles), conda.yaml names pip unversioned.
        logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
        own = save_model_dir(model, config, Path(tmp) / MLFLOW_ARTIFACT, metadata)
        mlflow.pyfunc.save_model(
            path=str(out),
            python_model=str(CODE_FILE),
            artifacts={MLFLOW_ARTIFACT: str(own)},
            code_paths=[str(Path(__file__).parent)],
            signature=signature(),
            input_example=np.asarray(input_example, dtype=np.float32),
            pip_requirements=pinned_requirements(),
        )
    return out
