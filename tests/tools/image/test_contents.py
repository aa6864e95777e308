"""What each image carries: only its binary's runfiles, large packages in shared layers.

Reads the built image layouts (no engine, no registry): the processing job has
no torch layer and no torch file, nor the MLflow client's layer; every other
image holds the one //tools/image:layer_torch blob right after the base; every
layer group's blob (//tools/image:layer_groups) is the same in each image that
holds it, and its packages are nowhere else in the image; the service carries
none of the data, plotting or MLflow-server packages; no layer ships a
third-party test suite, nor torch's C++ tests, test programs or headers; the
build's bytecode of torch, pandas and pyarrow is in (a non-root container
cannot write it), numpy's and scipy's out (the processing image's size),
sympy's and mpmath's out (the torch images' size); pyarrow's C++ headers and
sources and the Cython sources are out.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
from functools import cache
from pathlib import Path

import pytest

RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[4]))
MAIN = RUNFILES / "_main"
IMAGES = {i["name"]: i for i in json.loads((MAIN / "tools/image/images.json").read_text())}
# image.bzl's DEFAULT_LAYER_GROUPS in layer order (//tools/image:layer_groups).
LAYER_GROUPS = json.loads((MAIN / "tools/image/layer_groups.json").read_text())
GROUPS = {group["name"]: set(group["repos"]) for group in LAYER_GROUPS}
# Packages a JSON-in, JSON-out model server has no use for.
NOT_IN_SERVICE = ("pandas", "pyarrow", "scipy", "scikit_learn", "matplotlib", "mlflow")


def manifest(name: str) -> dict:  # type: ignore[type-arg]
    root = MAIN / IMAGES[name]["package"] / "oci_image"
    index = json.loads((root / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    return json.loads((root / "blobs/sha256" / digest).read_text())  # type: ignore[no-any-return]


@cache
def names(digest: str) -> tuple[str, ...]:
    """Paths in a layer blob, read once whichever images share it."""
    blob = next(
        MAIN / i["package"] / "oci_image/blobs/sha256" / digest.split(":")[1]
        for i in IMAGES.values()
        if (MAIN / i["package"] / "oci_image/blobs/sha256" / digest.split(":")[1]).exists()
    )
    with tarfile.open(blob) as tar:
        return tuple(tar.getnames())


def runfiles_layers(name: str) -> list[str]:
    """Digests of the image's layers above the base (Debian's, not runfiles)."""
    return [layer["digest"] for layer in manifest(name)["layers"][1:]]


def layer_repos(digest: str) -> set[str]:
    """Apparent names of the pip repositories in a layer (`pypi_torch`, ...)."""
    found = set()
    for path in names(digest):
        parts = path.split("/")
        if len(parts) > 3 and parts[1] == "main.runfiles":
            found.add(parts[2].replace("+", "~").split("~")[-1])
    return found


def repos(name: str) -> set[str]:
    """Apparent names of the pip repositories in the image's layers."""
    return set().union(*(layer_repos(digest) for digest in runfiles_layers(name)))


@cache
def group_digest(group: str) -> str:
    layer = MAIN / next(g["layer"] for g in LAYER_GROUPS if g["name"] == group)
    return "sha256:" + hashlib.sha256(layer.read_bytes()).hexdigest()


def test_processing_has_no_torch() -> None:
    layers = [layer["digest"] for layer in manifest("processing")["layers"]]
    assert group_digest("torch") not in layers
    assert "pypi_torch" not in repos("processing")
    assert {"pypi_pandas", "pypi_pyarrow", "pypi_numpy"} <= repos("processing")


def test_processing_has_no_mlflow_client_layer() -> None:
    # The group holds common packages (packaging, requests, ...): if the
    # processing job reached one of them, it would get the whole layer.
    layers = [layer["digest"] for layer in manifest("processing")["layers"]]
    assert group_digest("mlflow_skinny") not in layers
    assert group_digest("scikit_learn") in layers


@pytest.mark.parametrize("name", sorted(set(IMAGES) - {"processing"}))
def test_torch_images_share_one_torch_layer(name: str) -> None:
    layers = [layer["digest"] for layer in manifest(name)["layers"]]
    assert layers[1] == group_digest("torch")  # base | torch | other groups | packages | app
    assert layer_repos(layers[1]) == GROUPS["torch"]


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_each_group_is_its_shared_layer_and_nowhere_else(name: str) -> None:
    """base | the groups the binary reaches, in order | packages | app."""
    layers = runfiles_layers(name)
    held = [group for group in GROUPS if group_digest(group) in layers]
    assert layers[: len(held)] == [group_digest(group) for group in held]
    assert len(layers) == len(held) + 2
    others = set().union(*(layer_repos(digest) for digest in layers[len(held) :]))
    for group, members in GROUPS.items():
        assert not members & others, f"{name}: {group}'s packages outside its layer"
        if group not in held:
            assert not members & repos(name), f"{name}: {group} without its layer"


def test_service_carries_no_data_plotting_or_server_packages() -> None:
    found = repos("service")
    assert not {f"pypi_{name}" for name in NOT_IN_SERVICE} & found
    assert {"pypi_mlflow_skinny", "pypi_flask", "pypi_gunicorn", "pypi_torch"} <= found


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_no_third_party_test_suites(name: str) -> None:
    for digest in runfiles_layers(name):
        suites = [n for n in names(digest) if "/tests/" in n and "/main.runfiles/_main/" not in n]
        assert not suites[:3], digest


def test_torch_layer_holds_bytecode_and_no_cpp_tests_or_headers() -> None:
    paths = names(group_digest("torch"))
    site = "/site-packages/torch/"
    assert any(p.endswith(site + "__pycache__/__init__.cpython-311.pyc") for p in paths)
    assert any(p.endswith(site + "bin/torch_shm_manager") for p in paths)  # used at run time
    for left_out in ("test/", "include/", "bin/test_", "bin/protoc"):
        found = [p for p in paths if site + left_out in p]
        assert not found[:3], left_out
    # sympy's and mpmath's sources without their bytecode (only training imports them).
    for package in ("sympy", "mpmath"):
        assert any(p.endswith(f"/site-packages/{package}/__init__.py") for p in paths), package
        found = [p for p in paths if f"/site-packages/{package}/" in p and "/__pycache__/" in p]
        assert not found[:3], package


@pytest.mark.parametrize(
    ("group", "bytecode"),
    [("numpy", False), ("pandas", True), ("pyarrow", True), ("scipy", False)],
)
def test_processing_groups_bytecode(group: str, bytecode: bool) -> None:
    paths = names(group_digest(group))
    assert any(p.endswith(f"/site-packages/{group}/__init__.py") for p in paths)
    found = [
        p
        for p in paths
        if p.endswith(f"/site-packages/{group}/__pycache__/__init__.cpython-311.pyc")
    ]
    assert bool(found) == bytecode


def test_pyarrow_layer_has_no_headers_or_cython_sources() -> None:
    paths = names(group_digest("pyarrow"))
    site = "/site-packages/pyarrow/"
    assert any(p.endswith(site + "libarrow_python.so") for p in paths)
    for left_out in ("include/", "src/", "includes/"):
        found = [p for p in paths if site + left_out in p]
        assert not found[:3], left_out
    assert not [p for p in paths if p.endswith((".pyx", ".pxd", ".pxi"))][:3]
