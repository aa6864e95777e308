"""Classifiers for 8x8 digit images, built from a config, and a plain on-disk format.

Model directory format (version 1), written by `save_model_dir`:

    model.pt      the module's `state_dict`, saved with `torch.save` (tensors only, so
                  it loads with `weights_only=True`)
    config.json   {"format": 1, "model": <ModelConfig>, "preprocessing": <spec>,
                   "metadata": {...free-form: metrics, data version, run id...}}

Training logs it inside an MLflow Model (slipway.pyfunc), as the run artifact `model`;
versions registered before that hold this directory itself. `load_model_dir` reads both.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slipway import preprocessing
from slipway.errors import ModelFormatError
from slipway.io import atomic_path, read_json, write_json
from slipway.schema import IMAGE_SIDE, NUM_CLASSES, NUM_FEATURES

MODEL_FORMAT = 1
WEIGHTS_NAME = "model.pt"
CONFIG_NAME = "config.json"
# In an MLflow Model directory (slipway.pyfunc): artifacts/<MLFLOW_ARTIFACT>/ holds
# the model directory above.
MLFLOW_ARTIFACT = "slipway_model"
ARCHITECTURES = ("mlp", "cnn")


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a digit classifier.

    Attributes:
        architecture: "mlp" (fully connected on the 64 pixels) or "cnn" (two 3x3
            convolutions on the 1x8x8 image, then a linear head).
        hidden: widths of the hidden layers (mlp) or channel counts (cnn).
        dropout: dropout probability after each hidden layer, in [0, 1).
        num_features: input width (64).
        num_classes: output width (10).
    """

    architecture: str = "mlp"
    hidden: tuple[int, ...] = (512, 256)
    dropout: float = 0.2
    num_features: int = NUM_FEATURES
    num_classes: int = NUM_CLASSES

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {self.architecture!r}; expected one of {ARCHITECTURES}"
            )
        if not self.hidden or any(int(h) <= 0 for h in self.hidden):
            raise ValueError(f"hidden sizes must be positive integers, got {self.hidden!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able dict (hidden as a list)."""
        out = asdict(self)
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        """Build from `to_dict` output.

        Raises:
            ValueError: unknown keys or invalid values.
        """
        unknown = set(raw) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        values = dict(raw)
        if "hidden" in values:
            values["hidden"] = tuple(values["hidden"])
        return cls(**values)


class MLP(nn.Module):
    """Fully connected classifier: `(N, 64) float32 -> (N, 10)` logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = config.num_features
        for h in config.hidden:
            layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(config.dropout)]
            width = h
        layers.append(nn.Linear(width, config.num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map `(N, 64)` float32 inputs to `(N, num_classes)` logits."""
        return self.net(x)


class SmallCNN(nn.Module):
    """Convolutional classifier: `(N, 64) float32` viewed as `(N, 1, 8, 8)` -> `(N, 10)` logits."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if config.num_features != IMAGE_SIDE * IMAGE_SIDE:
            raise ValueError("the cnn architecture needs 8x8 = 64 input features")
        layers: list[nn.Module] = []
        channels = 1
        for h in config.hidden:
            layers += [nn.Conv2d(channels, h, kernel_size=3, padding=1), nn.ReLU()]
            channels = h
        self.features = nn.Sequential(*layers, nn.Dropout(config.dropout))
        self.head = nn.Linear(channels * IMAGE_SIDE * IMAGE_SIDE, config.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map `(N, 64)` float32 inputs to `(N, num_classes)` logits."""
        image = x.view(-1, 1, IMAGE_SIDE, IMAGE_SIDE)
        return self.head(self.features(image).flatten(1))


def build_model(config: ModelConfig) -> nn.Module:
    """Return a freshly initialised classifier for `config` (uses the global torch RNG)."""
    if config.architecture == "cnn":
        return SmallCNN(config)
    return MLP(config)


def count_parameters(model: nn.Module) -> int:
    """Return the number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@dataclass
class LoadedModel:
    """A model read back from disk or the registry, in eval mode."""

    module: nn.Module
    config: ModelConfig
    metadata: dict[str, Any] = field(default_factory=dict)


def weights_sha256(model: nn.Module) -> str:
    """Return the hex SHA-256 of a module's state (names, dtypes, shapes, values), in key order.

    Equal digests mean bit-identical weights, e.g. across the ranks of a DDP run.
    """
    module = getattr(model, "module", model)
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{t.dtype}:{tuple(t.shape)}:".encode())
        digest.update(t.numpy().tobytes())
    return digest.hexdigest()


def save_model_dir(
    model: nn.Module,
    config: ModelConfig,
    path: str | os.PathLike[str],
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `model` in the model directory format (see module docstring) to `path`.

    A DDP-wrapped model is unwrapped first. Each file is written atomically.

    Returns:
        `path` as a `Path`.
    """
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    module = getattr(model, "module", model)
    state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        torch.save(state, tmp)
    write_json(
        out / CONFIG_NAME,
        {
            "format": MODEL_FORMAT,
            "model": config.to_dict(),
            "preprocessing": preprocessing.spec(),
            "metadata": metadata or {},
        },
    )
    return out


def load_model_dir(path: str | os.PathLike[str]) -> LoadedModel:
    """Read a model directory written by `save_model_dir`; the module is in eval mode.

    `path` may also be an MLflow Model directory written by
    `slipway.pyfunc.save_mlflow_model` (it holds an `MLmodel` file): the model
    directory inside it is read directly, without MLflow.

    Raises:
        ModelFormatError: missing files, an unknown format, a different preprocessing,
            or weights that do not fit the config.
    """
    p = Path(path)
    if (p / "MLmodel").exists():
        p = p / "artifacts" / MLFLOW_ARTIFACT
    config_path, weights_path = p / CONFIG_NAME, p / WEIGHTS_NAME
    if not config_path.exists() or not weights_path.exists():
        raise ModelFormatError(
            f"not a model directory (needs {CONFIG_NAME} and {WEIGHTS_NAME}): {p}"
        )
    try:
        raw = read_json(config_path)
    except ValueError as exc:
        raise ModelFormatError(f"corrupt {config_path}: {exc}") from exc
    if raw.get("format") != MODEL_FORMAT:
        raise ModelFormatError(f"unsupported model format {raw.get('format')!r} in {p}")
    if raw.get("preprocessing") != preprocessing.spec():
        raise ModelFormatError(
            f"model in {p} expects a different preprocessing: {raw.get('preprocessing')}"
        )
    try:
        config = ModelConfig.from_dict(raw["model"])
        module = build_model(config)
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
    except (ValueError, KeyError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as exc:
        # UnpicklingError: weights_only=True refused a pickled object (not a tensor dict).
        raise ModelFormatError(f"cannot load model from {p}: {str(exc).splitlines()[0]}") from exc
    module.eval()
    return LoadedModel(module=module, config=config, metadata=dict(raw.get("metadata", {})))
