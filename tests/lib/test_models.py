"""slipway.models: config validation, both architectures, the model directory format."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import torch
from slipway import models
from slipway.errors import ModelFormatError


@pytest.mark.parametrize(
    "config",
    [
        models.ModelConfig(),
        models.ModelConfig(architecture="cnn", hidden=(4, 8)),
    ],
)
def test_forward_shapes(config: models.ModelConfig) -> None:
    model = models.build_model(config)
    assert model(torch.zeros(5, 64)).shape == (5, 10)
    assert models.count_parameters(model) > 0


def test_config_validation_and_roundtrip() -> None:
    cfg = models.ModelConfig(hidden=(32, 16), dropout=0.3)
    assert models.ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    for bad in ({"architecture": "rnn"}, {"hidden": ()}, {"hidden": (0,)}, {"dropout": 1.0}):
        with pytest.raises(ValueError):
            models.ModelConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown"):
        models.ModelConfig.from_dict({"layers": 3})


def test_save_and_load_model_dir(tmp_path: Path) -> None:
    cfg = models.ModelConfig(hidden=(16,))
    torch.manual_seed(0)
    model = models.build_model(cfg).eval()
    models.save_model_dir(model, cfg, tmp_path / "m", {"val_accuracy": 0.5})
    loaded = models.load_model_dir(tmp_path / "m")
    x = torch.rand(3, 64)
    assert torch.equal(loaded.module(x), model(x))
    assert loaded.config == cfg and loaded.metadata == {"val_accuracy": 0.5}
    assert not loaded.module.training


def test_load_model_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="not a model directory"):
        models.load_model_dir(tmp_path)
    cfg = models.ModelConfig(hidden=(16,))
    models.save_model_dir(models.build_model(cfg), cfg, tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["model"]["hidden"] = [8]
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelFormatError, match="cannot load"):
        models.load_model_dir(tmp_path)
    raw["format"] = 99
    (tmp_path / "config.json").write_text(json.dumps(raw))
    with pytest.raises(ModelFormatError, match="unsupported"):
        models.load_model_dir(tmp_path)


class _Payload:
    """An object that is not a tensor: weights_only=True refuses to unpickle it."""


def test_a_pickled_object_is_a_model_format_error(tmp_path: Path) -> None:
    cfg = models.ModelConfig(hidden=(16,))
    models.save_model_dir(models.build_model(cfg), cfg, tmp_path)
    torch.save({"weight": _Payload()}, tmp_path / models.WEIGHTS_NAME)
    with pytest.raises(ModelFormatError, match="cannot load model"):
        models.load_model_dir(tmp_path)


def test_saved_model_files_follow_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        cfg = models.ModelConfig(hidden=(16,))
        models.save_model_dir(models.build_model(cfg), cfg, tmp_path / "m")
    finally:
        os.umask(old)
    modes = {
        p.name: stat.S_IMODE(p.stat().st_mode)
        for p in [tmp_path / "m", *(tmp_path / "m").iterdir()]
    }
    assert modes == {"m": 0o755, models.WEIGHTS_NAME: 0o644, models.CONFIG_NAME: 0o644}
