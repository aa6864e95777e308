"""Image figures for README: layer and image sizes, build and push times.

Usage (from the workspace root, nothing else running):

    python3 tools/benchmarks/image_benchmark.py [--skip-pip]

1. cold build: `tools/bazel clean`, then build every `:oci_image` (repositories
   stay fetched: this times the layers and images, not the downloads; every
   Bazel command here runs without the disk cache, SLIPWAY_DISK_CACHE empty);
2. warm build: the same command again;
3. push: a registry on 127.0.0.1 (//tools/image:registry_server), every
   `:push` once into the empty registry, then again (all blobs present);
4. sizes: compressed bytes of each layer and image, from the layouts;
5. unless --skip-pip: each image's third-party packages (the same versions)
   installed with pip (default options, so with .pyc files and the packages'
   own tests) into an empty prefix, tarred and gzipped at level 6, for the
   comparison with python:3.11-slim plus pip.

Prints Markdown tables. Errors: a failing step exits 1 with its output.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# python:3.11-slim (bookworm, linux/amd64) compressed, as Docker Hub lists it
# (https://hub.docker.com/_/python/tags?name=3.11-slim); not reachable from here.
SLIM_BYTES = 41_000_000
# No disk cache: a build after `clean` is cold.
BAZEL_ENV = {**os.environ, "SLIPWAY_DISK_CACHE": ""}


def bazel(*args: str, check: bool = True) -> float:
    start = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "tools/bazel"), *args],
        cwd=ROOT,
        env=BAZEL_ENV,
        capture_output=True,
        text=True,
    )
    if check and done.returncode != 0:
        sys.exit(
            f"image_benchmark: error: tools/bazel {' '.join(args)} failed:\n{done.stderr[-3000:]}"
        )
    return time.monotonic() - start


def read_images() -> list[dict[str, str]]:
    """The images (tools/image/images.bzl), from //tools/image:images.json in bazel-bin."""
    bazel("build", "//tools/image:images.json")
    return json.loads((ROOT / "bazel-bin/tools/image/images.json").read_text())  # type: ignore[no-any-return]


def read_layer_groups() -> list[dict[str, object]]:
    """image.bzl's DEFAULT_LAYER_GROUPS in layer order, from //tools/image:layer_groups."""
    bazel("build", "//tools/image:layer_groups")
    return json.loads((ROOT / "bazel-bin/tools/image/layer_groups.json").read_text())  # type: ignore[no-any-return]


def manifest(package: str) -> dict[str, object]:
    layout = ROOT / "bazel-bin" / package / "oci_image"
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"].split(":")[1]
    return json.loads((layout / "blobs/sha256" / digest).read_text())  # type: ignore[no-any-return]


def mb(size: float) -> str:
    return f"{size / 1e6:,.1f}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PIP_SIZES: dict[frozenset[str], tuple[int, int]] = {}


