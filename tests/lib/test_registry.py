"""slipway.registry against the embedded SQLite store and a real `mlflow server`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from slipway import registry
from slipway.errors import ModelNotFoundError, RegistryUnavailableError
from slipway.models import ModelConfig, build_model, save_model_dir


def test_parse_model_uri() -> None:
    assert registry.parse_model_uri("models:/m@champion") == registry.ModelUri(
        "m", alias="champion"
    )
    assert registry.parse_model_uri("models:/m/3") == registry.ModelUri("m", version="3")
    assert str(registry.ModelUri("m", alias="a")) == "models:/m@a"
    for bad in ("models:/m", "runs:/x/model", "models:/m@a/1"):
        with pytest.raises(ValueError):
            registry.parse_model_uri(bad)


def test_embedded_uri_is_under_data_dir(tmp_path: Path) -> None:
    uri = registry.embedded_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert registry.resolve_tracking_uri("http://x", tmp_path) == "http://x"


def _register_two_versions(reg: registry.Registry, tmp_path: Path, name: str) -> list[str]:
    versions = []
    for i in range(2):
        cfg = ModelConfig(hidden=(8,))
        torch.manual_seed(i)
        model_dir = save_model_dir(build_model(cfg), cfg, tmp_path / f"m{i}", {"i": i})
        run_id = reg.start_run("tests")
        reg.log_params(run_id, {"i": i})
        reg.log_metrics(run_id, {"acc": 0.5 + i / 10}, step=1)
        reg.log_artifacts(run_id, model_dir, registry.MODEL_ARTIFACT_PATH)
        versions.append(reg.register_model(name, run_id, tags={"i": str(i)}).version)
        reg.end_run(run_id)
    return versions


def _exercise(reg: registry.Registry, tmp_path: Path) -> None:
    v1, v2 = _register_two_versions(reg, tmp_path, "digits-test")
    assert (v1, v2) == ("1", "2")
    reg.set_alias("digits-test", registry.CHAMPION, v1)
    reg.set_alias("digits-test", registry.CHALLENGER, v2)
    assert reg.resolve("models:/digits-test@champion").version == "1"
    assert reg.get_version("digits-test", alias="challenger").tags["i"] == "1"
    reg.set_alias("digits-test", registry.CHAMPION, v2)  # moving an alias
    info = reg.resolve("models:/digits-test@champion")
    assert info.version == "2" and set(info.aliases) == {"champion", "challenger"}
    loaded = reg.load_model("models:/digits-test/1")
    assert loaded.metadata["i"] == 0 and loaded.metadata["registered_version"] == "1"
    with pytest.raises(ModelNotFoundError, match="no alias 'gold'"):
        reg.resolve("models:/digits-test@gold")
    with pytest.raises(ModelNotFoundError, match="version 9"):
        reg.get_version("digits-test", version=9)
    with pytest.raises(ModelNotFoundError, match="no registered model"):
        reg.get_version("nothing-here", alias="champion")
    assert reg.find_version("digits-test", "gold") is None
    assert reg.get_run_metrics(info.run_id or "")["acc"] == pytest.approx(0.6)


def test_embedded_registry_roundtrip(tmp_path: Path) -> None:
    reg = registry.Registry.for_data_dir(tmp_path / "data")
    assert (tmp_path / "data" / "mlflow.db").exists()
    _exercise(reg, tmp_path)
    assert any((tmp_path / "data" / "mlartifacts").rglob("model.pt"))
    module, meta = registry.load_model("models:/digits-test@champion", data_dir=tmp_path / "data")
    assert module(torch.zeros(1, 64)).shape == (1, 10) and meta["registered_version"] == "2"


@pytest.mark.server
def test_real_tracking_server_roundtrip(mlflow_server: str, tmp_path: Path) -> None:
    reg = registry.Registry(mlflow_server)
    _exercise(reg, tmp_path)


def test_unreachable_server_fails_fast(unreachable_uri: str) -> None:
    import time

    t0 = time.monotonic()
    with pytest.raises(RegistryUnavailableError, match="cannot reach"):
        registry.Registry(unreachable_uri)
    assert time.monotonic() - t0 < 10
