"""tools/release: the release flow, in a nested Bazel in a throwaway git repository.

The repository is a copy of the sources (//:build_srcs) with its own output
base. The release flow runs against a real registry with htpasswd (bcrypt)
authentication on 127.0.0.1, credentials in a Docker config file: each refusal
with its message, a dry run, the happy path, a push cut half-way (the registry
stops) and resumed by the same command, and the immutability of a release tag
in the registry. Tests run in file order and share the repository.

This tests the release flow, not reproducibility (//tests/tools/image:test_rebuild
builds from scratch), so the nested Bazel reuses the outer build's work: its
disk cache (SLIPWAY_DISK_CACHE, inherited) and its pip repositories. The
copy's user.bazelrc overrides each one the images' binaries reach with the
outer build's folder of it (found through this test's runfiles), so that about
90 `pip` runs of rules_python's `whl_library` are not repeated. They are made
from requirements_lock.txt, which this test copies, so they are the ones the
copy would fetch.
"""

from __future__ import annotations

import base64
import crypt  # bcrypt for htpasswd; deprecated in 3.11, still shipped
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
RELEASE = MAIN / "tools/release/release"
USER, PASSWORD = "releaser", "s3cret-pass"


class Repo:
    """The throwaway repository, its registry and the environment of the release tool."""

    def __init__(self, path: Path, registry: Any, env: dict[str, str]) -> None:
        self.path, self.registry, self.env = path, registry, env

    def git(self, *args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.path, capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    def release(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(RELEASE), "--registry", self.registry.host, *args],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=3000,
        )

    def crane(self, *args: str, auth: bool = True) -> subprocess.CompletedProcess[str]:
        env = self.env if auth else {**self.env, "DOCKER_CONFIG": str(self.path.parent / "no-auth")}
        return subprocess.run(["crane", *args], env=env, capture_output=True, text=True)

    def commit(self, rel: str, text: str, message: str) -> None:
        """Appends `text` to `rel` (created if new: the copy holds no docs) and commits it."""
        with open(self.path / rel, "a") as handle:
            handle.write(text)
        self.git("add", rel)
        self.git("commit", "-qm", message)


@pytest.fixture(scope="module")
def repo(
    tmp_path_factory: pytest.TempPathFactory,
    start_registry: Callable[..., Any],
    nested_bazel_cleanup: Callable[[list[str], Path], None],
    sources_copy: Callable[[Path], Path],
) -> Iterator[Repo]:
    base = tmp_path_factory.mktemp("release")
    copy = sources_copy(base / "repo")
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "user.name", "Release Test"],
        ["config", "user.email", "release@example.com"],
        ["add", "-A"],
        ["commit", "-qm", "base"],
    ):
        subprocess.run(["git", *args], cwd=copy, check=True, capture_output=True)
    htpasswd = base / "htpasswd"
    htpasswd.write_text(
        f"{USER}:{crypt.crypt(PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 10))}\n"
    )
    registry = start_registry(base / "registry", htpasswd)
    docker = base / "docker"
    docker.mkdir()
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (docker / "config.json").write_text(json.dumps({"auths": {registry.host: {"auth": token}}}))
    (base / "no-auth").mkdir()
    (base / "home").mkdir()
    env = {
        **os.environ,
        "HOME": str(base / "home"),
        "DOCKER_CONFIG": str(docker),
        "BUILD_WORKSPACE_DIRECTORY": str(copy),
    }
    write_outer_repositories(copy)
    repo = Repo(copy, registry, env)
    repo.commit("README.md", "\n", "second commit")
    repo.git("tag", "-a", "v0.1.0", "-m", "Release 0.1.0", "HEAD~1")
    yield repo
    nested_bazel_cleanup(["env", f"HOME={base / 'home'}", str(copy / "tools/bazel")], copy)


def outer_pip_repositories() -> dict[str, Path]:
    """The outer build's pip repositories in this test's runfiles: canonical name -> folder.

    A runfiles folder `<canonical name>/` (e.g. `rules_python~~pip~pypi_torch`)
    holds links to files in the outer build's `external/<canonical name>/`.
    """
    found: dict[str, Path] = {}
    for entry in sorted(RUNFILES.iterdir()):
        if not re.search(r"[~+]pypi_\w+$", entry.name) or not entry.is_dir():
            continue
        for root, _, files in os.walk(entry):
            if files:
                real = Path(os.path.realpath(Path(root) / files[0]))
                folder = next((p for p in real.parents if p.name == entry.name), None)
                if folder is not None and (folder / "REPO.bazel").is_file():
                    found[entry.name] = folder
                break
    return found


