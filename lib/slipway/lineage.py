"""Lineage of a model version: what code, data, dependencies and image made it.

`collect` returns the tags that training records on the run and on the registered
version (all strings, keys under `slipway.lineage.`):

    git_commit        the commit of the source tree (SLIPWAY_GIT_COMMIT, else `git
                      rev-parse HEAD` in the workspace), or "unknown" outside git
    git_dirty         "true"/"false": uncommitted changes (SLIPWAY_GIT_DIRTY, else
                      `git status --porcelain`), "unknown" outside git
    data_version      the processed-data version, e.g. v1-7468d0fd94ac
    data_manifest_sha256  SHA-256 of that version's manifest.json (its checksums
                      pin every split)
    requirements_lock_sha256  SHA-256 of requirements_lock.txt, the pinned wheels
    image_digest      the job's image (SLIPWAY_IMAGE_DIGEST, set by whoever runs
                      the container: `bazel run :image`, the KFP pipeline), absent
                      outside an image

An image cannot hold its own digest (the digest covers its contents), so it learns
it from its environment; builds stay reproducible.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from slipway.io import sha256_file

PREFIX = "slipway.lineage."
# requirements_lock.txt at the repository root, two levels above this package: in
# Bazel's runfiles and images (a data dependency), or in the work tree (pip install -e).
LOCK_FILE = Path(__file__).parents[2] / "requirements_lock.txt"


def _git(workspace: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(workspace), *args], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout if done.returncode == 0 else None


def collect(
    data_version: str, manifest_path: Path, environ: dict[str, str] | None = None
) -> dict[str, str]:
    """The lineage tags of a training run (see the module docstring).

    Args:
        data_version: the processed-data version trained on.
        manifest_path: that version's manifest.json.
        environ: the environment to read (default: os.environ).
    """
    env = os.environ if environ is None else environ
    workspace = Path(env.get("BUILD_WORKSPACE_DIRECTORY") or Path.cwd())
    commit = env.get("SLIPWAY_GIT_COMMIT") or (_git(workspace, "rev-parse", "HEAD") or "").strip()
    dirty = env.get("SLIPWAY_GIT_DIRTY")
    if dirty is None and commit and "SLIPWAY_GIT_COMMIT" not in env:
        status = _git(workspace, "status", "--porcelain", "--untracked-files=no")
        dirty = "unknown" if status is None else str(bool(status.strip())).lower()
    tags = {
        "git_commit": commit or "unknown",
        "git_dirty": dirty or "unknown",
        "data_version": data_version,
        "data_manifest_sha256": sha256_file(manifest_path),
    }
    tags["requirements_lock_sha256"] = sha256_file(LOCK_FILE) if LOCK_FILE.is_file() else "unknown"
    if env.get("SLIPWAY_IMAGE_DIGEST"):
        tags["image_digest"] = env["SLIPWAY_IMAGE_DIGEST"]
    return {PREFIX + key: value for key, value in tags.items()}


def of_tags(tags: dict[str, str]) -> dict[str, str]:
    """The lineage among a run's or version's tags, keys without the prefix."""
    return {k[len(PREFIX) :]: v for k, v in sorted(tags.items()) if k.startswith(PREFIX)}
