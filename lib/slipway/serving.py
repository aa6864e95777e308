"""Online inference: the model a server process holds, and the Open Inference Protocol.

The service (`service/`) is a thin Flask layer over this module. Request and response
bodies follow the Open Inference Protocol (KServe V2) REST JSON form
(https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/):

    request   {"id": "...", "inputs": [{"name": "pixels", "datatype": "FP32",
                "shape": [N, 64], "data": [...N*64 numbers, flat or nested...]}],
               "outputs": [{"name": "label"}]}          # "outputs" is optional
    response  {"model_name": "...", "model_version": "...", "id": "...",
               "outputs": [{"name": "label", "datatype": "INT64", "shape": [N], "data": [...]}]}

The binary tensor data extension (as KServe and Triton implement it,
https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md):
a body whose `Inference-Header-Content-Length` header is H holds the JSON above in
its first H bytes and raw little-endian, row-major tensor bytes after it. An input
sent that way has `"parameters": {"binary_data_size": <bytes>}` instead of `data`;
an output asked for with `"parameters": {"binary_data": true}` (or every output,
with the request's `"parameters": {"binary_data_output": true}`) comes back the
same way, its JSON carrying `binary_data_size`, its bytes after the JSON header in
output order.

The N rows of one request are one batch: one forward pass. Pixel values are raw counts
in [0, 16] (see `slipway.data`), scaled here by `slipway.preprocessing`.

A `ModelHolder` loads its model on a background thread, so a server answers health
checks (live, not ready) while the registry is slow or down; it retries only while the
registry is unreachable, and keeps the reason when loading fails for good.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from slipway.errors import RegistryUnavailableError, SlipwayError
from slipway.model_uri import DEFAULT_MODEL_NAME, parse_model_uri
from slipway.preprocessing import scale_pixels
from slipway.schema import NUM_CLASSES, NUM_FEATURES, PIXEL_MAX

LOG = logging.getLogger(__name__)

INPUT_NAME = "pixels"
LOGITS = "logits"
LABEL = "label"
PROBABILITY = "probability"
OUTPUT_NAMES = (LOGITS, LABEL, PROBABILITY)
DEFAULT_OUTPUTS = (LABEL, PROBABILITY)

# Numeric V2 datatypes accepted for the pixel input; every one is cast to float32.
NUMERIC_DATATYPES = frozenset(
    {
        "FP16",
        "FP32",
        "FP64",
        "INT8",
        "INT16",
        "INT32",
        "INT64",
        "UINT8",
        "UINT16",
        "UINT32",
        "UINT64",
    }
)
V2_DATATYPES = NUMERIC_DATATYPES | {"BOOL", "BYTES", "BF16"}
# The binary tensor data extension: its header, and each datatype's little-endian layout.
BINARY_HEADER = "Inference-Header-Content-Length"
BINARY_DTYPES = {
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "INT8": "i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
}

ENV_PREFIX = "SLIPWAY_"

# Model states, as reported by readiness endpoints and the `slipway_model_ready` gauge.
LOADING = "loading"
READY = "ready"
FAILED = "failed"


class RequestError(SlipwayError):
    """A client's request is invalid; `status` is the HTTP status to answer with (4xx)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ModelNotReadyError(SlipwayError):
    """The model is still loading or failed to load (HTTP 503)."""


