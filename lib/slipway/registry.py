"""The model registry: MLflow runs, registered model versions and their aliases.

Slipway talks to MLflow's tracking and model-registry API through `MlflowClient`
(https://mlflow.org/docs/latest/ml/model-registry/). The embedded default is a SQLite
store at `<data_dir>/mlflow.db` with artifacts under `<data_dir>/mlartifacts`;
`MLFLOW_TRACKING_URI` (or `--tracking-uri`) points at a real tracking server instead.

A model version's artifacts are a plain model directory (see `slipway.models`) logged
under the run's `model` artifact path. Aliases name the roles: `challenger` is the
newest trained version, `champion` the one serving. Model URIs take the MLflow forms
`models:/<name>@<alias>` and `models:/<name>/<version>`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from slipway.errors import (
    AliasConflictError,
    ModelNotFoundError,
    RegistryError,
    RegistryUnavailableError,
)
from slipway.model_uri import (  # noqa: F401 - re-exported: slipway.registry.CHAMPION etc.
    CHALLENGER,
    CHAMPION,
    DEFAULT_MODEL_NAME,
    ModelUri,
    parse_model_uri,
)
from slipway.models import LoadedModel, load_model_dir

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from torch import nn

LOG = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "slipway-digits"
MODEL_ARTIFACT_PATH = "model"
DB_NAME = "mlflow.db"
ARTIFACTS_DIR_NAME = "mlartifacts"
PROBE_TIMEOUT_SECONDS = 5.0

# Fail in seconds, not minutes, when a server is down (MLflow's default retries back off
# for several minutes); and keep MLflow's artifact progress bars out of job logs.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def embedded_tracking_uri(data_dir: str | os.PathLike[str]) -> str:
    """Return the SQLite tracking/registry URI of the embedded store under `data_dir`."""
    return f"sqlite:///{Path(data_dir).absolute() / DB_NAME}"


def resolve_tracking_uri(tracking_uri: str | None, data_dir: str | os.PathLike[str]) -> str:
    """Return `tracking_uri` if set, else the embedded store's URI for `data_dir`."""
    return tracking_uri or embedded_tracking_uri(data_dir)


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version: name, version number (string), run, source, aliases."""

    name: str
    version: str
    run_id: str | None
    source: str
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def uri(self) -> str:
        """`models:/<name>/<version>`."""
        return f"models:/{self.name}/{self.version}"


def probe(tracking_uri: str, timeout: float = PROBE_TIMEOUT_SECONDS) -> None:
    """Check that an HTTP(S) tracking server answers; other schemes pass unchecked.

    Any HTTP response counts as reachable (a proxy may not expose `/health`).

    Raises:
        RegistryUnavailableError: connection refused, DNS failure or timeout.
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme not in ("http", "https"):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout):  # noqa: S310 - scheme checked above
            pass
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise RegistryUnavailableError(
            f"cannot reach the MLflow tracking server at {tracking_uri}: {reason}"
        ) from exc


@contextlib.contextmanager
def _translate(what: str) -> Iterator[None]:
    """Turn MLflow and connection exceptions into Slipway registry errors."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        text = str(exc).splitlines()[0] if str(exc) else code
        if code == "RESOURCE_DOES_NOT_EXIST" or "not found" in text.lower():
            raise ModelNotFoundError(f"{what}: {text}") from exc
        if "max retries" in text.lower() or "connection" in text.lower():
            raise RegistryUnavailableError(f"{what}: tracking server unreachable: {text}") from exc
        raise RegistryError(f"{what}: {text}") from exc
    except OSError as exc:  # requests' ConnectionError is an OSError
        raise RegistryUnavailableError(f"{what}: {exc}") from exc


class Registry:
    """Runs, model versions and aliases in one MLflow tracking/registry store.

    Args:
        tracking_uri: an MLflow URI (`sqlite:///...`, `http://host:port`, ...).
        artifact_root: where new experiments store artifacts; defaults to
            `<db dir>/mlartifacts` for SQLite stores and to the server's choice otherwise.

    Raises:
        RegistryUnavailableError: an HTTP(S) server does not answer.
    """

    def __init__(self, tracking_uri: str, artifact_root: str | None = None) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        if tracking_uri.startswith("sqlite:///"):
            db = Path(tracking_uri.removeprefix("sqlite:///"))
            db.parent.mkdir(parents=True, exist_ok=True)
            if artifact_root is None:
                artifact_root = (db.parent / ARTIFACTS_DIR_NAME).absolute().as_uri()
        self.artifact_root = artifact_root
        probe(tracking_uri)
        with _translate(f"connecting to {tracking_uri}"):
            self.client: MlflowClient = MlflowClient(
                tracking_uri=tracking_uri, registry_uri=tracking_uri
            )

    @classmethod
    def for_data_dir(
        cls, data_dir: str | os.PathLike[str], tracking_uri: str | None = None
    ) -> Registry:
        """Open `tracking_uri`, or the embedded store under `data_dir` when it is None."""
        return cls(resolve_tracking_uri(tracking_uri, data_dir))

    # Runs -------------------------------------------------------------------------

    def experiment_id(self, name: str = DEFAULT_EXPERIMENT) -> str:
        """Return the id of experiment `name`, creating it (with the artifact root) if needed."""
        from mlflow.exceptions import MlflowException

        with _translate(f"experiment {name!r}"):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return str(found.experiment_id)
            try:
                return str(
                    self.client.create_experiment(name, artifact_location=self.artifact_root)
                )
            except MlflowException:
                found = self.client.get_experiment_by_name(name)  # created concurrently
                if found is None:
                    raise
                return str(found.experiment_id)

    def start_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        run_name: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> str:
        """Create a run in `experiment` and return its id."""
        exp_id = self.experiment_id(experiment)
        with _translate("creating a run"):
            run = self.client.create_run(exp_id, run_name=run_name, tags=tags or {})
        return str(run.info.run_id)

    def reopen_run(self, run_id: str) -> None:
        """Mark an existing (e.g. killed) run as running again, to continue logging to it.

        Raises:
            ModelNotFoundError: no run `run_id`.
        """
        with _translate(f"run {run_id}"):
            self.client.update_run(run_id, status="RUNNING")

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        """Log parameters (stringified); re-logging an identical value is allowed."""
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in sorted(params.items())]
        with _translate("logging parameters"):
            self.client.log_batch(run_id, params=items)

    def log_metrics(self, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
        """Log scalar metrics at `step`."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step) for k, v in sorted(metrics.items())]
        with _translate("logging metrics"):
            self.client.log_batch(run_id, metrics=items)

    def log_artifacts(
        self, run_id: str, local_dir: str | os.PathLike[str], artifact_path: str | None = None
    ) -> None:
        """Upload the files under `local_dir` to the run's `artifact_path`."""
        with _translate("logging artifacts"):
            self.client.log_artifacts(run_id, str(local_dir), artifact_path)

    def set_run_tags(self, run_id: str, tags: dict[str, str]) -> None:
        """Set string tags on a run."""
        with _translate("tagging a run"):
            for key, value in tags.items():
                self.client.set_tag(run_id, key, value)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        """Mark a run FINISHED (or FAILED/KILLED)."""
        with _translate("ending a run"):
            self.client.set_terminated(run_id, status=status)

    def metric_steps(self, run_id: str, key: str) -> set[int]:
        """Return the steps at which metric `key` of a run has been logged."""
        with _translate(f"run {run_id}"):
            return {int(m.step) for m in self.client.get_metric_history(run_id, key)}

    def get_run_metrics(self, run_id: str) -> dict[str, float]:
        """Return the latest value of each metric of a run."""
        with _translate(f"run {run_id}"):
            return dict(self.client.get_run(run_id).data.metrics)

    # Model versions ---------------------------------------------------------------

    def register_model(
        self,
        name: str,
        run_id: str,
        artifact_path: str = MODEL_ARTIFACT_PATH,
        tags: dict[str, str] | None = None,
    ) -> ModelVersionInfo:
        """Register the run's `artifact_path` as a new version of model `name` (created if new)."""
        from mlflow.exceptions import MlflowException

        with _translate(f"registering model {name!r}"):
            try:
                self.client.get_registered_model(name)
            except MlflowException:
                try:
                    self.client.create_registered_model(name)
                except MlflowException:
                    self.client.get_registered_model(name)  # created concurrently
            run = self.client.get_run(run_id)
            source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
            mv = self.client.create_model_version(
                name,
                source=source,
                run_id=run_id,
                tags={k: str(v) for k, v in (tags or {}).items()},
            )
        LOG.info("registered %s version %s", name, mv.version)
        return self.get_version(name, version=str(mv.version))

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `models:/<name>@<alias>` at `version` (moving it if already set)."""
        with _translate(f"setting alias {alias!r} of {name!r}"):
            self.client.set_registered_model_alias(name, alias, str(version))
        LOG.info("alias %s@%s -> version %s", name, alias, version)

    def compare_and_set_alias(
        self, name: str, alias: str, expected: str | None, version: str
    ) -> None:
        """Point `alias` at `version` only if it still points at `expected` (None: unset).

        MLflow has no atomic compare-and-set, so the check and the move run under a
        lock: a file lock next to the embedded store's database, which every Slipway
        process on the machine shares. Against a tracking server the check is made
        immediately before the move (two requests apart).

        Raises:
            AliasConflictError: the alias points elsewhere; the message names both versions.
        """
        with self._alias_lock():
            current = self.find_version(name, alias)
            found = current.version if current is not None else None
            if found != expected:
                raise AliasConflictError(
                    f"{name}@{alias} moved to version {found} (it was {expected} when read); "
                    f"not moving it to version {version}"
                )
            self.set_alias(name, alias, version)

    @contextlib.contextmanager
    def _alias_lock(self) -> Iterator[None]:
        if not self.tracking_uri.startswith("sqlite:///"):
            yield
            return
        import fcntl

        lock_path = Path(self.tracking_uri.removeprefix("sqlite:///") + ".alias-lock")
        with open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def set_version_tags(self, name: str, version: str, tags: dict[str, Any]) -> None:
        """Set string tags on a model version."""
        with _translate(f"tagging {name!r} version {version}"):
            for key, value in tags.items():
                self.client.set_model_version_tag(name, str(version), key, str(value))

    def get_version(
        self, name: str, *, version: str | int | None = None, alias: str | None = None
    ) -> ModelVersionInfo:
        """Look up a model version by number or alias (exactly one of them).

        Raises:
            ValueError: both or neither of `version` and `alias`.
            ModelNotFoundError: the model, version or alias does not exist.
        """
        from mlflow.exceptions import MlflowException

        if (version is None) == (alias is None):
            raise ValueError("give exactly one of version and alias")
        with _translate(f"model {name!r}"):
            try:
                self.client.get_registered_model(name)
            except MlflowException as exc:
                raise ModelNotFoundError(f"no registered model named {name!r}") from exc
            try:
                if alias is not None:
                    mv = self.client.get_model_version_by_alias(name, alias)
                else:
                    mv = self.client.get_model_version(name, str(version))
            except MlflowException as exc:
                which = f"alias {alias!r}" if alias is not None else f"version {version}"
                raise ModelNotFoundError(f"model {name!r} has no {which}") from exc
        return ModelVersionInfo(
            name=name,
            version=str(mv.version),
            run_id=mv.run_id,
            source=str(mv.source),
            aliases=tuple(getattr(mv, "aliases", ()) or ()),
            tags=dict(mv.tags or {}),
        )

    def find_version(self, name: str, alias: str) -> ModelVersionInfo | None:
        """Like `get_version(name, alias=alias)` but None when the model or alias is absent."""
        try:
            return self.get_version(name, alias=alias)
        except ModelNotFoundError:
            return None

    def resolve(self, uri: str) -> ModelVersionInfo:
        """Return the version a `models:/...` URI names.

        Raises:
            ValueError: malformed URI. ModelNotFoundError: nothing registered under it.
        """
        parsed = parse_model_uri(uri)
        return self.get_version(parsed.name, version=parsed.version, alias=parsed.alias)

    def download_model(self, info: ModelVersionInfo, dst: str | os.PathLike[str]) -> Path:
        """Download a version's model directory into `dst` and return its path."""
        import mlflow.artifacts

        with _translate(f"downloading {info.uri}"):
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=info.source, dst_path=str(dst), tracking_uri=self.tracking_uri
            )
        return Path(local)

    def load_model(self, uri: str) -> LoadedModel:
        """Resolve `uri`, download the version and load it (eval mode).

        The returned metadata gains `registered_name`, `registered_version` and `model_uri`.

        Raises:
            ModelNotFoundError, RegistryUnavailableError, ModelFormatError.
        """
        info = self.resolve(uri)
        with tempfile.TemporaryDirectory(prefix="slipway-model-") as tmp:
            loaded = load_model_dir(self.download_model(info, tmp))
        loaded.metadata.update(
            registered_name=info.name,
            registered_version=info.version,
            model_uri=uri,
            run_id=info.run_id,
        )
        return loaded


def load_model(
    uri: str, tracking_uri: str | None = None, data_dir: str | os.PathLike[str] | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Load `models:/<name>@<alias>` (or `/<version>`) as `(module in eval mode, metadata)`.

    The store is `tracking_uri`, else `$MLFLOW_TRACKING_URI`, else the embedded store
    under `data_dir` (default: `slipway.cli.default_data_dir()`). The module maps
    `(N, 64)` float32 inputs scaled by `slipway.preprocessing` to `(N, 10)` logits.

    Raises:
        ValueError, ModelNotFoundError, RegistryUnavailableError, ModelFormatError.
    """
    from slipway.cli import default_data_dir

    uri_store = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    registry = Registry.for_data_dir(
        data_dir if data_dir is not None else default_data_dir(), uri_store
    )
    loaded = registry.load_model(uri)
    meta = dict(loaded.metadata)
    meta["model_config"] = loaded.config.to_dict()
    return loaded.module, meta
