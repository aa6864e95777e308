"""tools/release: SemVer 2.0.0's grammar exactly, OCI-valid tags, and the wheels' hashes."""

from __future__ import annotations

import os
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tools.release import release

RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[4]))


@pytest.mark.parametrize(
    "text",
    ["0.0.0", "1.2.3", "10.20.30", "1.2.3-rc.1", "1.0.0-alpha.beta-1.0", "1.0.0-0a", "1.0.0--"],
)
def test_semver_accepts_its_grammar(text: str) -> None:
    assert str(release.Version.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1.2", "is not Semantic Versioning"),
        ("01.2.3", "is not Semantic Versioning"),
        ("1.2.3-01", "is not Semantic Versioning"),  # numeric identifiers have no leading 0
        ("1.2.3-rc..1", "is not Semantic Versioning"),
        ("1.2.3-", "is not Semantic Versioning"),
        ("v1.2.3", "is not Semantic Versioning"),
        ("1.2.3\n", "is not Semantic Versioning"),  # `$` would accept a final newline
        ("\u0661.\u0662.\u0663", "is not Semantic Versioning"),  # Arabic-Indic digits
        ("1.2.3-r\u00e9c", "is not Semantic Versioning"),
        ("1.2.3+build.5", "holds build metadata"),
        ("1.2.3-" + "a" * 130, "not a valid OCI tag"),
    ],
)
def test_semver_refuses_everything_else(text: str, message: str) -> None:
    with pytest.raises(release.ReleaseError, match=message):
        release.Version.parse(text)


