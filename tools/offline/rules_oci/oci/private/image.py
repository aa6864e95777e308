"""Assembles an OCI image layout (oci-layout, index.json, blobs/sha256/...).

Called by the stand-in's oci_image rule. Layers are stored as given: a gzip
file becomes a `tar+gzip` layer, anything else a plain `tar` layer; the diff_id
is the SHA256 of the uncompressed tar. The JSON documents are written with a
fixed key order and no whitespace, and `created` defaults to the Unix epoch, so
the same inputs give the same digests.

Errors: a missing or unreadable input exits 1 naming it.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
EPOCH = "1970-01-01T00:00:00Z"
_CHUNK = 1 << 20


def sha256_file(path: Path, gunzip: bool = False) -> str:
    digest = hashlib.sha256()
    opener = gzip.open if gunzip else open
    with opener(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return "sha256:" + digest.hexdigest()


def put_file(out: Path, path: Path) -> str:
    """Adds a file to blobs/sha256 (a hard link where possible); returns its digest."""
    digest = sha256_file(path)
    dest = out / "blobs" / "sha256" / digest.split(":")[1]
    if not dest.exists():
        try:
            # Only build outputs are linked (a linked source file would turn
            # read-only), and the file itself, not the sandbox's symlink to it.
            real = path.resolve()
            if "bazel-out" not in real.parts:
                raise OSError
            os.link(real, dest)
        except OSError:
            shutil.copyfile(path, dest)
    return digest


def put_json(out: Path, document: dict[str, Any]) -> tuple[str, int]:
    data = json.dumps(document, separators=(",", ":")).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    (out / "blobs" / "sha256" / digest.split(":")[1]).write_bytes(data)
    return digest, len(data)


def read_lines(path: Path | None) -> list[str] | None:
    if path is None:
        return None
    return [line for line in path.read_text().splitlines() if line]


def read_pairs(path: Path | None) -> dict[str, str]:
    pairs = {}
    for line in read_lines(path) or []:
        key, sep, value = line.partition("=")
        if not sep:
            raise SystemExit(f"image: error: {path}: expected KEY=VALUE, got {line!r}")
        pairs[key] = value
    return pairs


def expand_env(base_env: list[str], extra: dict[str, str]) -> list[str]:
    """Appends `extra` to a base image's env, expanding $VAR and ${VAR} from it."""
    env = dict(item.partition("=")[::2] for item in base_env)
    for key, value in extra.items():
        env[key] = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m[1], ""), value)
    return [f"{k}={v}" for k, v in env.items()]


def load_base(base: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    index = json.loads((base / "index.json").read_text())
    if len(index.get("manifests", [])) != 1:
        raise SystemExit(f"image: error: {base}: base must hold exactly one manifest")
    blob = base / "blobs" / "sha256"
    manifest = json.loads((blob / index["manifests"][0]["digest"].split(":")[1]).read_text())
    config = json.loads((blob / manifest["config"]["digest"].split(":")[1]).read_text())
    return manifest, config


def build(args: argparse.Namespace) -> str:
    out: Path = args.out
    if out.exists():
        shutil.rmtree(out)
    (out / "blobs" / "sha256").mkdir(parents=True)
    layers: list[dict[str, Any]] = []
    diff_ids: list[str] = []
    config: dict[str, Any] = {"config": {}, "rootfs": {"type": "layers", "diff_ids": []}}
    if args.base:
        manifest, config = load_base(args.base)
        for layer in manifest["layers"]:
            put_file(out, args.base / "blobs" / "sha256" / layer["digest"].split(":")[1])
        layers = list(manifest["layers"])
        diff_ids = list(config["rootfs"]["diff_ids"])
    for tar in args.tar:
        with open(tar, "rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
        digest = put_file(out, tar)
        layers.append(
            {
                "mediaType": LAYER + ("+gzip" if gzipped else ""),
                "digest": digest,
                "size": tar.stat().st_size,
            }
        )
        diff_ids.append(sha256_file(tar, gunzip=gzipped) if gzipped else digest)
    settings = dict(config.get("config") or {})
    if args.env:
        settings["Env"] = expand_env(settings.get("Env", []), read_pairs(args.env))
    if args.entrypoint:
        settings["Entrypoint"] = read_lines(args.entrypoint)
        settings.pop("Cmd", None)  # as Docker does: a new entrypoint drops the base's cmd
    if args.cmd:
        settings["Cmd"] = read_lines(args.cmd)
    if args.user:
        settings["User"] = args.user
    if args.workdir:
        settings["WorkingDir"] = args.workdir
    if args.labels:
        settings["Labels"] = {**settings.get("Labels", {}), **read_pairs(args.labels)}
    if args.exposed_ports:
        settings["ExposedPorts"] = {
            p if "/" in p else p + "/tcp": {} for p in read_lines(args.exposed_ports) or []
        }
    if args.volumes:
        settings["Volumes"] = {v: {} for v in read_lines(args.volumes) or []}
    created = args.created.read_text().strip() if args.created else EPOCH
    document: dict[str, Any] = {
        "created": created,
        "architecture": args.architecture or config.get("architecture") or "amd64",
        "os": args.os or config.get("os") or "linux",
    }
    if args.variant:
        document["variant"] = args.variant
    document["config"] = settings
    document["rootfs"] = {"type": "layers", "diff_ids": diff_ids}
    config_digest, config_size = put_json(out, document)
    manifest_doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": CONFIG, "digest": config_digest, "size": config_size},
        "layers": layers,
    }
    annotations = read_pairs(args.annotations)
    if annotations:
        manifest_doc["annotations"] = annotations
    manifest_digest, manifest_size = put_json(out, manifest_doc)
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{"mediaType": MANIFEST, "digest": manifest_digest, "size": manifest_size}],
    }
    (out / "index.json").write_text(json.dumps(index, separators=(",", ":")))
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return manifest_digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--base", type=Path)
    parser.add_argument("--tar", type=Path, action="append", default=[])
    for name in (
        "entrypoint",
        "cmd",
        "env",
        "labels",
        "annotations",
        "exposed-ports",
        "volumes",
        "created",
    ):
        parser.add_argument("--" + name, type=Path)
    for name in ("user", "workdir", "os", "architecture", "variant"):
        parser.add_argument("--" + name, default="")
    args = parser.parse_args(argv)
    try:
        build(args)
    except OSError as err:
        print(f"image: error: {err.filename}: {err.strerror}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
