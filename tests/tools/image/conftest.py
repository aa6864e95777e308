"""Fixtures of the image tests: a real registry on 127.0.0.1, podman with a private store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

# Not resolved: under Bazel the tree is a runfiles symlink farm.
RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[4]))
MAIN = RUNFILES / "_main"
IMAGES = ("processing", "training", "evaluation", "inference", "pipelines", "service")


def image_dir(name: str) -> Path:
    """The runfiles directory of the package that builds image `name`."""
    return MAIN / ("service" if name == "service" else f"jobs/{name}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def registry(root: Path) -> Iterator[str]:
    """Runs //tools/image:registry_server on a free port; yields `127.0.0.1:PORT`."""
    port = free_port()
    log = open(root.parent / f"registry-{port}.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(MAIN / "tools/image/registry_server"), "--port", str(port), "--root", str(root)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError as err:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"registry did not start: {err}") from err
                time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        log.close()


def podman_env(base: Path) -> dict[str, str]:
    """Environment for podman with its own image store under `base`.

    The run root (sockets) is kept short, under /tmp: socket paths are limited
    to 108 bytes.
    """
    if shutil.which("podman") is None:
        raise RuntimeError("podman is not installed (Debian package podman)")
    base.mkdir(parents=True, exist_ok=True)
    run_root = Path(tempfile.mkdtemp(prefix="slipway-podman-", dir="/tmp"))
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
def images() -> dict[str, Path]:
    """Image name -> runfiles directory of the package that builds it."""
    return {name: image_dir(name) for name in IMAGES}


@pytest.fixture(scope="session")
def start_registry() -> Callable[[Path], AbstractContextManager[str]]:
    """`with start_registry(root) as host:` runs a registry; host is 127.0.0.1:PORT."""
    return registry


@pytest.fixture(scope="session")
def make_podman_env() -> Callable[[Path], dict[str, str]]:
    """`make_podman_env(dir)`: environment for podman with its own store in dir."""
    return podman_env


@pytest.fixture(scope="session")
def port_finder() -> Callable[[], int]:
    """`port_finder()`: a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_port
