"""Reproducible images and an application-only change, through a nested Bazel.

From a copy of the sources (//:build_srcs, a declared input), a second Bazel
in a fresh output base builds two images from scratch (pip repositories,
layers; only the downloads may come from the outer build's repository cache);
the digests must equal those of this build (another output base). Then one
application source file changes: in both images only the application layer's
digest (and so the config and manifest) may change, and the service's next
push through `:push` must upload only that layer and the config.

The two images cover every kind of layer that image.bzl writes: the base, the
shared torch group layer (service), a packages layer with and without torch
beside it, and the app layer. All six images come from the same macro; building
the other four from scratch as well would add minutes and no new kind of layer.

Slow (a cold build, ~3 min on 2 cores) and needs the network that the build
needs (PyPI, npm, Debian's archive): tagged e2e, exclusive.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

APP_FILE = "lib/slipway/errors.py"
# Built from scratch; see the module docstring.
REBUILT = ("processing", "service")


def layout(root: Path, name: str) -> dict[str, object]:
    """Manifest digest, layer digests and config digest of an image layout."""
    index = json.loads((root / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((root / "blobs/sha256" / digest.split(":")[1]).read_text())
    return {
        "manifest": digest,
        "config": manifest["config"]["digest"],
        "layers": [layer["digest"] for layer in manifest["layers"]],
    }


@pytest.fixture(scope="module")
def nested(
    tmp_path_factory: pytest.TempPathFactory,
    nested_bazel_cleanup: Callable[[list[str], Path], None],
    sources_copy: Callable[[Path], Path],
) -> Iterator[tuple[Path, list[str]]]:
    """A copy of the sources and the command that runs its Bazel."""
    base = tmp_path_factory.mktemp("nested")
    copy = sources_copy(base / "ws")
    home = base / "home"
    home.mkdir()
    # tools/bazel picks online or offline as it does for a user. From scratch:
    # a fresh HOME (pip's cache) and output base, no disk cache; only the
    # repository cache (SLIPWAY_REPOSITORY_CACHE, inherited) is the outer one.
    bazel = [
        "env",
        f"HOME={home}",
        "SLIPWAY_DISK_CACHE=",
        str(copy / "tools/bazel"),
        f"--output_base={base / 'output'}",
    ]
    yield copy, bazel
    nested_bazel_cleanup(bazel, copy)


def build_all(
    copy: Path, bazel: list[str], image_list: list[dict[str, str]]
) -> dict[str, dict[str, object]]:
    """Builds every image in the copy: image name -> its layout's digests."""
    targets = [image["oci_image"] for image in image_list]
    done = subprocess.run(
        [*bazel, "build", "--color=no", "--curses=no", *targets],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-6000:]
    return {
        image["name"]: layout(copy / "bazel-bin" / image["package"] / "oci_image", image["name"])
        for image in image_list
    }


def test_from_scratch_digests_match_and_app_change_touches_only_the_app_layer(
    nested: tuple[Path, list[str]],
    tmp_path: Path,
    images: dict[str, Path],
    image_list: list[dict[str, str]],
    start_registry: Callable[[Path], Any],
) -> None:
    copy, bazel = nested
    image_list = [image for image in image_list if image["name"] in REBUILT]
    assert len(image_list) == len(REBUILT), "an image of REBUILT is not in images.json"
    first = build_all(copy, bazel, image_list)
    for name in REBUILT:
        outer = layout(images[name] / "oci_image", name)
        assert first[name] == outer, f"{name}: digests differ between output bases"

    host = start_registry(tmp_path / "registry").host
    push = [
        *bazel,
        "run",
        "--color=no",
        "--curses=no",
        "//service:push",
        "--",
        "--repository",
        f"{host}/slipway/service",
    ]
    done = subprocess.run(push, cwd=copy, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]

    with open(copy / APP_FILE, "a") as handle:
        handle.write("\n# A change to application code only.\n")
    second = build_all(copy, bazel, image_list)
    for name in REBUILT:
        before, after = first[name], second[name]
        assert before["layers"][:-1] == after["layers"][:-1], f"{name}: a lower layer changed"  # type: ignore[index]
        assert before["layers"][-1] != after["layers"][-1], f"{name}: the app layer did not change"  # type: ignore[index]

    done = subprocess.run(push, cwd=copy, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    uploaded = set(re.findall(r"pushed blob: (sha256:[0-9a-f]{64})", done.stdout + done.stderr))
    assert uploaded == {second["service"]["layers"][-1], second["service"]["config"]}  # type: ignore[index]