def pip_size(work: Path, package: str) -> tuple[int, int]:
    """Raw and gzip-6 bytes of an image's third-party packages installed by pip."""
    layout = ROOT / "bazel-bin" / package / "oci_image"
    layers = manifest(package)["layers"][1:]  # type: ignore[index]
    pins: set[str] = set()
    for layer in layers:
        tar_path = layout / "blobs/sha256" / layer["digest"].split(":")[1]
        with tarfile.open(tar_path) as tar:
            for name in tar.getnames():
                match = re.search(r"site-packages/([^/]+)-([^/-]+)\.dist-info/METADATA$", name)
                if match:
                    pins.add(f"{match[1]}=={match[2]}")
    key = frozenset(pins)
    if key in _PIP_SIZES:  # images with the same packages (e.g. two jobs)
        return _PIP_SIZES[key]
    work = work / package.replace("/", "-")
    work.mkdir()
    prefix = work / "prefix"
    requirements = work / "requirements.txt"
    requirements.write_text("\n".join(sorted(pins)) + "\n")
    wheels = os.environ.get("SLIPWAY_WHEEL_DIR", "/opt/wheels")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--prefix",
            str(prefix),
            "--find-links",
            wheels,
            "-r",
            str(requirements),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        sys.exit(f"image_benchmark: error: pip install failed:\n{done.stderr[-3000:]}")
    raw = sum(p.stat().st_size for p in prefix.rglob("*") if p.is_file())
    archive = work / "pip.tar.gz"
    with (
        gzip.GzipFile(archive, "wb", compresslevel=6, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w") as tar,
    ):
        tar.add(prefix, arcname="usr/local")
    _PIP_SIZES[key] = (raw, archive.stat().st_size)
    return _PIP_SIZES[key]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-pip", action="store_true")
    args = parser.parse_args()
    images = read_images()
    targets = [image["oci_image"] for image in images]
    bazel("build", *targets)  # fetches whatever is missing, outside the timing
    bazel("clean")
    cold = bazel("build", *targets)
    warm = bazel("build", *targets)

    with tempfile.TemporaryDirectory(prefix="slipway-bench-") as tmp:
        port = free_port()
        server = subprocess.Popen(
            [
                str(ROOT / "tools/bazel"),
                "run",
                "//tools/image:registry_server",
                "--",
                "--port",
                str(port),
                "--root",
                f"{tmp}/registry",
            ],
            cwd=ROOT,
            env=BAZEL_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
                if time.monotonic() > deadline:
                    sys.exit("image_benchmark: error: the registry did not start")
                time.sleep(0.5)
            push: dict[str, tuple[float, float]] = {}
            for image in images:
                repo = ["--", "--repository", f"127.0.0.1:{port}/slipway/{image['name']}"]
                first = bazel("run", image["push"], *repo)
                again = bazel("run", image["push"], *repo)
                push[image["name"]] = (first, again)
        finally:
            server.terminate()
            server.wait(timeout=30)
        pip = (
            {} if args.skip_pip else {i["name"]: pip_size(Path(tmp), i["package"]) for i in images}
        )

    print(
        f"cold build of the {len(images)} images (after `clean`, repositories fetched): {cold:.0f} s"
    )
    print(f"warm build (nothing changed): {warm:.1f} s\n")
    layer_groups = read_layer_groups()
    group_names = [str(group["name"]) for group in layer_groups]
    layer_names = ["base", *group_names, "packages", "app"]
    groups = {
        "sha256:"
        + hashlib.sha256((ROOT / "bazel-bin" / str(g["layer"])).read_bytes()).hexdigest(): g["name"]
        for g in layer_groups
    }
    pip_columns = " | pip: packages gzip-6 (MB) | pip on python:3.11-slim (MB) |" if pip else " |"
    print(
        "| image | "
        + " | ".join(f"{n} layer (MB)" for n in layer_names)
        + " | image (MB) | first push (s) | push again (s)"
        + pip_columns
    )
    print("|---" * (len(layer_names) + 4 + (2 if pip else 0)) + "|")
    for image in images:
        name = image["name"]
        layers = manifest(image["package"])["layers"]  # type: ignore[index]
        sizes = [int(layer["size"]) for layer in layers]
        # A group the image's binary does not reach has no layer in it: "-".
        held = {
            groups[layer["digest"]]: int(layer["size"])
            for layer in layers
            if layer["digest"] in groups
        }
        cells = [
            mb(sizes[0]),
            *(mb(held[group]) if group in held else "-" for group in group_names),
            *map(mb, sizes[-2:]),
        ]
        row = (
            f"| {name} | "
            + " | ".join(cells)
            + f" | {mb(sum(sizes))} | {push[name][0]:.1f} | {push[name][1]:.1f}"
        )
        if pip:
            anchor = pip[name][1] + SLIM_BYTES
            row += f" | {mb(pip[name][1])} | {mb(anchor)}"
        print(row + " |")
    if pip:
        print(
            "\npip on python:3.11-slim: the pip layer plus python:3.11-slim's "
            f"{mb(SLIM_BYTES)} MB (Docker Hub's figure for linux/amd64; not reachable here)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
