"""tools/bazel, the entry point: mode choice, config injection and the errors of broken set-ups.

The happy path (install, then build and test) is what every `tools/bazel test //...`
exercises; these tests cover what a user sees when something is missing or broken.
"""

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = Path("tools/bazel")
# Tools the script needs, without any Bazel: PATH for the "no Bazel" cases.
NEEDED = [
    "bash",
    "dirname",
    "basename",
    "id",
    "cat",
    "mkdir",
    "rm",
    "mv",
    "awk",
    "df",
    "stat",
    "flock",
    "python3",
]


@pytest.fixture
def sandbox() -> Iterator[Path]:
    """A copy of tools/bazel and a PATH dir with no Bazel on it, readable by any user."""
    # Not pytest's tmp_path: its parents are private to the user running the tests.
    tmp_path = Path(tempfile.mkdtemp(prefix="slipway-bazel-test-"))
    root = tmp_path / "ws"
    (root / "tools").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "tools" / "bazel")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in NEEDED:
        found = shutil.which(tool)
        assert found, f"{tool} is needed on PATH for this test"
        (bin_dir / tool).symlink_to(found)
    for path in [tmp_path, root, root / "tools", bin_dir]:
        path.chmod(0o755)
    (root / "tools" / "bazel").chmod(0o755)
    yield tmp_path
    shutil.rmtree(tmp_path)


def run(
    sandbox: Path, env: dict[str, str], *args: str, user: int | None = None
) -> subprocess.CompletedProcess[str]:
    base = {
        "PATH": str(sandbox / "bin"),
        "HOME": str(sandbox),
        "SLIPWAY_BAZEL_HOME": str(sandbox / "bazel-home"),
    }
    command = [str(sandbox / "ws" / "tools" / "bazel"), *args]
    if user is not None:
        setpriv = shutil.which("setpriv") or "setpriv"
        command = [setpriv, f"--reuid={user}", f"--regid={user}", "--clear-groups", *command]
    return subprocess.run(
        command, env={**base, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def can_drop_to_nobody() -> str | None:
    if os.geteuid() != 0:
        return "the test runs as a non-root user already"
    if not shutil.which("setpriv"):
        return "setpriv (util-linux) is not installed"
    probe = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "true"], check=False
    )
    if probe.returncode != 0:
        return "this sandbox cannot switch to the nobody user"
    return None


def test_unknown_mode_is_refused(sandbox: Path) -> None:
    result = run(sandbox, {"SLIPWAY_BAZEL_MODE": "sideways"}, "version")
    assert result.returncode == 1
    assert "SLIPWAY_BAZEL_MODE must be auto, online or offline, not 'sideways'" in result.stderr


def test_online_without_any_bazel_says_what_to_install(sandbox: Path) -> None:
    result = run(sandbox, {"SLIPWAY_BAZEL_MODE": "online"}, "version")
    assert result.returncode == 1
    assert "online mode needs bazelisk or a Bazel >= 7 on PATH" in result.stderr


FAKE_BAZEL = """#!/bin/sh
# A Debian-installed Bazel 7 stand-in: prints the argv it would get.
if [ "$1" = --version ]; then echo "bazel 7.7.1"; exit 0; fi
echo "$@"
"""


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_config_goes_after_the_command(sandbox: Path, mode: str) -> None:
    caches = sandbox / ".cache/slipway"
    ws = sandbox / "ws"
    if mode == "online":
        # bazelisk hands over the real Bazel in BAZEL_REAL; echo shows the argv it would get.
        env = {
            "SLIPWAY_BAZEL_MODE": "online",
            "BAZEL_REAL": shutil.which("echo") or "/bin/echo",
            "SLIPWAY_SANDBOX_BASE": "/sandboxes",
        }
        expected_config = ["--config=online"]
        offline_extra: list[str] = []
    else:
        # Offline with Debian's Bazel and rule packages installed natively (as inside the
        # root filesystem tools/bazel installs, where this test runs).
        if not Path("/usr/share/bazel/tools/aspect_bazel_lib").is_dir():
            pytest.skip("offline mode's native path needs Debian's Bazel rule packages here")
        fake = sandbox / "bin" / "bazel"
        fake.write_text(FAKE_BAZEL)
        fake.chmod(0o755)
        env = {
            "SLIPWAY_BAZEL_MODE": "offline",
            "SLIPWAY_WHEEL_DIR": "/srv/wheels",
            "SLIPWAY_SANDBOX_BASE": "/sandboxes",
        }
        expected_config = ["--config=offline"]
        offline_extra = [
            "--repo_env=PIP_FIND_LINKS=/srv/wheels",
            "--test_env=PIP_FIND_LINKS=/srv/wheels",
            f"--experimental_downloader_config={ws}/tools/offline/downloader.cfg",
        ]
    result = run(sandbox, env, "--output_user_root=/x", "test", "//...")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "--output_user_root=/x",
        "test",
        *expected_config,
        f"--repository_cache={caches}/repository-cache",
        f"--disk_cache={caches}/disk-cache",
        "--sandbox_base=/sandboxes",
        *offline_extra,
        "//...",
    ]


