"""Reproducible images, from scratch: a nested Bazel in a copy of the sources.

The copy (//:processing_build_srcs: the sources that build reads) gets its own
output base and no disk cache; only the downloads may come from the outer
build's repository cache. Its processing
image must have the digest of this build's (another output base). That image
holds every kind of layer image.bzl writes: the base, group layers (numpy,
pandas, pyarrow, scipy, scikit-learn; torch's and the others' are made by the
same rule and action), the packages layer and the app layer; all six images
come from the same macro, and //tests/tools/release:test_release builds the
other five. Then one application file changes: only the app layer's digest
(and so the config and manifest) changes, and the image's next push, to a real
registry on 127.0.0.1, uploads only that layer and the config.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[4]))
MAIN = RUNFILES / "_main"
PACKAGE = "jobs/processing"
APP_FILE = "lib/slipway/errors.py"


class Copy:
    """The copy of the sources, its registry and the environment of its Bazel."""

    def __init__(self, path: Path, registry: Any, env: dict[str, str]) -> None:
        self.path, self.registry, self.env = path, registry, env

    def bazel(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.path / "tools/bazel"), *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
        )


@pytest.fixture(scope="module")
def copy(
    tmp_path_factory: pytest.TempPathFactory,
    start_registry: Callable[..., Any],
    nested_bazel_cleanup: Callable[[list[str], Path], None],
    sources_copy: Callable[..., Path],
) -> Iterator[Copy]:
    base = tmp_path_factory.mktemp("rebuild")
    path = sources_copy(base / "repo", "processing_build_srcs.txt")
    (base / "home").mkdir()
    # No disk cache: every action runs (the downloads may come from the
    # repository cache that tools/bazel passes on).
    env = {**os.environ, "HOME": str(base / "home"), "SLIPWAY_DISK_CACHE": ""}
    yield Copy(path, start_registry(base / "registry"), env)
    nested_bazel_cleanup(["env", f"HOME={base / 'home'}", str(path / "tools/bazel")], path)


def layout(root: Path) -> dict[str, Any]:
    """Manifest digest, layer digests and config digest of an image layout."""
    index = json.loads((root / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((root / "blobs/sha256" / digest.split(":")[1]).read_text())
    return {
        "manifest": digest,
        "config": manifest["config"]["digest"],
        "layers": [layer["digest"] for layer in manifest["layers"]],
    }


def build_and_push(copy: Copy) -> tuple[dict[str, Any], set[str]]:
    """Builds the image in the copy and pushes it: its digests, and the blobs the push uploaded."""
    done = copy.bazel("build", "--color=no", "--curses=no", f"//{PACKAGE}:oci_image")
    assert done.returncode == 0, done.stderr[-6000:]
    built = layout(copy.path / "bazel-bin" / PACKAGE / "oci_image")
    repository = f"{copy.registry.host}/scratch/processing"
    done = copy.bazel(
        "run", "--color=no", "--curses=no", f"//{PACKAGE}:push", "--", "--repository", repository
    )
    assert done.returncode == 0, done.stderr[-4000:]
    uploaded = set(re.findall(r"pushed blob: (sha256:[0-9a-f]{64})", done.stdout + done.stderr))
    return built, uploaded


def test_from_scratch_digests_match_and_app_change_touches_only_the_app_layer(copy: Copy) -> None:
    first, _ = build_and_push(copy)
    assert first == layout(MAIN / PACKAGE / "oci_image"), "digests differ between output bases"

    app_file = copy.path / APP_FILE
    original = app_file.read_text()
    app_file.write_text(original + "\n# A change to application code only.\n")
    try:
        second, uploaded = build_and_push(copy)
    finally:
        app_file.write_text(original)
    assert first["layers"][:-1] == second["layers"][:-1], "a lower layer changed"
    assert first["layers"][-1] != second["layers"][-1], "the app layer did not change"
    assert uploaded == {second["layers"][-1], second["config"]}