@dataclass(frozen=True)
class ServiceConfig:
    """Settings of one inference server process.

    Exactly one model source is used: `model_dir` if set, else `model_uri`
    (`models:/<name>@champion` by default) from the registry at `tracking_uri`
    (else `$MLFLOW_TRACKING_URI`, else the embedded store under `data_dir`).

    Attributes:
        model_dir: a model directory written by `slipway.models.save_model_dir`.
        model_uri: a registry URI, `models:/<name>@<alias>` or `models:/<name>/<n>`.
        model_name: the name served under `/v2/models/<name>`; defaults to the
            registered name, else `digits-classifier`.
        tracking_uri: MLflow tracking/registry URI.
        data_dir: data dir of the embedded registry.
        max_batch_size: most rows per request (more: 413).
        max_body_bytes: largest request body in bytes (more: 413).
        torch_threads: intra-op threads of torch in this process.
        load_retry_seconds: pause between attempts while the registry is unreachable.
        load_timeout_seconds: give up retrying after this many seconds.
        infer_wait_seconds: how long an inference request waits for a model that is
            still loading (e.g. in a worker that was just recycled) before a 503.
    """

    model_dir: str | None = None
    model_uri: str = f"models:/{DEFAULT_MODEL_NAME}@champion"
    model_name: str | None = None
    tracking_uri: str | None = None
    data_dir: str | None = None
    max_batch_size: int = 1024
    max_body_bytes: int = 1 << 20
    torch_threads: int = 1
    load_retry_seconds: float = 5.0
    load_timeout_seconds: float = 600.0
    infer_wait_seconds: float = 10.0

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> ServiceConfig:
        """Build from keys named exactly like the attributes, e.g. `{"model_dir": ...}`.

        Empty strings and None count as unset; other keys are refused.

        Raises:
            ValueError: an unknown key, or a number that does not parse or is out of range.
        """
        unknown = sorted(set(values) - set(cls.__annotations__))
        if unknown:
            raise ValueError(
                f"unknown service settings {unknown}; known: {sorted(cls.__annotations__)}"
            )
        found = {
            name: _parse(name, values[name], kind)
            for name, kind in cls.__annotations__.items()
            if values.get(name) is not None and values.get(name) != ""
        }
        config = cls(**found)
        for name in ("max_batch_size", "max_body_bytes", "torch_threads"):
            if getattr(config, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(config, name)}")
        return config

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceConfig:
        """Build from `SLIPWAY_<NAME>` environment variables, e.g. `SLIPWAY_MODEL_DIR`.

        Only Slipway's own variables count, plus MLflow's documented
        `MLFLOW_TRACKING_URI` when `SLIPWAY_TRACKING_URI` is unset: an unrelated
        `MODEL_DIR` or `model_uri` in the environment is ignored.

        Raises:
            ValueError: see `from_mapping`.
        """
        env = os.environ if environ is None else environ
        values = {name: env.get(ENV_PREFIX + name.upper()) for name in cls.__annotations__}
        if not values["tracking_uri"]:
            values["tracking_uri"] = env.get("MLFLOW_TRACKING_URI")
        return cls.from_mapping(values)


