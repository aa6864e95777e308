"""A Python client for Slipway's inference service (Open Inference Protocol, V2 REST).

    client = InferenceClient("http://127.0.0.1:8080")
    client.wait_ready(timeout=60)
    result = client.infer(pixels)          # (N, 64) raw pixel counts in [0, 16]
    result.label, result.probability       # (N,) int64, (N,) float32
    client.infer(pixels, binary=True)      # the same, as raw tensor bytes (binary extension)

One `InferenceClient` keeps one HTTP connection alive (a `requests.Session`); it is
not thread-safe, so give each thread its own.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests

from slipway.errors import SlipwayError
from slipway.model_uri import DEFAULT_MODEL_NAME

DEFAULT_TIMEOUT_SECONDS = 10.0
# The Open Inference Protocol's binary tensor data extension (as in slipway.serving,
# which the client does not import: it needs no torch).
BINARY_HEADER = "Inference-Header-Content-Length"
_DTYPES = {"FP32": "<f4", "INT64": "<i8"}


class InferenceServiceError(SlipwayError):
    """The service answered with an error; `status` is the HTTP status, `message` its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InferResult:
    """Outputs of one inference request; an output not asked for is None.

    Attributes:
        label: `(N,)` int64 predicted digits.
        probability: `(N,)` float32 softmax probability of each label.
        logits: `(N, 10)` float32.
        model_version: the registered version served ("" for a model directory).
    """

    label: np.ndarray | None
    probability: np.ndarray | None
    logits: np.ndarray | None
    model_version: str
    id: str | None = None


