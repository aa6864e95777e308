"""Cut a release: tag, build every image stamped, push it, write a manifest and SBOMs.

    tools/bazel run //tools/release -- --version X.Y.Z[-PRERELEASE] [--deploy]
        [--registry HOST[:PORT][/PATH]] [--dry-run] [--output-dir DIR]
        [--allow-any-branch]

Steps, each refusing with a message that names the problem (exit 1):
 1. the version is Semantic Versioning 2.0.0 (https://semver.org) without build
    metadata (`+`), which OCI tags cannot hold;
 2. the branch follows Git-Flow: a final release only from a release branch
    (`main` or `master`), a prerelease also from `release/*` or `hotfix/*`.
    A team changes the lists in pyproject.toml, [tool.slipway.release]
    (`final-branches`, `prerelease-branches`); a detached HEAD
    takes its branch from SLIPWAY_RELEASE_BRANCH or the CI's variables;
    --allow-any-branch overrides the rule and the manifest records it;
 3. the work tree is clean; the tag vX.Y.Z does not exist elsewhere than HEAD
    (at HEAD it is a release to resume); the version is greater than every
    other release tag (semver precedence);
 4. creates the annotated tag vX.Y.Z and builds every image with
    --config=release, so their tag files hold X.Y.Z;
 5. writes an SPDX 2.3 SBOM per image (Debian packages from the base lock,
    Python distributions with the SHA-256 of the wheel file installed, which
    must be one of requirements_lock.txt's hashes);
 6. with --deploy, pushes each image through its `:push` target with the tag
    X.Y.Z, plus X.Y, X and latest for a final release. X.Y.Z is immutable: an
    image whose X.Y.Z already exists in the registry with another digest is
    refused; with the same digest it was pushed by an earlier, interrupted run
    and is skipped (a rerun of the same command finishes a failed release);
 7. writes release-X.Y.Z.json (digests, tags, SBOM files) into --output-dir
    only when every step succeeded, and prints a table of image, digest, tags.

Credentials come from the Docker config file (`docker login`, or DOCKER_CONFIG).
--dry-run checks everything and prints the plan; it tags, builds and pushes nothing.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# The images to release (//tools/image:images.json, from tools/image/images.bzl),
# in this binary's runfiles: tools/release/release.py -> the runfiles root.
IMAGES_JSON = Path(__file__).parents[2] / "tools/image/images.json"
# `sha256  wheel-file-name` per locked package (//tools/release:wheel_hashes).
WHEEL_HASHES = Path(__file__).parents[2] / "tools/release/wheel_hashes.txt"
DEFAULT_REGISTRY = "localhost:5000"
# https://semver.org, "Is there a suggested regular expression", without build metadata;
# ASCII digits only (Python's \d also matches other scripts' digits), matched whole.
_NUM = r"(?:0|[1-9][0-9]*)"
_IDENT = rf"(?:{_NUM}|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)"
SEMVER = re.compile(rf"({_NUM})\.({_NUM})\.({_NUM})(?:-({_IDENT}(?:\.{_IDENT})*))?")
# The OCI distribution spec's tag grammar (at most 128 characters).
OCI_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


# Git-Flow (https://nvie.com/posts/a-successful-git-branching-model/): releases are
# tagged on the release branch. A team's pyproject.toml may set either list in
# [tool.slipway.release]; this is the default.
DEFAULT_POLICY = {
    "final-branches": ["main", "master"],
    "prerelease-branches": ["release/*", "hotfix/*"],
}
# Where CI services name the branch of a detached checkout, first match wins.
CI_BRANCH_VARIABLES = (
    "SLIPWAY_RELEASE_BRANCH",  # ours, for any CI or a hand-made detached checkout
    "GITHUB_REF_NAME",  # GitHub Actions, when GITHUB_REF_TYPE is "branch"
    "CI_COMMIT_BRANCH",  # GitLab CI
    "BUILDKITE_BRANCH",
    "CIRCLE_BRANCH",
    "BRANCH_NAME",  # Jenkins multibranch
)


class ReleaseError(Exception):
    """A refusal or a failed step; the message names it."""


@dataclass(frozen=True, order=False)
class Version:
    """A semantic version without build metadata."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parses X.Y.Z[-PRERELEASE].

        Raises:
            ReleaseError: not SemVer 2.0.0, or holds build metadata (`+`).
        """
        if "+" in text:
            raise ReleaseError(
                f"version '{text}' holds build metadata ('+'), which OCI tags cannot hold"
            )
        match = SEMVER.fullmatch(text)
        if not match:
            raise ReleaseError(
                f"version '{text}' is not Semantic Versioning 2.0.0 (X.Y.Z or X.Y.Z-PRERELEASE)"
            )
        pre = tuple(match[4].split(".")) if match[4] else ()
        version = cls(int(match[1]), int(match[2]), int(match[3]), pre)
        for tag in version.remote_tags():
            if not OCI_TAG.fullmatch(tag):
                raise ReleaseError(
                    f"version '{text}' gives the tag '{tag}', which is not a valid OCI tag"
                    " (at most 128 characters of [a-zA-Z0-9._-])"
                )
        return version

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return core + ("-" + ".".join(self.prerelease) if self.prerelease else "")

    def key(self) -> tuple[Any, ...]:
        """Sort key of SemVer 2.0.0 precedence (section 11)."""
        if not self.prerelease:
            pre: tuple[Any, ...] = ((1,),)  # a release ranks above its prereleases
        else:
            pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.prerelease)
            pre = ((0,), *pre)
        return (self.major, self.minor, self.patch, pre)

    def remote_tags(self) -> list[str]:
        """Tags to push: X.Y.Z, and X.Y, X, latest for a final release."""
        if self.prerelease:
            return [str(self)]
        return [str(self), f"{self.major}.{self.minor}", str(self.major), "latest"]


@dataclass
class Image:
    name: str
    package: str  # workspace path, e.g. jobs/training
    targets: dict[str, str]  # labels of its oci_image, push and tags targets
    repository: str
    digest: str = ""
    tags: list[str] = field(default_factory=list)
    sbom: str = ""
    pushed: bool = False
    registry_tags: list[str] = field(default_factory=list)  # before this release


def read_images(registry: str) -> list[Image]:
    """The images of images.json, each with its repository in `registry`.

    Raises:
        ReleaseError: images.json is missing (the tool runs outside its runfiles).
    """
    if not IMAGES_JSON.is_file():
        raise ReleaseError(
            f"{IMAGES_JSON} not found: run the tool with `tools/bazel run //tools/release`"
        )
    return [
        Image(
            entry["name"],
            entry["package"],
            {target: entry[target] for target in ("oci_image", "push", "tags")},
            f"{registry}/slipway/{entry['name']}",
        )
        for entry in json.loads(IMAGES_JSON.read_text())
    ]


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise ReleaseError(f"`{' '.join(cmd)}` failed:\n{(done.stderr or done.stdout)[-3000:]}")
    return done


def git(workspace: Path, *args: str) -> str:
    return run(["git", *args], workspace).stdout.strip()


def release_tags(workspace: Path) -> dict[str, str]:
    """Tag name -> commit, of the local tags and of the remote's (`origin`, else the first).

    A shallow or tagless clone does not hide a release made elsewhere.

    Raises:
        ReleaseError: the remote's tags cannot be read, or it has a tag of the same
            name at another commit than the local one.
    """
    tags: dict[str, str] = {}
    # One call: each tag's object, and for an annotated tag the commit it points at.
    listing = git(
        workspace,
        "for-each-ref",
        "--format=%(refname:strip=2) %(objectname) %(*objectname)",
        "refs/tags",
    )
    for line in listing.splitlines():
        name, obj, *peeled = line.split()
        tags[name] = peeled[0] if peeled else obj
    remotes = git(workspace, "remote").split()
    if not remotes:
        return tags
    remote = "origin" if "origin" in remotes else remotes[0]
    done = run(["git", "ls-remote", "--tags", remote], workspace, check=False)
    if done.returncode != 0:
        raise ReleaseError(
            f"cannot read the tags of remote {remote!r} (`git ls-remote --tags {remote}`):"
            f" {done.stderr.strip()[-2000:]}"
        )
    remote_tags: dict[str, str] = {}
    for line in done.stdout.splitlines():
        commit, ref = line.split()
        name = ref.removeprefix("refs/tags/")
        if name.endswith("^{}"):  # the commit an annotated tag points at
            remote_tags[name[:-3]] = commit
        else:
            remote_tags.setdefault(name, commit)
    for name, commit in remote_tags.items():
        if name in tags and tags[name] != commit:
            raise ReleaseError(
                f"tag {name} is at {tags[name][:12]} here but at {commit[:12]} on {remote!r}"
            )
        tags[name] = commit
    return tags


def branch_policy(workspace: Path) -> dict[str, list[str]]:
    """The Git-Flow branch lists: DEFAULT_POLICY, updated by pyproject.toml's
    [tool.slipway.release] (keys `final-branches`, `prerelease-branches`: lists
    of branch names or fnmatch patterns).

    Raises:
        ReleaseError: pyproject.toml is not TOML, or a key or value is not as above.
    """
    policy = {key: list(value) for key, value in DEFAULT_POLICY.items()}
    path = workspace / "pyproject.toml"
    if not path.exists():
        return policy
    try:
        table = (
            tomllib.loads(path.read_text()).get("tool", {}).get("slipway", {}).get("release", {})
        )
    except tomllib.TOMLDecodeError as err:
        raise ReleaseError(f"{path}: not valid TOML: {err}") from None
    for key, value in table.items():
        if key not in policy:
            raise ReleaseError(
                f"{path}: [tool.slipway.release] has no setting {key!r}; "
                f"known: {', '.join(sorted(policy))}"
            )
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ReleaseError(
                f"{path}: [tool.slipway.release] {key} must be a list of branch names"
            )
        policy[key] = value
    return policy


def current_branch(workspace: Path, environ: dict[str, str] | None = None) -> str:
    """The checked-out branch; for a detached HEAD, the one the CI's variables name.

    Raises:
        ReleaseError: HEAD is detached and no variable names the branch.
    """
    done = run(["git", "symbolic-ref", "--quiet", "--short", "HEAD"], workspace, check=False)
    if done.returncode == 0 and done.stdout.strip():
        return done.stdout.strip()
    env = os.environ if environ is None else environ
    for name in CI_BRANCH_VARIABLES:
        if name == "GITHUB_REF_NAME" and env.get("GITHUB_REF_TYPE") != "branch":
            continue
        if env.get(name):
            return env[name]
    raise ReleaseError(
        "HEAD is detached, so the release cannot tell its branch: check out the branch "
        "(git checkout main), or name it with SLIPWAY_RELEASE_BRANCH=<branch>"
    )


def check_branch(branch: str, version: Version, policy: dict[str, list[str]]) -> None:
    """Refuses a release that Git-Flow does not allow from `branch`.

    Raises:
        ReleaseError: naming the branch and the rule.
    """

    def matches(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(branch, pattern) for pattern in patterns)

    final, pre = policy["final-branches"], policy["prerelease-branches"]
    if matches(final) or (version.prerelease and matches(pre)):
        return
    kind = f"prerelease {version}" if version.prerelease else f"final release {version}"
    raise ReleaseError(
        f"{kind} refused on branch {branch!r}: final releases come only from "
        f"{' or '.join(final)}, prereleases also from {' or '.join(pre)} (Git-Flow; "
        "[tool.slipway.release] in pyproject.toml); --allow-any-branch overrides this"
    )


def check_git(workspace: Path, version: Version) -> bool:
    """Refuses a dirty tree, a tag elsewhere, a version not above the last release.

    Tags are the local ones and the remote's (see `release_tags`).

    Returns:
        True when the tag vX.Y.Z already exists at HEAD (a release to resume).
    """
    dirty = git(workspace, "status", "--porcelain")
    if dirty:
        raise ReleaseError(f"the work tree is not clean; commit or stash first:\n{dirty}")
    tag = f"v{version}"
    head = git(workspace, "rev-parse", "HEAD")
    tags = release_tags(workspace)
    resume = False
    if tag in tags:
        if tags[tag] != head:
            raise ReleaseError(
                f"tag {tag} already exists (at {tags[tag][:12]}, not HEAD {head[:12]})"
            )
        resume = True
    check_newer(version, [name[1:] for name in tags if name.startswith("v")], "release v")
    return resume


def parse_versions(texts: list[str]) -> list[Version]:
    """The SemVer versions among `texts`; other texts (e.g. `latest`, `dev`) are skipped."""
    parsed = []
    for text in texts:
        try:
            parsed.append(Version.parse(text))
        except ReleaseError:
            continue
    return parsed


def check_newer(version: Version, others: list[str], what: str) -> None:
    """Refuses `version` unless it is above every SemVer in `others` (other texts are skipped).

    Raises:
        ReleaseError: "version 0.2.0 is not greater than the last {what}0.9.0".
    """
    newer = [v for v in parse_versions(others) if v != version and v.key() >= version.key()]
    if newer:
        last = max(newer, key=Version.key)
        raise ReleaseError(f"version {version} is not greater than the last {what}{last}")


def registry_tags(workspace: Path, image: Image) -> list[str]:
    """The tags of an image's repository in the registry ([] when it has none yet).

    Raises:
        ReleaseError: the registry cannot be asked.
    """
    done = run(["crane", "ls", image.repository], workspace, check=False)
    if done.returncode == 0:
        return done.stdout.split()
    if "NAME_UNKNOWN" in done.stderr or "404" in done.stderr:
        return []
    raise ReleaseError(f"cannot list {image.repository}:\n{done.stderr.strip()[-2000:]}")


def floating_tags(version: Version, existing: list[str]) -> list[str]:
    """Which of X.Y, X and latest may move to `version`: those it does not move backwards.

    A floating tag moves only if no final release in the registry that the tag
    covers (same X.Y, same X, any) has a higher precedence than `version`.
    """
    if version.prerelease:
        return []
    finals = [v for v in parse_versions(existing) if not v.prerelease and v.key() > version.key()]
    covers = {
        f"{version.major}.{version.minor}": lambda v: (
            (v.major, v.minor) == (version.major, version.minor)
        ),
        str(version.major): lambda v: v.major == version.major,
        "latest": lambda v: True,
    }
    return [tag for tag, covered in covers.items() if not any(covered(v) for v in finals)]


def bazel(workspace: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([str(workspace / "tools/bazel"), *args], workspace)


def read_layout(workspace: Path, package: str) -> tuple[str, list[Path]]:
    """Manifest digest and layer files of a built image."""
    layout = workspace / "bazel-bin" / package / "oci_image"
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs/sha256" / digest.split(":")[1]).read_text())
    layers = [
        layout / "blobs/sha256" / layer["digest"].split(":")[1] for layer in manifest["layers"]
    ]
    return digest, layers


def lock_hashes(workspace: Path) -> dict[tuple[str, str], list[str]]:
    """(normalised name, version) -> sha256 hashes, from requirements_lock.txt."""
    hashes: dict[tuple[str, str], list[str]] = {}
    text = (workspace / "requirements_lock.txt").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)(.*)$", line.strip())
        if match:
            key = (normalise(match[1]), match[2])
            hashes[key] = re.findall(r"--hash=sha256:([0-9a-f]{64})", match[3])
    return hashes


def wheel_hashes() -> dict[tuple[str, str], tuple[str, str]]:
    """(normalised name, version) -> (sha256, wheel file name) of each wheel the build installs.

    Raises:
        ReleaseError: wheel_hashes.txt is missing (the tool runs outside its runfiles).
    """
    if not WHEEL_HASHES.is_file():
        raise ReleaseError(
            f"{WHEEL_HASHES} not found: run the tool with `tools/bazel run //tools/release`"
        )
    found = {}
    for line in WHEEL_HASHES.read_text().splitlines():
        digest, wheel = line.split()
        # {distribution}-{version}(-{build tag})?-{python tag}-{abi tag}-{platform tag}.whl
        dist, version = wheel.split("-")[:2]
        found[(normalise(dist), version)] = (digest, wheel)
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# Layer digest -> the (name, version) of each Python distribution in the layer.
_DISTRIBUTIONS: dict[str, list[tuple[str, str]]] = {}


def distributions(layer: Path) -> list[tuple[str, str]]:
    """(name, version) of each `.dist-info` in a layer file (a tar.gz named by its digest).

    Read once per digest: the torch layer and most packages layers are the same
    blob in several images, and reading one means decompressing it whole.
    """
    if layer.name not in _DISTRIBUTIONS:
        with tarfile.open(layer) as tar:
            _DISTRIBUTIONS[layer.name] = [
                (match[1], match[2])
                for name in tar.getnames()
                if (
                    match := re.search(
                        r"/site-packages/([^/]+)-([^/-]+)\.dist-info/METADATA$", name
                    )
                )
            ]
    return _DISTRIBUTIONS[layer.name]


def sbom(workspace: Path, image: Image, version: Version, layers: list[Path]) -> dict[str, Any]:
    """An SPDX 2.3 document: the Debian packages and Python distributions of the image."""
    lock = json.loads((workspace / "tools/image/base/debs.lock.json").read_text())
    locked = lock_hashes(workspace)
    wheels = wheel_hashes()
    packages: list[dict[str, Any]] = []
    for deb in lock["packages"]:
        packages.append(
            {
                "SPDXID": f"SPDXRef-deb-{re.sub(r'[^A-Za-z0-9.-]', '-', deb['name'])}",
                "name": deb["name"],
                "versionInfo": deb["version"],
                "downloadLocation": deb["url"],
                "checksums": [{"algorithm": "SHA256", "checksumValue": deb["sha256"]}],
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:deb/debian/{deb['name']}@{deb['version']}?arch={lock['architecture']}",
                    }
                ],
                "filesAnalyzed": False,
            }
        )
    seen = set()
    for layer in layers[1:]:  # the first layer is the Debian base
        for found in distributions(layer):
            if found in seen:
                continue
            seen.add(found)
            dist, dist_version = normalise(found[0]), found[1]
            # A local version (torch's "+cpu") is locked and named without it offline.
            key = (dist, dist_version)
            if key not in wheels:
                key = (dist, dist_version.split("+")[0])
            if key not in wheels:
                raise ReleaseError(f"{image.name}: no wheel for {dist} {dist_version} in the build")
            digest, wheel = wheels[key]
            allowed = locked.get(key, []) + locked.get((dist, dist_version), [])
            if digest not in allowed:
                raise ReleaseError(
                    f"{image.name}: {wheel} has sha256 {digest}, not one of "
                    f"requirements_lock.txt's hashes for {dist}=={key[1]}"
                )
            entry: dict[str, Any] = {
                "SPDXID": f"SPDXRef-pypi-{re.sub(r'[^A-Za-z0-9.-]', '-', dist)}",
                "name": dist,
                "versionInfo": dist_version,
                "packageFileName": wheel,
                "downloadLocation": "NOASSERTION",
                "checksums": [{"algorithm": "SHA256", "checksumValue": digest}],
                "externalRefs": [
                    {
                        "referenceCategory": "PACKAGE-MANAGER",
                        "referenceType": "purl",
                        "referenceLocator": f"pkg:pypi/{dist}@{dist_version}",
                    }
                ],
                "filesAnalyzed": False,
            }
            packages.append(entry)
    return {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"slipway/{image.name}:{version}",
        "documentNamespace": f"https://slipway.dev/spdx/{image.name}-{version}-{uuid.uuid5(uuid.NAMESPACE_URL, image.digest)}",
        "creationInfo": {"created": "1970-01-01T00:00:00Z", "creators": ["Tool: slipway-release"]},
        "packages": packages,
        "relationships": [
            {
                "spdxElementId": "SPDXRef-DOCUMENT",
                "relationshipType": "DESCRIBES",
                "relatedSpdxElement": p["SPDXID"],
            }
            for p in packages
        ],
    }


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(document, indent=2) + "\n")
    tmp.replace(path)


def remote_digest(reference: str, workspace: Path) -> str | None:
    """Digest of `reference` in its registry, None when the tag does not exist.

    Raises:
        ReleaseError: the registry cannot be asked (unreachable, no credentials).
    """
    done = run(["crane", "digest", reference], workspace, check=False)
    if done.returncode == 0:
        return done.stdout.strip()
    if "MANIFEST_UNKNOWN" in done.stderr or "NAME_UNKNOWN" in done.stderr or "404" in done.stderr:
        return None
    raise ReleaseError(f"cannot read {reference} from the registry:\n{done.stderr.strip()[-2000:]}")


def deploy(workspace: Path, images: list[Image], version: Version) -> None:
    """Pushes each image; X.Y.Z first and immutable, then the moving tags.

    Floating tags follow `image.registry_tags`, read once by `main` before tagging.
    """
    for number, image in enumerate(images, 1):
        floating = floating_tags(version, image.registry_tags)
        tags = [str(version), *floating]
        existing = remote_digest(f"{image.repository}:{version}", workspace)
        if existing and existing != image.digest:
            raise ReleaseError(
                f"{image.repository}:{version} already exists with digest {existing}, not this "
                f"build's {image.digest}: release tags are immutable"
            )
        extra = [arg for tag in floating for arg in ("--tag", tag)]
        bazel(
            workspace,
            "run",
            "--config=release",
            image.targets["push"],
            "--",
            "--repository",
            image.repository,
            *extra,
        )
        image.pushed, image.tags = True, tags
        state = "already there, moving tags set" if existing else "pushed"
        print(f"release: {number}/{len(images)} {image.name} {state}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", required=True, help="X.Y.Z or X.Y.Z-PRERELEASE")
    parser.add_argument("--deploy", action="store_true", help="push every image")
    parser.add_argument("--registry", default=DEFAULT_REGISTRY, help=f"default {DEFAULT_REGISTRY}")
    parser.add_argument("--dry-run", action="store_true", help="check and print the plan only")
    parser.add_argument("--output-dir", type=Path, help="default <workspace>/dist/release")
    parser.add_argument(
        "--allow-any-branch",
        action="store_true",
        help="release from a branch that the Git-Flow rule refuses (recorded in the manifest)",
    )
    args = parser.parse_args(argv)
    workspace = Path(os.environ.get("BUILD_WORKSPACE_DIRECTORY", Path.cwd()))
    out = args.output_dir or workspace / "dist" / "release"
    tagged = False  # from here on, a failure leaves a release to resume
    try:
        version = Version.parse(args.version)
        branch = current_branch(workspace)
        if args.allow_any_branch:
            print(f"release: --allow-any-branch: releasing from {branch!r}", flush=True)
        else:
            check_branch(branch, version, branch_policy(workspace))
        resume = check_git(workspace, version)
        registry = args.registry.rstrip("/")
        images = read_images(registry)
        if args.deploy:
            for image in images:
                image.registry_tags = registry_tags(workspace, image)
                check_newer(version, image.registry_tags, f"release in {image.repository}: ")
        if args.dry_run:
            print(f"release: dry run of {version}: all checks passed")
            print(
                f"  would {'reuse' if resume else 'create'} tag v{version} at HEAD and build {len(images)} images with --config=release"
            )
            if args.deploy:
                for image in images:
                    print(
                        f"  would push {image.repository} with tags {', '.join(version.remote_tags())}"
                    )
            return 0
        if resume:
            print(f"release: tag v{version} is at HEAD: resuming that release", flush=True)
            tagged = True
        else:
            git(workspace, "tag", "-a", f"v{version}", "-m", f"Release {version}")
            print(f"release: tagged v{version}", flush=True)
        tagged = True
        targets = [i.targets[t] for i in images for t in ("oci_image", "tags")]
        bazel(workspace, "build", "--config=release", *targets)
        for image in images:
            stamped = (workspace / "bazel-bin" / image.package / "tags.txt").read_text().split()
            if stamped != [str(version)]:
                raise ReleaseError(
                    f"{image.name}: the stamp gave tags {stamped}, expected ['{version}']"
                )
            image.digest, layers = read_layout(workspace, image.package)
            image.sbom = f"sbom-{image.name}-{version}.spdx.json"
            write_json(out / image.sbom, sbom(workspace, image, version, layers))
        print(f"release: built {len(images)} images, SBOMs in {out}", flush=True)
        if args.deploy:
            deploy(workspace, images, version)
    except ReleaseError as err:
        print(f"release: error: {err}", file=sys.stderr)
        if tagged:
            print(
                f"release: {args.version} is NOT released; run the same command again to finish it",
                file=sys.stderr,
            )
        return 1
    manifest = {
        "version": str(version),
        "git_tag": f"v{version}",
        "git_commit": git(workspace, "rev-parse", "HEAD"),
        "git_branch": branch,
        "branch_policy_overridden": args.allow_any_branch,
        "registry": registry,
        "pushed": args.deploy,
        "images": [
            {
                "name": i.name,
                "repository": i.repository,
                "digest": i.digest,
                "tags": i.tags,
                "sbom": i.sbom,
            }
            for i in images
        ],
    }
    write_json(out / f"release-{version}.json", manifest)
    width = max(len(i.repository) for i in images)
    print(f"\n{'image':<{width}}  {'digest':<71}  tags")
    for i in images:
        print(f"{i.repository:<{width}}  {i.digest:<71}  {', '.join(i.tags) or '(not pushed)'}")
    print(
        f"\nrelease: {version} {'released' if args.deploy else 'built (not pushed)'}; manifest {out / f'release-{version}.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