def test_cache_settings_and_no_disk_cache(sandbox: Path) -> None:
    result = run(
        sandbox,
        {
            "SLIPWAY_BAZEL_MODE": "online",
            "BAZEL_REAL": shutil.which("echo") or "/bin/echo",
            "SLIPWAY_REPOSITORY_CACHE": "/caches/repository",
            "SLIPWAY_DISK_CACHE": "",
            "SLIPWAY_SANDBOX_BASE": "",
        },
        "build",
        "//...",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "build",
        "--config=online",
        "--repository_cache=/caches/repository",
        "--disk_cache=",
        "--sandbox_base=",
        "//...",
    ]


def shm_is_a_large_tmpfs() -> bool:
    with open("/proc/mounts") as mounts:
        kinds = {fields[1]: fields[2] for fields in (line.split() for line in mounts)}
    if kinds.get("/dev/shm") != "tmpfs":
        return False
    stats = os.statvfs("/dev/shm")
    return stats.f_bavail * stats.f_frsize >= 8 * 1024**3


def test_sandboxes_go_to_a_large_dev_shm_by_default(sandbox: Path) -> None:
    env = {"SLIPWAY_BAZEL_MODE": "online", "BAZEL_REAL": shutil.which("echo") or "/bin/echo"}
    result = run(sandbox, env, "build", "//...")
    assert result.returncode == 0, result.stderr
    expected = "/dev/shm" if shm_is_a_large_tmpfs() else ""
    assert f"--sandbox_base={expected}" in result.stdout.split()


def test_commands_without_config_pass_through(sandbox: Path) -> None:
    result = run(
        sandbox,
        {"SLIPWAY_BAZEL_MODE": "online", "BAZEL_REAL": shutil.which("echo") or "/bin/echo"},
        "shutdown",
    )
    assert result.stdout.split() == ["shutdown"]


def test_not_root_and_no_bazel(sandbox: Path) -> None:
    reason = can_drop_to_nobody()
    if reason:
        pytest.skip(f"cannot run as a non-root user: {reason}")
    result = run(sandbox, {"SLIPWAY_BAZEL_MODE": "offline"}, "version", user=65534)
    assert result.returncode == 1
    assert (
        "no Bazel >= 7 found, and installing Debian's bazel-bootstrap 7.7.1 needs root"
        in result.stderr
    )
    assert not (sandbox / "bazel-home").exists()


def test_damaged_install_without_root_says_how_to_repair(sandbox: Path) -> None:
    reason = can_drop_to_nobody()
    if reason:
        pytest.skip(f"cannot run as a non-root user: {reason}")
    damaged = sandbox / "bazel-home"
    (damaged / "rootfs" / "usr" / "bin").mkdir(parents=True)
    (damaged / "install-key").write_text("from an older package list\n")
    result = run(sandbox, {"SLIPWAY_BAZEL_MODE": "offline"}, "version", user=65534)
    assert result.returncode == 1
    assert f"the Bazel install in {damaged} is incomplete or damaged" in result.stderr
    assert "run tools/bazel once as root" in result.stderr


def test_unreachable_archive_fails_at_the_first_step_and_writes_nothing(sandbox: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the installer runs only as root; this test runs as a non-root user")
    mirror = f"http://127.0.0.1:{closed_port()}/debian"
    result = run(
        sandbox, {"SLIPWAY_BAZEL_MODE": "offline", "SLIPWAY_DEBIAN_MIRROR": mirror}, "version"
    )
    assert result.returncode == 1
    assert f"install step 1/5 failed: Debian's archive at {mirror} is unreachable" in result.stderr
    assert not (sandbox / "bazel-home").exists()
    assert not list(sandbox.glob("bazel-home.partial.*"))


def test_script_is_executable() -> None:
    assert SCRIPT.stat().st_mode & stat.S_IXUSR
