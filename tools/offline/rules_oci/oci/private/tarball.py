"""Writes an image layout as a tarball that `docker load` and `podman load` read.

docker format: the layout's blobs plus Docker's manifest.json (Config,
RepoTags, Layers); oci format: the
layout itself, each repo tag recorded as an `org.opencontainers.image.ref.name`
annotation. Entries are sorted with mtime 0, so the tarball is reproducible.

Errors: an image directory that is not a one-manifest layout exits 1.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
from pathlib import Path


def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--format", choices=("docker", "oci"), default="docker")
    parser.add_argument("--repo-tags", type=Path)
    args = parser.parse_args(argv)
    index = json.loads((args.image / "index.json").read_text())
    if len(index.get("manifests", [])) != 1:
        print(f"tarball: error: {args.image} must hold exactly one manifest", file=sys.stderr)
        return 1
    blobs = args.image / "blobs" / "sha256"
    manifest = json.loads((blobs / index["manifests"][0]["digest"].split(":")[1]).read_text())
    tags = [t for t in (args.repo_tags.read_text().split() if args.repo_tags else []) if t]
    names = [manifest["config"]["digest"]] + [layer["digest"] for layer in manifest["layers"]]
    names.append(index["manifests"][0]["digest"])
    tmp = args.out.with_name(args.out.name + ".tmp")
    with tarfile.open(tmp, "w", format=tarfile.GNU_FORMAT) as tar:
        for digest in sorted(set(names)):
            path = "blobs/sha256/" + digest.split(":")[1]
            info = tarfile.TarInfo(path)
            # Inputs may be the sandbox's symbolic links: store the file itself.
            info.size, info.mode, info.mtime = (
                os.stat(blobs / digest.split(":")[1]).st_size,
                0o644,
                0,
            )
            with open(blobs / digest.split(":")[1], "rb") as handle:
                tar.addfile(info, handle)
        if args.format == "docker":
            docker = [
                {
                    "Config": "blobs/sha256/" + manifest["config"]["digest"].split(":")[1],
                    "RepoTags": tags,
                    "Layers": [
                        "blobs/sha256/" + layer["digest"].split(":")[1]
                        for layer in manifest["layers"]
                    ],
                }
            ]
            add_bytes(tar, "manifest.json", json.dumps(docker, separators=(",", ":")).encode())
        else:
            # No index.json in the docker format: podman would read the archive as
            # an OCI one and drop RepoTags.
            entry = index["manifests"][0]
            index["manifests"] = [
                {**entry, "annotations": {"org.opencontainers.image.ref.name": tag}} for tag in tags
            ] or [entry]
            add_bytes(tar, "index.json", json.dumps(index, separators=(",", ":")).encode())
            add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
