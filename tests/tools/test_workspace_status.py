"""tools/workspace_status.sh: the semver stamp, in a throwaway git repository."""

import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path("tools/workspace_status.sh")


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "tools").mkdir()
    shutil.copy(SCRIPT, tmp_path / "tools" / "workspace_status.sh")
    (tmp_path / "VERSION").write_text("1.3.0\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-qm", "init")
    return tmp_path


def status(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(repo / "tools" / "workspace_status.sh")],
        capture_output=True,
        text=True,
        check=False,
    )


def test_untagged_head_is_a_snapshot_of_the_next_version(repo: Path) -> None:
    assert status(repo).stdout == "STABLE_VERSION 1.3.0-SNAPSHOT\n"


def test_clean_head_at_a_release_tag_is_that_version(repo: Path) -> None:
    git(repo, "tag", "-a", "v1.2.9", "-m", "release 1.2.9")
    assert status(repo).stdout == "STABLE_VERSION 1.2.9\n"


def test_clean_head_at_a_prerelease_tag_is_that_version(repo: Path) -> None:
    git(repo, "tag", "-a", "v1.3.0-rc.1", "-m", "release 1.3.0-rc.1")
    assert status(repo).stdout == "STABLE_VERSION 1.3.0-rc.1\n"


def test_dirty_tree_at_a_tag_is_a_snapshot(repo: Path) -> None:
    git(repo, "tag", "-a", "v1.2.9", "-m", "release 1.2.9")
    (repo / "VERSION").write_text("1.3.1\n")
    assert status(repo).stdout == "STABLE_VERSION 1.3.1-SNAPSHOT\n"


def test_non_semver_tag_is_ignored(repo: Path) -> None:
    git(repo, "tag", "v1.2.9+build.5")
    assert status(repo).stdout == "STABLE_VERSION 1.3.0-SNAPSHOT\n"


def test_bad_version_file_is_refused(repo: Path) -> None:
    (repo / "VERSION").write_text("one\n")
    result = status(repo)
    assert result.returncode == 1
    assert "VERSION must hold X.Y.Z, not 'one'" in result.stderr