class InferenceClient:
    """Client of one service at `base_url` (e.g. `http://127.0.0.1:8080`), one model.

    Args:
        base_url: scheme, host and port of the service.
        model_name: the served model's name.
        timeout: seconds to wait for each response.
    """

    def __init__(
        self,
        base_url: str,
        model_name: str = DEFAULT_MODEL_NAME,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.timeout = timeout
        self.session = requests.Session()

    def close(self) -> None:
        """Close the kept-alive connection."""
        self.session.close()

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Health and metadata ---------------------------------------------------------

    def live(self) -> bool:
        """True if the server answers `GET /v2/health/live` with 200."""
        return self._status("/v2/health/live") == 200

    def ready(self) -> bool:
        """True if `GET /v2/health/ready` answers 200 (the model is loaded)."""
        return self._status("/v2/health/ready") == 200

    def model_ready(self) -> bool:
        """True if `GET /v2/models/<name>/ready` answers 200."""
        return self._status(f"/v2/models/{self.model_name}/ready") == 200

    def wait_ready(self, timeout: float, interval: float = 0.2) -> None:
        """Poll readiness until ready.

        Raises:
            TimeoutError: not ready after `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.ready():
                    return
            except requests.RequestException:
                pass  # not listening yet
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.base_url} not ready after {timeout:.0f}s")
            time.sleep(interval)

    def server_metadata(self) -> dict[str, Any]:
        """`GET /v2`: name, version, extensions. Raises InferenceServiceError."""
        return self._json("GET", "/v2")

    def model_metadata(self) -> dict[str, Any]:
        """`GET /v2/models/<name>`: inputs and outputs. Raises InferenceServiceError."""
        return self._json("GET", f"/v2/models/{self.model_name}")

    def metrics(self) -> str:
        """`GET /metrics`: the Prometheus text exposition. Raises InferenceServiceError."""
        response = self.session.get(self.base_url + "/metrics", timeout=self.timeout)
        _raise_for_error(response)
        return response.text

    # Inference -------------------------------------------------------------------

    def infer(
        self,
        pixels: np.ndarray,
        outputs: tuple[str, ...] = ("label", "probability"),
        request_id: str | None = None,
        binary: bool = False,
    ) -> InferResult:
        """Classify a batch of images in one request (one forward pass on the server).

        Args:
            pixels: `(N, 64)` raw pixel counts in [0, 16] (8x8 images, row-major);
                integer dtypes are sent as INT64, others as FP32.
            outputs: any of "label", "probability", "logits".
            request_id: echoed back in the response.
            binary: send the pixels and receive the outputs as raw little-endian
                bytes (the binary tensor data extension) instead of JSON numbers:
                the same results, far less encoding for large batches.

        Raises:
            ValueError: `pixels` is not 2-D.
            InferenceServiceError: the service refused the request (4xx) or is not ready (503).
        """
        array = np.asarray(pixels)
        if array.ndim != 2:
            raise ValueError(f"pixels must be 2-D (N, 64), got shape {array.shape}")
        datatype = "INT64" if array.dtype.kind in "iu" else "FP32"
        tensor: dict[str, Any] = {
            "name": "pixels",
            "datatype": datatype,
            "shape": list(array.shape),
        }
        body: dict[str, Any] = {"inputs": [tensor]}
        if request_id is not None:
            body["id"] = request_id
        if not binary:
            tensor["data"] = array.ravel().tolist()
            body["outputs"] = [{"name": name} for name in outputs]
            return parse_infer_response(self.infer_raw(body))
        raw = np.ascontiguousarray(array, dtype=_DTYPES[datatype]).tobytes()
        tensor["parameters"] = {"binary_data_size": len(raw)}
        body["outputs"] = [{"name": name, "parameters": {"binary_data": True}} for name in outputs]
        header = json.dumps(body, separators=(",", ":")).encode()
        response = self.session.post(
            f"{self.base_url}/v2/models/{self.model_name}/infer",
            data=header + raw,
            headers={"Content-Type": "application/octet-stream", BINARY_HEADER: str(len(header))},
            timeout=self.timeout,
        )
        _raise_for_error(response)
        answer, data = split_response(response)
        return parse_infer_response(answer, data)

    def infer_raw(self, body: Any) -> dict[str, Any]:
        """POST a V2 request body as is and return the response body.

        Raises:
            InferenceServiceError: any non-200 answer.
        """
        return self._json("POST", f"/v2/models/{self.model_name}/infer", json=body)

    # Plumbing --------------------------------------------------------------------

    def _status(self, path: str) -> int:
        return self.session.get(self.base_url + path, timeout=self.timeout).status_code

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self.session.request(
            method, self.base_url + path, timeout=self.timeout, **kwargs
        )
        _raise_for_error(response)
        body: dict[str, Any] = response.json()
        return body


def split_response(response: requests.Response) -> tuple[dict[str, Any], bytes]:
    """The JSON body of a response and the binary tensor data after it (if any).

    Raises:
        InferenceServiceError: the binary header does not fit the body.
    """
    length = response.headers.get(BINARY_HEADER)
    if length is None:
        return response.json(), b""
    content = response.content
    if not length.isdigit() or int(length) > len(content):
        raise InferenceServiceError(
            response.status_code, f"bad {BINARY_HEADER} {length!r} for {len(content)} bytes"
        )
    return json.loads(content[: int(length)]), content[int(length) :]


def parse_infer_response(body: dict[str, Any], binary: bytes = b"") -> InferResult:
    """Turn a V2 response body into arrays (see `InferResult`).

    Outputs with `parameters.binary_data_size` are read, in output order, from
    `binary`, the bytes after the JSON header of a binary response.
    """
    tensors: dict[str, Any] = {}
    offset = 0
    for output in body.get("outputs", []):
        size = (output.get("parameters") or {}).get("binary_data_size")
        if size is not None:
            dtype = np.dtype(_DTYPES[output["datatype"]])
            output = {**output, "data": np.frombuffer(binary[offset : offset + size], dtype)}
            offset += size
        tensors[output["name"]] = output

    def array(name: str, dtype: type) -> np.ndarray | None:
        if name not in tensors:
            return None
        return np.asarray(tensors[name]["data"], dtype=dtype).reshape(tensors[name]["shape"])

    return InferResult(
        label=array("label", np.int64),
        probability=array("probability", np.float32),
        logits=array("logits", np.float32),
        model_version=str(body.get("model_version", "")),
        id=body.get("id"),
    )


def _raise_for_error(response: requests.Response) -> None:
    if response.status_code == 200:
        return
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = response.text[:200]
    raise InferenceServiceError(response.status_code, message)
