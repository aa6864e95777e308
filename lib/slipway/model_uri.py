"""Registered model names, aliases and `models:/` URIs: plain strings, no MLflow import.

Kept apart from `slipway.registry` (MLflow, torch) so that the client, the pipeline
runner and the service's configuration can name models without loading either.
URIs take MLflow's forms `models:/<name>@<alias>` and `models:/<name>/<version>`
(https://mlflow.org/docs/latest/ml/model-registry/).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MODEL_NAME = "digits-classifier"
CHAMPION = "champion"
CHALLENGER = "challenger"

_URI_RE = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelUri:
    """A parsed `models:/<name>@<alias>` or `models:/<name>/<version>` URI."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"models:/{self.name}@{self.alias}"
        return f"models:/{self.name}/{self.version}"


def parse_model_uri(uri: str) -> ModelUri:
    """Parse a registry model URI.

    Raises:
        ValueError: `uri` has neither form.
    """
    match = _URI_RE.match(uri.strip())
    if not match:
        raise ValueError(
            f"not a model URI (want models:/<name>@<alias> or models:/<name>/<n>): {uri}"
        )
    return ModelUri(name=match["name"], alias=match["alias"], version=match["version"])
