"""slipway.lineage: the commit, the tree's state, the data, the lock file and the image."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from slipway import lineage


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_a_git_workspace_gives_its_commit_and_state(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(
        repo,
        "-c",
        "user.name=T",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
    )
    (repo / "f.txt").write_text("1\n")
    git(repo, "add", "f.txt")
    git(repo, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "f")
    manifest = tmp_path / "manifest.json"
    manifest.write_text('{"version": "v1-abc"}\n')
    env = {"BUILD_WORKSPACE_DIRECTORY": str(repo)}

    tags = lineage.of_tags(lineage.collect("v1-abc", manifest, env))
    assert tags["git_commit"] == git(repo, "rev-parse", "HEAD")
    assert tags["git_dirty"] == "false"
    assert tags["data_version"] == "v1-abc"
    assert tags["data_manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert "image_digest" not in tags
    lock = lineage.LOCK_FILE
    assert lock.is_file(), f"{lock}: requirements_lock.txt must be a data dependency"
    assert tags["requirements_lock_sha256"] == hashlib.sha256(lock.read_bytes()).hexdigest()

    (repo / "f.txt").write_text("2\n")
    assert lineage.of_tags(lineage.collect("v1-abc", manifest, env))["git_dirty"] == "true"


def test_outside_git_it_says_unknown_and_the_environment_wins(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.json"
    manifest.write_text("{}\n")
    outside = lineage.of_tags(
        lineage.collect("v1", manifest, {"BUILD_WORKSPACE_DIRECTORY": str(tmp_path)})
    )
    assert outside["git_commit"] == "unknown" and outside["git_dirty"] == "unknown"
    # In an image: the runner names the commit and the image's own digest.
    env = {
        "BUILD_WORKSPACE_DIRECTORY": str(tmp_path),
        "SLIPWAY_GIT_COMMIT": "0" * 40,
        "SLIPWAY_GIT_DIRTY": "false",
        "SLIPWAY_IMAGE_DIGEST": "sha256:" + "a" * 64,
    }
    tags = lineage.collect("v1", manifest, env)
    assert all(key.startswith("slipway.lineage.") for key in tags)
    inside = lineage.of_tags(tags)
    assert inside["git_commit"] == "0" * 40 and inside["git_dirty"] == "false"
    assert inside["image_digest"] == "sha256:" + "a" * 64
