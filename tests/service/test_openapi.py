"""Property-based run of schemathesis against the OpenAPI document the service serves.

The document is read from the tree (schemathesis generates tests at import time, before
any server runs); `test_served_document_is_this_one` checks the server serves the same.

Every operation gets generated requests, valid and invalid by the schema; each answer
must be documented (status, content type, body schema) and never a 5xx.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

if TYPE_CHECKING:
    from conftest import Server

# Not resolved: under Bazel the tree is a runfiles symlink farm.
OPENAPI = Path(__file__).parent.parent.parent / "service" / "openapi.json"
schema = schemathesis.openapi.from_path(str(OPENAPI))


def test_served_document_is_this_one(server: Server) -> None:
    assert requests.get(f"{server.url}/openapi.json").json() == json.loads(OPENAPI.read_text())


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case, server: Server) -> None:
    # A body can match the schema and still be refused with a 400 (data that does not
    # fill the declared shape), which JSON Schema cannot express.
    case.call_and_validate(base_url=server.url, excluded_checks=[positive_data_acceptance])
