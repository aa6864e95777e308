"""`bazel run //<job or service>:load`: load the image into Docker or podman, once.

    tools/bazel run //service:load

Streaming an image into an engine takes seconds even when the engine already
holds it (rules_oci's oci_load always does: bazel-contrib/rules_oci#454). So
this asks the engine first: if the local tag already names this image (its
config digest, the image ID of Docker's classic store and podman, or its
manifest digest, the ID of Docker's containerd store), nothing is loaded.
Otherwise it runs the oci_load target, which pipes the tarball into the engine.

Errors: exits 1 when the load fails or no engine is available.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path


def engine() -> str:
    """The container engine: docker where its engine answers, else podman.

    Raises:
        SystemExit: neither is available.
    """
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0:
        return docker
    podman = shutil.which("podman")
    if podman:
        return podman
    raise SystemExit("image: error: neither a Docker engine nor podman is available")


def runfiles_dir() -> Path:
    env = os.environ.get("RUNFILES_DIR")
    if env:
        return Path(env)
    here = Path(__file__).resolve()
    for parent in here.parents:
        if parent.name.endswith(".runfiles"):
            return parent
    return Path.cwd().parent


def runfile(path: str) -> Path:
    """A `$(rootpath ...)` of the main repository, as a path to read."""
    p = Path(path)
    return p if p.is_absolute() else runfiles_dir() / "_main" / p


def layout_digests(layout: Path) -> tuple[str, str]:
    """The image's manifest and config digests (hex), from its OCI layout.

    The config digest is the image ID of podman and Docker's classic store; the
    manifest digest is the ID of Docker's containerd store (and the image's digest).

    Raises:
        SystemExit: `layout` is not an OCI image layout with one manifest.
    """
    try:
        index = json.loads((layout / "index.json").read_text())
        (entry,) = index["manifests"]
        manifest_hex = entry["digest"].split(":", 1)[1]
        manifest = json.loads((layout / "blobs" / "sha256" / manifest_hex).read_text())
        config_hex = manifest["config"]["digest"].split(":", 1)[1]
    except (OSError, ValueError, KeyError, IndexError) as err:
        raise SystemExit(f"image: error: {layout} is not a one-image OCI layout: {err}") from None
    return manifest_hex, config_hex


def held_id(cli: str, tag: str) -> str | None:
    """The ID (hex) of the image that `tag` names in the engine, or None."""
    done = subprocess.run(
        [cli, "image", "inspect", "--format", "{{.Id}}", tag], capture_output=True, text=True
    )
    if done.returncode != 0:
        return None
    return done.stdout.strip().removeprefix("sha256:") or None


def load(oci_load: Path, layout: Path, tag: str) -> int:
    """Loads the image unless the engine's `tag` already is it; returns an exit code."""
    cli = engine()
    held = held_id(cli, tag)
    if held in layout_digests(layout):
        print(
            f"image: {tag} is already this image ({held[:12]}) in {Path(cli).name}: not loaded again"
        )
        return 0
    env = dict(os.environ, RUNFILES_DIR=str(runfiles_dir()))
    if subprocess.run([str(oci_load)], env=env).returncode != 0:
        print("image: error: loading the image failed (see above)", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--oci-load", required=True, help="the oci_load executable (rootpath)")
    parser.add_argument("--image", required=True, help="the oci_image layout (rootpath)")
    parser.add_argument("--tag", required=True, help="repository:tag the load gives the image")
    args = parser.parse_args(argv)
    return load(runfile(args.oci_load), runfile(args.image), args.tag)


if __name__ == "__main__":
    sys.exit(main())