def write_outer_repositories(copy: Path) -> None:
    """Points the copy's Bazel at the outer build's pip repositories (its user.bazelrc, git-ignored)."""
    repositories = outer_pip_repositories()
    assert len(repositories) > 50, f"expected the images' pip repositories, found {repositories}"
    lines = [f"common --override_repository={name}={path}" for name, path in repositories.items()]
    (copy / "user.bazelrc").write_text(
        "# test_release: the outer build's pip repositories (see the test's docstring).\n"
        + "\n".join(lines)
        + "\n"
    )


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("1.2", "is not Semantic Versioning 2.0.0"),
        ("01.2.3", "is not Semantic Versioning 2.0.0"),
        ("1.2.3+build.5", "holds build metadata ('+')"),
        ("0.1.0", "tag v0.1.0 already exists (at "),
        ("0.0.9", "version 0.0.9 is not greater than the last release v0.1.0"),
        ("0.1.0-rc.1", "version 0.1.0-rc.1 is not greater than the last release v0.1.0"),
    ],
)
def test_refusals_name_the_problem(repo: Repo, version: str, message: str) -> None:
    done = repo.release("--version", version, "--deploy")
    assert done.returncode == 1
    assert message in done.stderr
    assert repo.git("tag", "--list") == "v0.1.0"  # no tag made by a refused release


def test_refuses_a_dirty_tree(repo: Repo) -> None:
    (repo.path / "README.md").write_text("changed\n")
    try:
        done = repo.release("--version", "0.2.0")
        assert done.returncode == 1
        assert "the work tree is not clean" in done.stderr
    finally:
        repo.git("checkout", "README.md")


def test_dry_run_changes_nothing(repo: Repo) -> None:
    done = repo.release("--version", "0.2.0", "--deploy", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert (
        f"would push {repo.registry.host}/slipway/service with tags 0.2.0, 0.2, 0, latest"
        in done.stdout
    )
    assert repo.git("tag", "--list", "v0.2.0") == ""


def test_release_pushes_every_image_with_its_tags(
    repo: Repo, image_list: list[dict[str, str]]
) -> None:
    done = repo.release("--version", "0.2.0", "--deploy")
    assert done.returncode == 0, done.stderr[-5000:]
    assert "release: 0.2.0 released" in done.stdout
    manifest = json.loads((repo.path / "dist/release/release-0.2.0.json").read_text())
    assert manifest["git_commit"] == repo.git("rev-parse", "HEAD")
    assert manifest["git_branch"] == "main" and manifest["branch_policy_overridden"] is False
    assert [i["name"] for i in manifest["images"]] == [i["name"] for i in image_list]
    for image in manifest["images"]:
        listed = repo.crane("ls", image["repository"])
        assert sorted(listed.stdout.split()) == ["0", "0.2", "0.2.0", "latest"], listed.stderr
        assert (
            repo.crane("digest", f"{image['repository']}:0.2.0").stdout.strip() == image["digest"]
        )
        sbom = json.loads((repo.path / "dist/release" / image["sbom"]).read_text())
        names = {p["name"]: p for p in sbom["packages"]}
        # Only what each binary reaches: the processing job has no torch.
        assert ("torch" in names) == (image["name"] != "processing"), image["name"]
        if "torch" in names:
            assert names["torch"]["versionInfo"].startswith("2.13.0")
        assert names["python3.11"]["checksums"][0]["algorithm"] == "SHA256"
        # The hash of the one wheel installed, not every platform's from the lock.
        assert len(names["numpy"]["checksums"]) == 1
        assert names["numpy"]["packageFileName"].startswith("numpy-")
    refused = repo.crane("ls", manifest["images"][0]["repository"], auth=False)
    assert refused.returncode != 0 and "UNAUTHORIZED" in refused.stderr.upper()


def test_a_push_cut_half_way_is_finished_by_the_same_command(
    repo: Repo, image_list: list[dict[str, str]]
) -> None:
    repo.commit("README.md", "\nNext.\n", "docs for 0.3.0")
    proc = subprocess.Popen(
        [str(RELEASE), "--registry", repo.registry.host, "--version", "0.3.0", "--deploy"],
        cwd=repo.path,
        env=repo.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith(f"release: 2/{len(image_list)} "):
            repo.registry.stop()  # the registry goes away during the release
            break
    _, stderr = proc.communicate(timeout=1200)
    assert proc.returncode == 1
    assert "0.3.0 is NOT released; run the same command again to finish it" in stderr
    assert not (repo.path / "dist/release/release-0.3.0.json").exists()

    repo.registry.start()
    done = repo.release("--version", "0.3.0", "--deploy")
    assert done.returncode == 0, done.stderr[-5000:]
    assert "resuming that release" in done.stdout
    for image in image_list:
        tags = repo.crane("ls", f"{repo.registry.host}/slipway/{image['name']}").stdout.split()
        assert "0.3.0" in tags and "0.3" in tags, image["name"]


def test_a_release_tag_in_the_registry_is_never_overwritten(repo: Repo) -> None:
    # The processing job's own file: its image (and pipelines', which runs it)
    # changes, the other images need no rebuild.
    repo.commit("jobs/processing/main.py", "\n# changed after 0.3.0\n", "app change")
    repo.git("tag", "-d", "v0.3.0")  # as if another clone released 0.3.0
    done = repo.release("--version", "0.3.0", "--deploy")
    assert done.returncode == 1
    assert "slipway/processing:0.3.0 already exists with digest" in done.stderr
    assert "release tags are immutable" in done.stderr
