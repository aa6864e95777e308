"""The Flask application: Open Inference Protocol (KServe V2) REST paths over one model.

Routes (see `openapi.json`, served at `/openapi.json`):

    GET  /v2/health/live              200 while the process runs
    GET  /v2/health/ready             200 once the model is loaded, else 503
    GET  /v2                          server metadata
    GET  /v2/models/<name>            model metadata (inputs, outputs)
    GET  /v2/models/<name>/ready      200 once loaded, else 503
    POST /v2/models/<name>/infer      tensors in, tensors out (`slipway.serving`)
    GET  /v2/models/<name>/versions/<version>          the same three, for the version
    GET  /v2/models/<name>/versions/<version>/ready    served only (another version: 404)
    POST /v2/models/<name>/versions/<version>/infer
    GET  /metrics                     Prometheus text format, all workers added up

Every error is JSON, `{"error": "..."}`: 4xx for the client's mistakes, 503 while the
model is not ready, 500 only for bugs.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import slipway
import torch
from flask import Blueprint, Flask, Response, current_app, g, request
from slipway.serving import (
    BINARY_HEADER,
    ModelHolder,
    ModelNotReadyError,
    RequestError,
    ServiceConfig,
    decode_infer_request,
    encode_infer_response,
    split_binary_body,
)
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from service import metrics

LOG = logging.getLogger("slipway.service")
SERVER_NAME = "slipway"
# Not resolved: under Bazel this file is a runfiles symlink.
OPENAPI_PATH = os.path.join(os.path.dirname(__file__), "openapi.json")

health = Blueprint("health", __name__)
models = Blueprint("models", __name__)
ops = Blueprint("ops", __name__)


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app and start loading the model on a background thread.

    Args:
        config: settings as in `ServiceConfig.from_mapping` (e.g. `{"model_dir": ...}`);
            None reads the `SLIPWAY_*` environment variables.

    Raises:
        ValueError: an invalid setting.
    """
    settings = ServiceConfig.from_env() if config is None else ServiceConfig.from_mapping(config)
    _use_gunicorn_logging()
    # Each gunicorn worker is one process of its own: torch threads per worker, not per host.
    torch.set_num_threads(settings.torch_threads)

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    holder = ModelHolder(settings)
    app.extensions["slipway_model"] = holder
    app.register_blueprint(health)
    app.register_blueprint(models)
    app.register_blueprint(ops)
    app.before_request(_start_timer)
    app.after_request(_record)
    app.register_error_handler(RequestError, _request_error)
    app.register_error_handler(ModelNotReadyError, _not_ready)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _internal_error)

    metrics.MODEL_READY.set(0)
    holder.start(on_done=lambda h: metrics.MODEL_READY.set(1 if h.ready else 0))
    return app


def _holder() -> ModelHolder:
    holder: ModelHolder = current_app.extensions["slipway_model"]
    return holder


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )


def _known_model(name: str) -> ModelHolder:
    holder = _holder()
    if name != holder.name:
        raise RequestError(
            f"unknown model {name!r}; this server serves {holder.name!r}", status=404
        )
    return holder


# Health ----------------------------------------------------------------------------


@health.get("/v2/health/live")
def live() -> Response:
    return _json({"live": True})


@health.get("/v2/health/ready")
def ready() -> Response:
    is_ready = _holder().ready
    return _json({"ready": is_ready}, 200 if is_ready else 503)


@health.get("/v2")
def server_metadata() -> Response:
    return _json(
        {"name": SERVER_NAME, "version": slipway.__version__, "extensions": ["binary_tensor_data"]}
    )


# Models ----------------------------------------------------------------------------


@models.get("/v2/models/<name>")
def model_metadata(name: str) -> Response:
    return _json(_known_model(name).model_metadata())


@models.get("/v2/models/<name>/ready")
def model_ready(name: str) -> Response:
    holder = _known_model(name)
    body: dict[str, Any] = {"name": holder.name, "ready": holder.ready, "state": holder.state}
    return _json(body, 200 if holder.ready else 503)


@models.post("/v2/models/<name>/infer")
def infer(name: str) -> Response:
    return _infer(_known_model(name))


@models.get("/v2/models/<name>/versions/<version>")
def version_metadata(name: str, version: str) -> Response:
    holder = _known_model(name)
    holder.check_version(version)
    return _json(holder.model_metadata())


@models.get("/v2/models/<name>/versions/<version>/ready")
def version_ready(name: str, version: str) -> Response:
    holder = _known_model(name)
    if holder.ready:
        holder.check_version(version)  # 404 for a version not served
    body: dict[str, Any] = {
        "name": holder.name,
        "version": version,
        "ready": holder.ready,
        "state": holder.state,
    }
    return _json(body, 200 if holder.ready else 503)


@models.post("/v2/models/<name>/versions/<version>/infer")
def version_infer(name: str, version: str) -> Response:
    holder = _known_model(name)
    holder.require()  # the version is known once the model is loaded
    holder.check_version(version)
    return _infer(holder)


def _infer(holder: ModelHolder) -> Response:
    header, binary = split_binary_body(
        request.get_data(cache=False), request.headers.get(BINARY_HEADER)
    )
    try:
        body = json.loads(header)
    except (
        ValueError,
        RecursionError,
    ) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise RequestError(
            f"malformed JSON: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    decoded = decode_infer_request(body, holder.config.max_batch_size, binary)
    start = time.perf_counter()
    logits = holder.forward(decoded.pixels)
    metrics.FORWARD_SECONDS.observe(time.perf_counter() - start)
    metrics.INFERENCE_ROWS.inc(len(decoded.pixels))
    answer, binary_out = encode_infer_response(logits, decoded, holder.name, holder.version)
    if not decoded.binary_outputs:
        return _json(answer)
    json_header = json.dumps(answer, separators=(",", ":")).encode()
    response = Response(json_header + binary_out, content_type="application/octet-stream")
    response.headers[BINARY_HEADER] = str(len(json_header))
    return response


# Operations ------------------------------------------------------------------------


@ops.get("/metrics")
def prometheus_metrics() -> Response:
    payload, content_type = metrics.exposition()
    return Response(payload, mimetype=None, content_type=content_type)


@ops.get("/openapi.json")
def openapi() -> Response:
    with open(OPENAPI_PATH, encoding="utf-8") as f:
        return Response(f.read(), mimetype="application/json")


# Errors and instrumentation --------------------------------------------------------


def _request_error(exc: RequestError) -> Response:
    return _json({"error": str(exc)}, exc.status)


def _not_ready(exc: ModelNotReadyError) -> Response:
    return _json({"error": str(exc)}, 503)


def _http_error(exc: HTTPException) -> Response:
    if isinstance(exc, RequestEntityTooLarge):
        message = (
            f"request body too large: the limit is {current_app.config['MAX_CONTENT_LENGTH']} bytes"
        )
    elif exc.code == 404:
        message = f"not found: {request.path}"
    elif exc.code == 405:
        message = f"method {request.method} not allowed on {request.path}"
    else:
        message = exc.description or exc.name
    response = _json({"error": message}, exc.code or 500)
    valid_methods = getattr(exc, "valid_methods", None)
    if valid_methods:  # a 405 must say what is allowed (RFC 9110)
        response.headers["Allow"] = ", ".join(valid_methods)
    return response


def _internal_error(exc: Exception) -> Response:
    LOG.exception("unhandled error on %s %s", request.method, request.path)
    return _json({"error": "internal server error"}, 500)


def _start_timer() -> None:
    g.start = time.perf_counter()


def _record(response: Response) -> Response:
    # Route templates and known methods, else "other": a client cannot grow the label set.
    endpoint = request.url_rule.rule if request.url_rule is not None else metrics.OTHER
    method = request.method if request.method in metrics.METHODS else metrics.OTHER
    metrics.REQUESTS.labels(method, endpoint, str(response.status_code)).inc()
    if "start" in g:
        metrics.REQUEST_SECONDS.labels(endpoint).observe(time.perf_counter() - g.start)
    return response


def _use_gunicorn_logging() -> None:
    # Under gunicorn, send Slipway's log lines (e.g. why a model failed to load) to its error log.
    gunicorn_log = logging.getLogger("gunicorn.error")
    slipway_log = logging.getLogger("slipway")
    if gunicorn_log.handlers and not slipway_log.handlers:
        slipway_log.handlers = list(gunicorn_log.handlers)
        slipway_log.setLevel(logging.INFO)
        slipway_log.propagate = False