def _parse(name: str, raw: Any, kind: str) -> Any:
    try:
        if "int" in kind:
            return int(raw)
        if "float" in kind:
            return float(raw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: not a number: {raw!r}") from exc
    return str(raw)


@dataclass
class ModelHolder:
    """The one model a server process serves, loaded on a background thread.

    `state` goes `loading` -> `ready`, or `loading` -> `failed` (reason in `error`).
    """

    config: ServiceConfig
    state: str = LOADING
    error: str | None = None
    name: str = DEFAULT_MODEL_NAME
    version: str = ""
    module: torch.nn.Module | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    _loaded: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.config.model_name:
            self.name = self.config.model_name
        elif not self.config.model_dir:
            with contextlib.suppress(ValueError):  # reported by load()
                self.name = parse_model_uri(self.config.model_uri).name

    @property
    def ready(self) -> bool:
        """True once the model is loaded and warmed up."""
        return self.state == READY

    def start(self, on_done: Callable[[ModelHolder], None] | None = None) -> threading.Thread:
        """Load the model on a daemon thread, then call `on_done(self)`; returns the thread."""

        def run() -> None:
            self.load()
            if on_done is not None:
                on_done(self)

        thread = threading.Thread(target=run, name="slipway-model-loader", daemon=True)
        thread.start()
        return thread

    def load(self) -> None:
        """Load the model (retrying while the registry is unreachable); never raises.

        On failure the state becomes `failed` and the reason is logged and kept in `error`.
        """
        deadline = time.monotonic() + self.config.load_timeout_seconds
        try:
            while True:
                try:
                    module, metadata = self._load_once()
                    break
                except RegistryUnavailableError as exc:
                    if time.monotonic() + self.config.load_retry_seconds > deadline:
                        raise
                    LOG.warning(
                        "registry unreachable, retrying in %.1fs: %s",
                        self.config.load_retry_seconds,
                        exc,
                    )
                    time.sleep(self.config.load_retry_seconds)
            self._warm_up(module)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the server live, not ready
            self.error = f"{type(exc).__name__}: {exc}"
            self.state = FAILED
            LOG.error("model failed to load; serving health checks only: %s", self.error)
        else:
            self.module, self.metadata = module, metadata
            self.version = str(metadata.get("registered_version", ""))
            if not self.config.model_name and metadata.get("registered_name"):
                self.name = str(metadata["registered_name"])
            self.state = READY
            LOG.info("model %s version %r ready", self.name, self.version or "-")
        finally:
            self._loaded.set()

    def _load_once(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        if self.config.model_dir:
            from slipway.models import load_model_dir

            loaded = load_model_dir(self.config.model_dir)
            metadata = dict(loaded.metadata)
            metadata["model_config"] = loaded.config.to_dict()
            return loaded.module, metadata
        from slipway.registry import load_model

        return load_model(
            self.config.model_uri,
            tracking_uri=self.config.tracking_uri,
            data_dir=self.config.data_dir,
        )

    def _warm_up(self, module: torch.nn.Module) -> None:
        # The first forward passes allocate and pick kernels; pay for them before ready.
        with torch.inference_mode():
            for rows in (1, min(64, self.config.max_batch_size)):
                logits = module(torch.zeros(rows, NUM_FEATURES))
                if tuple(logits.shape) != (rows, NUM_CLASSES):
                    raise ValueError(
                        f"model maps ({rows}, {NUM_FEATURES}) to {tuple(logits.shape)}, expected ({rows}, {NUM_CLASSES})"
                    )

    def wait(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for loading to end; True if the model is ready."""
        self._loaded.wait(timeout)
        return self.ready

    def require(self) -> torch.nn.Module:
        """Return the module, waiting up to `infer_wait_seconds` while it loads.

        Raises:
            ModelNotReadyError: still loading after the wait, or failed to load.
        """
        if self.module is not None:
            return self.module
        self.wait(self.config.infer_wait_seconds)
        if self.module is None:
            reason = "is still loading" if self.state == LOADING else "failed to load"
            raise ModelNotReadyError(f"model {self.name!r} {reason}")
        return self.module

    def check_version(self, version: str) -> None:
        """Check that `version` is the version served (e.g. "3", a registry version number).

        The version is known once the model is loaded: the registered version, or the
        `registered_version` in a model directory's metadata; a model directory without
        one serves no version, so every version is unknown.

        Raises:
            ModelNotReadyError: the model is still loading or failed to load, so its
                version is not known.
            RequestError: 404, `version` is not the version served.
        """
        if not self.ready:
            reason = "is still loading" if self.state == LOADING else "failed to load"
            raise ModelNotReadyError(
                f"model {self.name!r} {reason}; its version {version!r} cannot be checked"
            )
        if version != self.version:
            served = f"only version {self.version!r}" if self.version else "no versions"
            raise RequestError(
                f"unknown version {version!r} of model {self.name!r}; this server serves {served}",
                status=404,
            )

    def forward(self, pixels: np.ndarray) -> torch.Tensor:
        """Run one batch.

        Args:
            pixels: `(N, 64)` raw pixel counts in [0, 16], any real dtype.

        Returns:
            `(N, 10)` float32 logits.

        Raises:
            ModelNotReadyError: see `require`.
        """
        module = self.require()
        x = torch.from_numpy(scale_pixels(pixels))
        with torch.inference_mode():
            return module(x)

    def model_metadata(self) -> dict[str, Any]:
        """The V2 model metadata response (`GET /v2/models/<name>`)."""
        return {
            "name": self.name,
            "versions": [self.version] if self.version else [],
            "platform": "pytorch",
            "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, NUM_FEATURES]}],
            "outputs": [
                {"name": LOGITS, "datatype": "FP32", "shape": [-1, NUM_CLASSES]},
                {"name": LABEL, "datatype": "INT64", "shape": [-1]},
                {"name": PROBABILITY, "datatype": "FP32", "shape": [-1]},
            ],
        }


@dataclass(frozen=True)
class InferRequest:
    """A decoded V2 inference request: `(N, 64)` float32 raw pixels and the outputs wanted."""

    pixels: np.ndarray
    outputs: tuple[str, ...]
    id: str | None = None
    binary_outputs: frozenset[str] = frozenset()


def split_binary_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """Split a request body into its JSON header and its binary tensor data.

    Args:
        raw: the whole request body.
        header_length: the `Inference-Header-Content-Length` header's value, or None
            when absent (then the body is all JSON).

    Returns:
        (JSON bytes, binary bytes); the binary part is empty without the header.

    Raises:
        RequestError: 400 when the header is not a non-negative decimal integer or
            exceeds the body's length.
    """
    if header_length is None:
        return raw, b""
    text = header_length.strip()
    if not text.isascii() or not text.isdigit():
        raise RequestError(
            f"{BINARY_HEADER} must be the JSON header's length in bytes, got {header_length!r}"
        )
    length = int(text)
    if length > len(raw):
        raise RequestError(
            f"{BINARY_HEADER} is {length} but the request body has only {len(raw)} bytes"
        )
    return raw[:length], raw[length:]


def decode_infer_request(body: Any, max_batch_size: int, binary: bytes = b"") -> InferRequest:
    """Validate a parsed V2 request body (see module docstring).

    Args:
        body: the JSON-decoded request body (the JSON header of a binary request).
        max_batch_size: most rows accepted.
        binary: the binary tensor data after the JSON header (`split_binary_body`).

    Returns:
        The pixels as `(N, 64)` float32 raw counts in [0, 16], N >= 1.

    Raises:
        RequestError: 400 naming the problem (missing field, unknown input or output,
            wrong shape or datatype, data that does not match the shape, non-numeric or
            out-of-range values, binary data whose size does not match the shape or
            that no input declares); 413 when N exceeds `max_batch_size`.
    """
    if not isinstance(body, dict):
        raise RequestError(f"request body must be a JSON object, got {_json_type(body)}")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f"'id' must be a string, got {_json_type(request_id)}")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        raise RequestError(f"'inputs' must be a list of exactly one tensor named {INPUT_NAME!r}")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise RequestError(f"inputs[0] must be an object, got {_json_type(tensor)}")
    name, datatype, shape, data = (tensor.get(k) for k in ("name", "datatype", "shape", "data"))
    if name != INPUT_NAME:
        raise RequestError(
            f"unknown input {name!r}; this model takes one input named {INPUT_NAME!r}"
        )
    if not isinstance(datatype, str):
        raise RequestError("inputs[0].datatype must be a string such as 'FP32'")
    if datatype not in NUMERIC_DATATYPES:
        known = "unsupported" if datatype in V2_DATATYPES else "unknown"
        raise RequestError(
            f"{known} datatype {datatype!r} for input {INPUT_NAME!r}; use a numeric type such as 'FP32'"
        )
    if not (isinstance(shape, list) and all(type(d) is int for d in shape)):
        raise RequestError("inputs[0].shape must be a list of integers")
    if len(shape) != 2 or shape[1] != NUM_FEATURES or shape[0] < 1:
        raise RequestError(
            f"wrong shape {shape} for input {INPUT_NAME!r}; expected [N, {NUM_FEATURES}] with N >= 1"
        )
    rows = shape[0]
    if rows > max_batch_size:
        raise RequestError(
            f"too many elements: {rows} rows exceed the limit of {max_batch_size} per request",
            status=413,
        )
    parameters = tensor.get("parameters")
    binary_size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
    if binary_size is not None:
        array = _binary_array(tensor, datatype, shape, binary_size, binary)
    elif binary:
        raise RequestError(
            f"the request has {len(binary)} bytes of binary data after its JSON header, "
            "but no input declares parameters.binary_data_size"
        )
    elif not isinstance(data, list):
        raise RequestError("inputs[0].data must be a list of numbers (flat or nested)")
    else:
        array = _to_array(data)
    if array.ndim != 1 and list(array.shape) != shape:
        raise RequestError(
            f"inputs[0].data is nested as {list(array.shape)} but shape is {shape}; "
            "send the data flat (row-major) or nested exactly as the shape"
        )
    if array.size != rows * NUM_FEATURES:
        raise RequestError(
            f"inputs[0].data holds {array.size} elements but shape {shape} needs {rows * NUM_FEATURES}"
        )
    if datatype.startswith(("INT", "UINT")) and array.dtype.kind == "f":
        raise RequestError(f"datatype {datatype} needs integer data, got fractional numbers")
    pixels = array.reshape(rows, NUM_FEATURES).astype(np.float32, copy=False)
    if not np.isfinite(pixels).all() or pixels.min() < 0 or pixels.max() > PIXEL_MAX:
        raise RequestError(f"pixel values must be finite numbers in [0, {PIXEL_MAX:g}]")
    outputs, binary_outputs = _requested_outputs(body.get("outputs"), body.get("parameters"))
    return InferRequest(
        pixels=pixels, outputs=outputs, id=request_id, binary_outputs=binary_outputs
    )


def _binary_array(
    tensor: dict[str, Any], datatype: str, shape: list[int], size: Any, binary: bytes
) -> np.ndarray:
    if "data" in tensor:
        raise RequestError(
            "inputs[0] has both 'data' and parameters.binary_data_size; send the tensor once"
        )
    if type(size) is not int or size < 0:
        raise RequestError("inputs[0].parameters.binary_data_size must be a non-negative integer")
    dtype = np.dtype(BINARY_DTYPES[datatype])
    needed = shape[0] * NUM_FEATURES * dtype.itemsize
    if size != needed:
        raise RequestError(
            f"inputs[0].parameters.binary_data_size is {size} bytes, but shape {shape} "
            f"of {datatype} is {needed} bytes"
        )
    if len(binary) != size:
        raise RequestError(
            f"inputs declare {size} bytes of binary data, but the request has "
            f"{len(binary)} after its JSON header"
        )
    return np.frombuffer(binary, dtype=dtype)


def _to_array(data: list[Any]) -> np.ndarray:
    try:
        array = np.asarray(data)
    except (ValueError, TypeError) as exc:  # ragged nesting
        raise RequestError(
            f"inputs[0].data is not a regular array: {str(exc).splitlines()[0]}"
        ) from exc
    # "b" (JSON true/false), "U" (strings), "O" (objects, null, mixed) are not numbers;
    # numpy turns true/false mixed with numbers into 1/0, so those are looked for.
    if array.dtype.kind not in "iuf" or _holds_bool(data):
        raise RequestError("inputs[0].data must hold only numbers (no strings, null, true/false)")
    return array


def _holds_bool(data: list[Any]) -> bool:
    pending = [data]
    while pending:
        for item in pending.pop():
            if type(item) is bool:
                return True
            if type(item) is list:
                pending.append(item)
    return False


def _requested_outputs(raw: Any, parameters: Any) -> tuple[tuple[str, ...], frozenset[str]]:
    """The outputs asked for (none listed: the defaults), and those wanted as binary data."""
    all_binary = _flag(
        _object(parameters, "'parameters'").get("binary_data_output"),
        "parameters.binary_data_output",
    )
    raw = [] if raw is None else raw
    if not isinstance(raw, list) or not all(isinstance(o, dict) for o in raw):
        raise RequestError('\'outputs\' must be a list of objects like {"name": "label"}')
    names = tuple(o.get("name") for o in raw)
    for name in names:
        if name not in OUTPUT_NAMES:
            raise RequestError(f"unknown output {name!r}; this model has {list(OUTPUT_NAMES)}")
    binary = set()
    for i, output in enumerate(raw):
        flag = _object(output.get("parameters"), f"outputs[{i}].parameters").get("binary_data")
        if _flag(flag, f"outputs[{i}].parameters.binary_data") or (all_binary and flag is None):
            binary.add(output["name"])
    if not names:
        return DEFAULT_OUTPUTS, frozenset(DEFAULT_OUTPUTS if all_binary else ())
    return names, frozenset(binary)


def _object(value: Any, where: str) -> dict[str, Any]:
    """`value` if it is a JSON object, {} if absent; RequestError otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RequestError(f"{where} must be an object")
    return value


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if type(value) is not bool:
        raise RequestError(f"{where} must be true or false")
    return value


def encode_infer_response(
    logits: torch.Tensor, request: InferRequest, model_name: str, model_version: str
) -> tuple[dict[str, Any], bytes]:
    """Build the V2 response for `(N, 10)` float32 logits: the JSON body and binary data.

    Outputs: `logits` FP32 `[N, 10]`, `label` INT64 `[N]` (argmax), `probability`
    FP32 `[N]` (softmax probability of the label); only those in `request.outputs`.
    Those in `request.binary_outputs` carry `parameters.binary_data_size` instead of
    `data`; their little-endian bytes, in output order, are the second value (empty
    when no output is binary: then the body alone is the response).
    """
    rows = int(logits.shape[0])
    arrays: dict[str, tuple[str, list[int], torch.Tensor]] = {}
    if LOGITS in request.outputs:
        arrays[LOGITS] = ("FP32", [rows, NUM_CLASSES], logits)
    if LABEL in request.outputs or PROBABILITY in request.outputs:
        probability, label = torch.softmax(logits, dim=1).max(dim=1)
        arrays[LABEL] = ("INT64", [rows], label)
        arrays[PROBABILITY] = ("FP32", [rows], probability)
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for name in request.outputs:
        datatype, shape, values = arrays[name]
        tensor: dict[str, Any] = {"name": name, "datatype": datatype, "shape": shape}
        if name in request.binary_outputs:
            raw = values.numpy().astype(BINARY_DTYPES[datatype], copy=False).tobytes()
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = values.flatten().tolist()
        outputs.append(tensor)
    body: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "outputs": outputs,
    }
    if request.id is not None:
        body["id"] = request.id
    return body, b"".join(chunks)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )
