"""Fixtures of the image tests: the built images, podman with a private store."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Not resolved: under Bazel the tree is a runfiles symlink farm.
RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[4]))
MAIN = RUNFILES / "_main"


def podman_env(base: Path, run_root: Path) -> dict[str, str]:
    """Environment for podman with its own image store under `base`.

    The run root (sockets) is a short path, e.g. under /tmp: socket paths are
    limited to 108 bytes.
    """
    if shutil.which("podman") is None:
        raise RuntimeError("podman is not installed (Debian package podman)")
    base.mkdir(parents=True, exist_ok=True)
    conf = base / "storage.conf"
    conf.write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{base}/graph"\nrunroot = "{run_root}"\n'
    )
    registries = base / "registries.conf"
    registries.write_text("unqualified-search-registries = []\n")
    return {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(conf),
        "CONTAINERS_REGISTRIES_CONF": str(registries),
        "PODMAN_IGNORE_CGROUPSV1_WARNING": "1",
        "TMPDIR": "/tmp",
    }


@pytest.fixture(scope="session")
def images(image_list: list[dict[str, str]]) -> dict[str, Path]:
    """Image name -> runfiles directory of the package that builds it."""
    return {image["name"]: MAIN / image["package"] for image in image_list}


@pytest.fixture(scope="session")
def make_podman_env() -> Iterator[Callable[[Path], dict[str, str]]]:
    """`make_podman_env(dir)`: environment for podman with its own store in dir.

    Its run roots, in /tmp, are removed at the end of the session.
    """
    run_roots: list[Path] = []

    def make(base: Path) -> dict[str, str]:
        run_roots.append(Path(tempfile.mkdtemp(prefix="slipway-podman-", dir="/tmp")))
        return podman_env(base, run_roots[-1])

    yield make
    for run_root in run_roots:
        shutil.rmtree(run_root, ignore_errors=True)


@pytest.fixture(scope="session")
def push_images(
    images: dict[str, Path], start_registry: Callable[[Path], Any]
) -> Callable[[Path, Iterable[str]], str]:
    """`push_images(root, names)`: a registry on 127.0.0.1 storing under `root`, holding
    each named image pushed by its `:push` (with its tags); returns its host:port.

    Needs crane, podman and docker-registry (the tests that push also run podman).
    """

    def push(root: Path, names: Iterable[str]) -> str:
        tools = ("crane", "podman", "docker-registry")
        missing = [tool for tool in tools if shutil.which(tool) is None]
        assert not missing, f"tools missing: {missing} (Debian packages {' '.join(tools)})"
        host: str = start_registry(root).host
        for name in names:
            done = subprocess.run(
                [str(images[name] / "push_push.sh"), "--repository", f"{host}/slipway/{name}"],
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"push {name} failed:\n{done.stdout}\n{done.stderr}"
        return host

    return push
