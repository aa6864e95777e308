"""The latency floor of the service benchmark: a minimal WSGI app, no model.

It parses the request's JSON body as the service does and answers a fixed V2
response, so served by gunicorn with the service's configuration it measures what
HTTP, gunicorn and JSON parsing cost before Slipway does anything.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

_ANSWER = json.dumps(
    {
        "model_name": "digits-classifier",
        "model_version": "",
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [1], "data": [0]},
            {"name": "probability", "datatype": "FP32", "shape": [1], "data": [0.5]},
        ],
    },
    separators=(",", ":"),
).encode()
_HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(_ANSWER)))]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """POST: parse the JSON body, answer the fixed response; GET: the same (readiness)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        json.loads(environ["wsgi.input"].read(length))
    start_response("200 OK", _HEADERS)
    return [_ANSWER]
