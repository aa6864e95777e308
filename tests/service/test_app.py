"""Every endpoint and every bad input, against the real gunicorn with 2 workers."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
import requests
import torch
from slipway.client import InferenceClient, InferenceServiceError
from slipway.models import load_model_dir
from slipway.preprocessing import scale_pixels

if TYPE_CHECKING:
    from conftest import Server

MODEL_NAME = "digits-classifier"
INFER = f"/v2/models/{MODEL_NAME}/infer"


def pixels(rows: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 17, size=(rows, 64))


def request_body(rows: int = 1, **tensor: Any) -> dict[str, Any]:
    data = pixels(rows)
    return {
        "inputs": [
            {
                "name": "pixels",
                "datatype": "INT64",
                "shape": [rows, 64],
                "data": data.ravel().tolist(),
                **tensor,
            }
        ]
    }


def test_health_and_metadata(server: Server) -> None:
    client = server.client()
    assert client.live()
    assert client.ready()
    assert client.model_ready()
    assert client.server_metadata() == {
        "name": "slipway",
        "version": "0.1.0",
        "extensions": ["binary_tensor_data"],
    }
    meta = client.model_metadata()
    assert meta["name"] == MODEL_NAME
    assert meta["inputs"] == [{"name": "pixels", "datatype": "FP32", "shape": [-1, 64]}]
    assert [o["name"] for o in meta["outputs"]] == ["logits", "label", "probability"]
    assert requests.get(server.url + f"/v2/models/{MODEL_NAME}/ready").json() == {
        "name": MODEL_NAME,
        "ready": True,
        "state": "ready",
    }


def test_runs_at_least_two_workers(server: Server) -> None:
    assert len(re.findall(r"Booting worker with pid", server.log())) >= 2


@pytest.mark.parametrize("rows", [1, 64])
def test_infer_matches_the_model(server: Server, model_dir: Path, rows: int) -> None:
    x = pixels(rows, seed=rows)
    result = server.client().infer(x, outputs=("label", "probability", "logits"), request_id="r-1")
    with torch.inference_mode():
        expected = load_model_dir(model_dir).module(torch.from_numpy(scale_pixels(x))).numpy()
    assert result.logits is not None and result.label is not None and result.probability is not None
    np.testing.assert_allclose(result.logits, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(result.label, expected.argmax(axis=1))
    assert result.probability.shape == (rows,)
    assert ((result.probability > 0) & (result.probability <= 1)).all()
    assert result.id == "r-1"
    assert result.model_version == ""


def test_infer_nested_data_and_output_selection(server: Server) -> None:
    body = request_body(2)
    body["inputs"][0]["data"] = pixels(2).tolist()  # nested [[64], [64]] is valid V2 too
    body["outputs"] = [{"name": "label"}]
    out = server.client().infer_raw(body)
    assert [o["name"] for o in out["outputs"]] == ["label"]
    assert out["outputs"][0]["shape"] == [2] and out["outputs"][0]["datatype"] == "INT64"
    assert "id" not in out


def test_fp32_input_gives_the_same_labels(server: Server) -> None:
    x = pixels(8)
    client = server.client()
    ints = client.infer(x)
    floats = client.infer(x.astype(np.float32))
    np.testing.assert_array_equal(ints.label, floats.label)


@pytest.mark.parametrize("dtype", [np.int64, np.float32])
def test_binary_tensors_give_the_same_outputs_as_json(server: Server, dtype: type) -> None:
    x = pixels(256, seed=3).astype(dtype)
    client = server.client()
    outputs = ("label", "probability", "logits")
    as_json = client.infer(x, outputs=outputs, request_id="j")
    as_binary = client.infer(x, outputs=outputs, request_id="b", binary=True)
    for name in outputs:
        np.testing.assert_array_equal(getattr(as_binary, name), getattr(as_json, name))
    assert as_binary.label is not None and as_binary.label.dtype == np.int64
    assert as_binary.id == "b"


def binary_request(
    rows: int = 2, outputs: list[dict[str, Any]] | None = None, **parameters: Any
) -> tuple[bytes, bytes]:
    """(JSON header, pixel bytes) of a binary request for `rows` FP32 rows."""
    raw = pixels(rows).astype("<f4").tobytes()
    tensor = {
        "name": "pixels",
        "datatype": "FP32",
        "shape": [rows, 64],
        "parameters": {"binary_data_size": len(raw), **parameters},
    }
    body: dict[str, Any] = {"inputs": [tensor]}
    if outputs is not None:
        body["outputs"] = outputs
    return json.dumps(body).encode(), raw


def post_binary(server: Server, body: bytes, header_length: str | None) -> requests.Response:
    headers = {"Content-Type": "application/octet-stream"}
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    return requests.post(server.url + INFER, data=body, headers=headers)


def test_binary_output_layout_on_the_wire(server: Server) -> None:
    header, raw = binary_request(
        3, outputs=[{"name": "label", "parameters": {"binary_data": True}}, {"name": "probability"}]
    )
    response = post_binary(server, header + raw, str(len(header)))
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/octet-stream"
    length = int(response.headers["Inference-Header-Content-Length"])
    answer = json.loads(response.content[:length])
    label, probability = answer["outputs"]
    assert label["parameters"] == {"binary_data_size": 24} and "data" not in label
    assert len(probability["data"]) == 3  # not asked for as binary: JSON
    labels = np.frombuffer(response.content[length:], dtype="<i8")
    assert labels.shape == (3,) and ((labels >= 0) & (labels < 10)).all()
    # A JSON request may ask for binary outputs too; binary input with JSON outputs is JSON.
    whole = json.dumps({**request_body(2), "parameters": {"binary_data_output": True}}).encode()
    response = requests.post(
        server.url + INFER, data=whole, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200 and "Inference-Header-Content-Length" in response.headers
    header, raw = binary_request(2)
    response = post_binary(server, header + raw, str(len(header)))
    assert response.headers["Content-Type"] == "application/json"
    assert [len(o["data"]) for o in response.json()["outputs"]] == [2, 2]


BAD_BINARY = {
    "header not a number": ("abc", None, "must be the JSON header's length"),
    "negative header": ("-5", None, "must be the JSON header's length"),
    "header past the body": ("99999", None, "is 99999 but the request body has only"),
    "header cuts the JSON": ("10", None, "malformed JSON"),
    "size does not fit the shape": (
        None,
        {"binary_data_size": 100},
        "shape [2, 64] of FP32 is 512 bytes",
    ),
    "size not an integer": (None, {"binary_data_size": "512"}, "must be a non-negative integer"),
    "fewer bytes than declared": ("short", None, "but the request has 511 after its JSON header"),
    "bytes but no input declares them": ("undeclared", None, "no input declares"),
    "data and binary data": ("both", None, "both 'data' and parameters.binary_data_size"),
    "binary_data not a boolean": ("flag", None, "binary_data must be true or false"),
}


@pytest.mark.parametrize("case", list(BAD_BINARY), ids=list(BAD_BINARY))
def test_malformed_binary_request_is_a_named_400(server: Server, case: str) -> None:
    header_value, parameters, message = BAD_BINARY[case]
    header, raw = binary_request(**(parameters or {}))
    if header_value == "short":
        body, header_value = header + raw[:-1], str(len(header))
    elif header_value == "undeclared":
        header = json.dumps(request_body(2)).encode()
        body, header_value = header + raw, str(len(header))
    elif header_value == "both":
        tensor = json.loads(header)
        tensor["inputs"][0]["data"] = [0] * 128
        header = json.dumps(tensor).encode()
        body, header_value = header + raw, str(len(header))
    elif header_value == "flag":
        header, raw = binary_request(outputs=[{"name": "label", "parameters": {"binary_data": 1}}])
        body, header_value = header + raw, str(len(header))
    else:
        body = header + raw
        header_value = header_value or str(len(header))
    response = post_binary(server, body, header_value)
    assert response.status_code == 400, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert message in response.json()["error"]


def body_with(**changes: Any) -> bytes:
    body = request_body(2)
    body["inputs"][0].update(changes)
    return json.dumps(body).encode()


BAD_REQUESTS = {
    "malformed JSON": (b'{"inputs": [', 400, "malformed JSON"),
    "not UTF-8": (b"\xff\xfe{", 400, "malformed JSON"),
    "empty body": (b"", 400, "malformed JSON"),
    "body not an object": (b"[1, 2]", 400, "JSON object"),
    "no inputs": (b"{}", 400, "'inputs'"),
    "two inputs": (json.dumps({"inputs": [{}, {}]}).encode(), 400, "exactly one"),
    "unknown input name": (body_with(name="image"), 400, "unknown input 'image'"),
    "wrong shape, 1-D": (body_with(shape=[128]), 400, "wrong shape [128]"),
    "wrong shape, 63 columns": (body_with(shape=[2, 63]), 400, "wrong shape [2, 63]"),
    "zero rows": (body_with(shape=[0, 64], data=[]), 400, "wrong shape [0, 64]"),
    "shape not integers": (body_with(shape=["2", 64]), 400, "shape must be a list of integers"),
    "data does not fit the shape": (
        body_with(shape=[3, 64]),
        400,
        "holds 128 elements but shape [3, 64] needs 192",
    ),
    "ragged data": (body_with(data=[[1] * 64, [1] * 63]), 400, "not a regular array"),
    "strings in data": (body_with(data=["1"] * 128), 400, "only numbers"),
    "booleans in data": (body_with(data=[True] * 128), 400, "only numbers"),
    "booleans mixed with numbers": (body_with(data=[1.5] * 127 + [True]), 400, "true/false"),
    "nested booleans mixed with numbers": (
        body_with(data=[[1] * 64, [1] * 63 + [False]]),
        400,
        "true/false",
    ),
    "nesting does not match the shape": (
        body_with(data=[[1] * 32] * 4),
        400,
        "nested as [4, 32] but shape is [2, 64]",
    ),
    "nesting deeper than the shape": (
        body_with(data=[[[1] * 64], [[1] * 64]]),
        400,
        "nested as [2, 1, 64]",
    ),
    "null in data": (body_with(data=[None] * 128), 400, "only numbers"),
    "data not a list": (body_with(data="abc"), 400, "data must be a list"),
    "pixel out of range": (body_with(data=[17] * 128), 400, "in [0, 16]"),
    "negative pixel": (body_with(data=[-1] * 128), 400, "in [0, 16]"),
    "wrong datatype, BYTES": (body_with(datatype="BYTES"), 400, "unsupported datatype 'BYTES'"),
    "wrong datatype, BOOL": (body_with(datatype="BOOL"), 400, "unsupported datatype 'BOOL'"),
    "unknown datatype": (body_with(datatype="FLOAT"), 400, "unknown datatype 'FLOAT'"),
    "fractions for INT64": (body_with(data=[0.5] * 128), 400, "needs integer data"),
    "unknown output": (
        json.dumps({**request_body(), "outputs": [{"name": "x"}]}).encode(),
        400,
        "unknown output 'x'",
    ),
    "too many elements": (
        body_with(shape=[1025, 64], data=[0] * (1025 * 64)),
        413,
        "too many elements",
    ),
    "deeply nested JSON": (b"[" * 100000 + b"]" * 100000, 400, "malformed JSON"),
}


@pytest.mark.parametrize("case", list(BAD_REQUESTS), ids=list(BAD_REQUESTS))
def test_bad_request_is_a_named_4xx(server: Server, case: str) -> None:
    body, status, message = BAD_REQUESTS[case]
    response = requests.post(
        server.url + INFER, data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert message in response.json()["error"]


def test_body_over_the_limit_is_413(server: Server) -> None:
    response = requests.post(
        server.url + INFER, data=b"0" * (2 << 20), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "request body too large" in response.json()["error"]


@pytest.mark.parametrize("path", ["/v2/models/nope", "/v2/models/nope/ready"])
def test_unknown_model_is_404(server: Server, path: str) -> None:
    response = requests.get(server.url + path)
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown model 'nope'; this server serves 'digits-classifier'"
    }


def test_infer_on_unknown_model_is_404(server: Server) -> None:
    with pytest.raises(InferenceServiceError) as raised:
        InferenceClient(server.url, model_name="nope").infer(pixels(1))
    assert raised.value.status == 404
    assert "unknown model 'nope'" in raised.value.message


VERSIONED = f"/v2/models/{MODEL_NAME}/versions"


@pytest.mark.parametrize("method", ["metadata", "ready", "infer"])
def test_a_model_dir_without_a_version_serves_no_version(server: Server, method: str) -> None:
    path = {"metadata": "/7", "ready": "/7/ready", "infer": "/7/infer"}[method]
    if method == "infer":
        response = requests.post(server.url + VERSIONED + path, json=request_body())
    else:
        response = requests.get(server.url + VERSIONED + path)
    assert response.status_code == 404
    assert response.json() == {
        "error": "unknown version '7' of model 'digits-classifier'; this server serves no versions"
    }


def test_versioned_path_of_an_unknown_model_is_404(server: Server) -> None:
    response = requests.get(server.url + "/v2/models/nope/versions/1")
    assert response.status_code == 404 and "unknown model 'nope'" in response.json()["error"]


def test_a_model_dir_may_carry_its_registry_version(tmp_path: Path) -> None:
    from slipway.models import ModelConfig, build_model, save_model_dir
    from slipway.serving import ModelHolder, ModelNotReadyError, RequestError, ServiceConfig

    save_model_dir(
        build_model(ModelConfig()), ModelConfig(), tmp_path, metadata={"registered_version": 3}
    )
    holder = ModelHolder(ServiceConfig(model_dir=str(tmp_path)))
    with pytest.raises(ModelNotReadyError, match="still loading; its version '3'"):
        holder.check_version("3")
    holder.load()
    assert holder.version == "3" and holder.model_metadata()["versions"] == ["3"]
    holder.check_version("3")
    with pytest.raises(
        RequestError, match="unknown version '4'.*serves only version '3'"
    ) as raised:
        holder.check_version("4")
    assert raised.value.status == 404


def test_unknown_path_and_method_are_json(server: Server) -> None:
    missing = requests.get(server.url + "/v1/models")
    assert missing.status_code == 404 and missing.json() == {"error": "not found: /v1/models"}
    wrong = requests.get(server.url + INFER)
    assert wrong.status_code == 405 and "method GET not allowed" in wrong.json()["error"]


def test_metrics_add_up_over_all_workers(server: Server) -> None:
    def rows_served() -> float:
        text = requests.get(server.url + "/metrics").text
        match = re.search(r"^slipway_inference_rows_total (\S+)$", text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    before = rows_served()
    for i in range(20):
        # A new connection each time, so both workers serve some.
        requests.post(server.url + INFER, json=request_body(3 if i % 2 else 1)).raise_for_status()
    # Whichever worker answers the scrape, it reports every worker's samples.
    assert {rows_served() - before for _ in range(6)} == {40.0}
    text = server.client().metrics()
    assert (
        'slipway_http_requests_total{endpoint="/v2/models/<name>/infer",method="POST",status="200"}'
        in text
    )
    assert "slipway_model_ready 1.0" in text
    assert "slipway_model_forward_seconds_bucket" in text


def test_metric_labels_stay_bounded_whatever_the_client_sends(server: Server) -> None:
    for i in range(5):
        method = "ABC" + chr(ord("D") + i)
        requests.request(method, server.url + INFER).close()
        requests.get(server.url + f"/no/such/path/{i}").close()
    text = requests.get(server.url + "/metrics").text
    methods = set(re.findall(r'^slipway_http_requests_total\{[^}]*method="([^"]*)"', text, re.M))
    endpoints = set(re.findall(r'^slipway_http_\w+\{[^}]*endpoint="([^"]*)"', text, re.M))
    assert "other" in methods and not any(m.startswith("ABC") for m in methods), methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "other"}
    assert "other" in endpoints
    assert all(e == "other" or e.startswith(("/v2", "/metrics", "/openapi")) for e in endpoints)


def test_openapi_document_is_served(server: Server) -> None:
    doc = requests.get(server.url + "/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert {
        "/v2/health/live",
        "/v2/health/ready",
        "/v2",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
        "/metrics",
    } <= set(doc["paths"])