def test_precedence_and_tags() -> None:
    ordered = ["1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2"]
    ordered += ["1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "2.0.0"]
    parsed = [release.Version.parse(v) for v in ordered]
    assert sorted(parsed, key=release.Version.key) == parsed
    assert release.Version.parse("1.2.3").remote_tags() == ["1.2.3", "1.2", "1", "latest"]
    assert release.Version.parse("1.2.3-rc.1").remote_tags() == ["1.2.3-rc.1"]


# PyPI has only a source distribution of these: pip builds the wheel here, so its
# hash cannot be in the lock (which pins the sdist's). Tool dependencies only
# (kfp's); the release refuses such a wheel in an image (no checksum for the SBOM).
BUILT_FROM_SDIST = {"kfp-server-api"}


def test_each_installed_wheel_has_one_hash_from_the_lock() -> None:
    wheels = release.wheel_hashes()
    locked = release.lock_hashes(RUNFILES / "_main")
    assert ("numpy", locked_version(locked, "numpy")) in wheels
    built_here = set()
    for (name, version), (digest, wheel) in wheels.items():
        assert wheel.endswith(".whl")
        allowed = locked.get((name, version), []) + locked.get((name, version.split("+")[0]), [])
        if digest not in allowed:
            built_here.add(name)
    assert built_here == BUILT_FROM_SDIST
    # The lock holds every platform's wheels (numpy: dozens); an image holds one.
    assert len(locked[("numpy", locked_version(locked, "numpy"))]) > 1


def locked_version(locked: dict[tuple[str, str], list[str]], name: str) -> str:
    return next(version for (n, version) in locked if n == name)


def test_floating_tags_only_move_forward() -> None:
    v = release.Version.parse
    assert release.floating_tags(v("1.2.4"), ["1.2.3", "1.1.0", "latest"]) == ["1.2", "1", "latest"]
    assert release.floating_tags(v("1.2.4"), ["1.3.0"]) == ["1.2"]
    assert release.floating_tags(v("1.2.4"), ["2.0.0"]) == ["1.2", "1"]
    assert release.floating_tags(v("1.2.4"), ["1.2.5", "junk"]) == []
    assert release.floating_tags(v("1.2.4"), ["1.3.0-rc.1"]) == ["1.2", "1", "latest"]
    assert release.floating_tags(v("1.3.0-rc.2"), []) == []


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def clone_without_tags(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose remote has release tags its (shallow-like) clone lacks."""
    origin = tmp_path / "origin"
    origin.mkdir()
    _git(origin, "init", "-q")
    for key, value in (("user.name", "T"), ("user.email", "t@example.com")):
        _git(origin, "config", key, value)
    for n in (1, 2):
        (origin / "f.txt").write_text(f"{n}\n")
        _git(origin, "add", "f.txt")
        _git(origin, "commit", "-qm", f"commit {n}")
    _git(origin, "tag", "-a", "v0.9.0", "-m", "0.9.0", "HEAD~1")
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", "--no-tags", str(origin), str(clone))
    assert _git(clone, "tag", "--list") == ""
    return origin, clone


def test_a_tagless_clone_still_sees_the_remote_releases(
    clone_without_tags: tuple[Path, Path],
) -> None:
    origin, clone = clone_without_tags
    with pytest.raises(release.ReleaseError, match="not greater than the last release v0.9.0"):
        release.check_git(clone, release.Version.parse("0.5.0"))
    _git(origin, "tag", "-a", "v1.0.0", "-m", "1.0.0", "HEAD~1")
    with pytest.raises(release.ReleaseError, match=r"tag v1.0.0 already exists \(at "):
        release.check_git(clone, release.Version.parse("1.0.0"))
    assert release.check_git(clone, release.Version.parse("1.1.0")) is False


def test_a_remote_that_cannot_be_read_is_refused(clone_without_tags: tuple[Path, Path]) -> None:
    _, clone = clone_without_tags
    _git(clone, "remote", "set-url", "origin", str(clone.parent / "gone"))
    with pytest.raises(release.ReleaseError, match="cannot read the tags of remote 'origin'"):
        release.check_git(clone, release.Version.parse("1.1.0"))


def test_the_registry_tags_count_too(start_registry: Callable[..., Any], tmp_path: Path) -> None:
    registry = start_registry(tmp_path / "registry")
    image = release.Image(
        "processing", "jobs/processing", {}, f"{registry.host}/slipway/processing"
    )
    assert release.registry_tags(tmp_path, image) == []
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        tar.addfile(tarfile.TarInfo("empty"))
    for tag in ("0.9.0", "latest"):
        done = subprocess.run(
            ["crane", "append", "-f", str(layer), "-t", f"{image.repository}:{tag}"],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
    tags = release.registry_tags(tmp_path, image)
    assert sorted(tags) == ["0.9.0", "latest"]
    with pytest.raises(release.ReleaseError, match=r"processing: 0.9.0"):
        release.check_newer(
            release.Version.parse("0.5.0"), tags, f"release in {image.repository}: "
        )
    assert release.floating_tags(release.Version.parse("0.9.1"), tags) == ["0.9", "0", "latest"]


@pytest.fixture
def flow_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throwaway repository with one commit on `main`, the release tool's workspace."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.name", "T"), ("user.email", "t@example.com")):
        _git(repo, "config", key, value)
    (repo / "f.txt").write_text("1\n")
    _git(repo, "add", "f.txt")
    _git(repo, "commit", "-qm", "first")
    monkeypatch.setenv("BUILD_WORKSPACE_DIRECTORY", str(repo))
    for name in release.CI_BRANCH_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return repo


def test_git_flow_final_releases_from_main_only_prereleases_also_from_release_branches(
    flow_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _git(flow_repo, "checkout", "-q", "-b", "feature/faster-loader")
    assert release.main(["--version", "1.4.0", "--dry-run"]) == 1
    err = capsys.readouterr().err
    assert "final release 1.4.0 refused on branch 'feature/faster-loader'" in err
    assert "final releases come only from main or master" in err
    assert "--allow-any-branch" in err
    assert release.main(["--version", "1.4.0-rc.1", "--dry-run"]) == 1
    assert (
        "prerelease 1.4.0-rc.1 refused on branch 'feature/faster-loader'" in capsys.readouterr().err
    )

    _git(flow_repo, "checkout", "-q", "main")
    assert release.main(["--version", "1.4.0", "--dry-run"]) == 0
    assert "all checks passed" in capsys.readouterr().out

    _git(flow_repo, "checkout", "-q", "-b", "release/1.4.0")
    assert release.main(["--version", "1.4.0-rc.1", "--dry-run"]) == 0
    assert release.main(["--version", "1.4.0", "--dry-run"]) == 1  # final: main only
    assert "refused on branch 'release/1.4.0'" in capsys.readouterr().err
    assert release.main(["--version", "1.4.0", "--dry-run", "--allow-any-branch"]) == 0
    assert "--allow-any-branch: releasing from 'release/1.4.0'" in capsys.readouterr().out


def test_a_detached_head_takes_its_branch_from_the_ci(flow_repo: Path) -> None:
    _git(flow_repo, "checkout", "-q", "--detach")
    with pytest.raises(release.ReleaseError, match="HEAD is detached.*SLIPWAY_RELEASE_BRANCH"):
        release.current_branch(flow_repo, {})
    # A tag build on GitHub Actions names the tag, not a branch.
    tag_build = {"GITHUB_REF_NAME": "v1.0.0", "GITHUB_REF_TYPE": "tag"}
    with pytest.raises(release.ReleaseError, match="HEAD is detached"):
        release.current_branch(flow_repo, tag_build)
    branch_build = {"GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "branch"}
    assert release.current_branch(flow_repo, branch_build) == "main"
    assert release.current_branch(flow_repo, {"CI_COMMIT_BRANCH": "hotfix/1.3.1"}) == "hotfix/1.3.1"
    assert release.current_branch(flow_repo, {"SLIPWAY_RELEASE_BRANCH": "main"}) == "main"


def test_the_policy_is_read_from_pyproject(flow_repo: Path) -> None:
    assert release.branch_policy(flow_repo) == release.DEFAULT_POLICY  # no pyproject.toml
    pyproject = flow_repo / "pyproject.toml"
    pyproject.write_text('[tool.slipway.release]\nfinal-branches = ["trunk"]\n')
    policy = release.branch_policy(flow_repo)
    assert policy["final-branches"] == ["trunk"]
    release.check_branch("trunk", release.Version.parse("2.0.0"), policy)
    with pytest.raises(release.ReleaseError, match="from trunk, prereleases"):
        release.check_branch("main", release.Version.parse("2.0.0"), policy)
    pyproject.write_text('[tool.slipway.release]\nfinal-branch = "main"\n')
    with pytest.raises(release.ReleaseError, match="no setting 'final-branch'"):
        release.branch_policy(flow_repo)
    pyproject.write_text('[tool.slipway.release]\nfinal-branches = "main"\n')
    with pytest.raises(release.ReleaseError, match="must be a list of branch names"):
        release.branch_policy(flow_repo)
