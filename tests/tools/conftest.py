"""Fixtures of the tools tests: a real registry (//tools/image:registry_server) on
127.0.0.1, and for the nested-Bazel tests a copy of the sources and the clean-up."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

# Not resolved: under Bazel the tree is a runfiles symlink farm.
RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[3]))
MAIN = RUNFILES / "_main"
# //tools/image:images.json: name, package and target labels of every image.
IMAGES_JSON = MAIN / "tools/image/images.json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Registry:
    """docker-registry on 127.0.0.1:`port` storing under `root`; restartable on the same port."""

    def __init__(self, root: Path, htpasswd: Path | None = None) -> None:
        self.root, self.htpasswd = root, htpasswd
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Registry:
        """Starts the server and waits until /v2/ answers (200, or 401 with auth)."""
        cmd = [
            str(MAIN / "tools/image/registry_server"),
            "--port",
            str(self.port),
            "--root",
            str(self.root),
        ]
        if self.htpasswd:
            cmd += ["--htpasswd", str(self.htpasswd)]
        log = open(self.root.parent / f"registry-{self.port}.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1)
                return self
            except urllib.error.HTTPError as err:
                if err.code == 401:
                    return self
            except OSError as err:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"registry did not start: {err}") from err
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=15)


@pytest.fixture(scope="session")
def start_registry() -> Iterator[Callable[..., Registry]]:
    """`start_registry(root, htpasswd=None)`: a running Registry, stopped at the end."""
    started: list[Registry] = []

    def start(root: Path, htpasswd: Path | None = None) -> Registry:
        started.append(Registry(root, htpasswd).start())
        return started[-1]

    yield start
    for registry in started:
        registry.stop()


@pytest.fixture(scope="session")
def image_list() -> list[dict[str, str]]:
    """The images, in release order: dicts of name, package, oci_image, push, tags."""
    return json.loads(IMAGES_JSON.read_text())  # type: ignore[no-any-return]


def copy_sources(dest: Path, listing: str = "build_srcs.txt") -> Path:
    """Copies a part of the sources from the runfiles to `dest`.

    The files are those listed in `listing`, the list file of a source_subset
    (tools/srcs.bzl) that the test has as data: build_srcs.txt (//:build_srcs,
    the sources without tests/ and docs) by default. Each is copied as a real
    file with its mode, through its runfiles link. Not a git repository.
    """
    for rel in (MAIN / listing).read_text().splitlines():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(MAIN / rel, dest / rel)
    return dest


@pytest.fixture(scope="session")
def sources_copy() -> Callable[..., Path]:
    """`sources_copy(dest[, listing])`: see copy_sources."""
    return copy_sources


def remove_output_base(bazel: list[str], cwd: Path) -> None:
    """Shuts a nested Bazel down and deletes its output base (gigabytes of outputs).

    Also its sandbox folder, which Bazel keeps outside the output base when
    tools/bazel sets --sandbox_base (in /dev/shm: memory until a reboot):
    `<sandbox base>/bazel-sandbox.<sha256 of the output base path>`.
    """
    info = subprocess.run([*bazel, "info", "output_base"], cwd=cwd, capture_output=True, text=True)
    subprocess.run([*bazel, "shutdown"], cwd=cwd, capture_output=True)
    base = Path(info.stdout.strip())
    if info.returncode == 0 and base.is_dir():
        subprocess.run(["chmod", "-R", "u+w", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
        name = "bazel-sandbox." + hashlib.sha256(str(base).encode()).hexdigest()
        for sandbox_base in {"/dev/shm", os.environ.get("SLIPWAY_SANDBOX_BASE") or "/dev/shm"}:
            shutil.rmtree(Path(sandbox_base) / name, ignore_errors=True)


@pytest.fixture(scope="session")
def nested_bazel_cleanup() -> Callable[[list[str], Path], None]:
    """`nested_bazel_cleanup(bazel_command, workspace)`: see remove_output_base."""
    return remove_output_base


@pytest.fixture(scope="session")
def port_finder() -> Callable[[], int]:
    """`port_finder()`: a TCP port on 127.0.0.1 that was free a moment ago."""
    return free_port
