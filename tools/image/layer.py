"""Deterministic image layers: the same inputs give the same .tar.gz bytes.

Two sources, one writer:

    layer.py debs --out rootfs.tar.gz --user slipway --uid 10001 DEB...
        Unpacks Debian packages (their data.tar, no maintainer scripts) into one
        merged-/usr root filesystem and does what the scripts would have done:
        CA bundle, /etc/localtime, passwd/group with a non-root user, /tmp 1777.
    layer.py runfiles --out app.tar.gz --root /app/main --select app MANIFEST
    layer.py runfiles --out torch.tar.gz --select group --pattern pypi_torch MANIFEST
        Lays a py_binary's runfiles out as `<root>` (the launcher) and
        `<root>.runfiles/...`, keeping only one class of files (see classify).

Determinism (the traps in containers.md): entries sorted by path, owner 0:0 and
mtime 0 (except the non-root user's home), modes from the source masked by the
permission bits only, no user or group names, hard links stored as files,
gzip header with mtime 0 and no file name, fixed compression level. The bytes
then depend only on the inputs and on the zlib of the interpreter.

Errors: a missing or malformed input exits 1 with a message naming the file;
the output is written to a temporary name and renamed, never left half-written.
"""

from __future__ import annotations

import argparse
import fnmatch
import gzip
import io
import lzma
import os
import sys
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

GZIP_LEVEL = 6
# Docs, manuals and translations are not needed to run; copyright files stay.
_DROPPED_PREFIXES = ("usr/share/man/", "usr/share/info/", "usr/share/lintian/", "usr/share/locale/")
# Debian bookworm is not merged-/usr inside its .debs; the image is, as installed systems are.
_MERGED_DIRS = ("bin", "sbin", "lib", "lib64")


class LayerError(Exception):
    """An input that cannot be turned into a layer; the message names it."""


@dataclass
class Entry:
    """One file system entry of a layer: a file, a directory or a symbolic link."""

    kind: bytes  # tarfile.REGTYPE, DIRTYPE or SYMTYPE
    mode: int
    data: bytes = b""
    source: Path | None = None  # file content read at write time (large files)
    link: str = ""
    uid: int = 0
    gid: int = 0


Tree = dict[str, Entry]


def add_parents(tree: Tree, path: str) -> None:
    """Adds 0755 root-owned directories for every missing parent of `path`."""
    parent = PurePosixPath(path).parent
    while str(parent) not in (".", "/") and str(parent) not in tree:
        tree[str(parent)] = Entry(tarfile.DIRTYPE, 0o755)
        parent = parent.parent


def write_layer(tree: Tree, out: Path) -> None:
    """Writes `tree` as a gzip-compressed tar to `out`, atomically.

    Raises:
        LayerError: a source file of an entry cannot be read.
    """
    for path in list(tree):
        add_parents(tree, path)
    tmp = out.with_name(out.name + ".tmp")
    try:
        _write_tar(tree, tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    tmp.replace(out)


def _write_tar(tree: Tree, tmp: Path) -> None:
    with (
        open(tmp, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.GNU_FORMAT) as tar,
    ):
        for path in sorted(tree):
            entry = tree[path]
            info = tarfile.TarInfo(path)
            info.type = entry.kind
            info.mode = entry.mode & 0o7777
            info.uid, info.gid = entry.uid, entry.gid
            info.uname = info.gname = ""
            info.mtime = 0
            if entry.kind == tarfile.SYMTYPE:
                info.linkname = entry.link
                tar.addfile(info)
            elif entry.kind == tarfile.DIRTYPE:
                tar.addfile(info)
            elif entry.source is not None:
                try:
                    with open(entry.source, "rb") as src:
                        info.size = os.fstat(src.fileno()).st_size
                        tar.addfile(info, src)
                except OSError as err:
                    raise LayerError(f"cannot read {entry.source}: {err.strerror}") from err
            else:
                info.size = len(entry.data)
                tar.addfile(info, io.BytesIO(entry.data))


# --- Debian packages ---------------------------------------------------------


def deb_data(path: Path) -> tarfile.TarFile:
    """Opens the data.tar member of a .deb (an ar archive).

    Raises:
        LayerError: not an ar archive, or no data.tar.xz/.gz/.tar member.
    """
    blob = path.read_bytes()
    if not blob.startswith(b"!<arch>\n"):
        raise LayerError(f"{path}: not a Debian package (no ar header)")
    offset = 8
    while offset + 60 <= len(blob):
        header = blob[offset : offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = blob[offset + 60 : offset + 60 + size]
        offset += 60 + size + (size % 2)
        if name == "data.tar.xz":
            return tarfile.open(fileobj=io.BytesIO(lzma.decompress(body)))
        if name in ("data.tar.gz", "data.tar"):
            return tarfile.open(fileobj=io.BytesIO(body))
        if name.startswith("data.tar"):
            raise LayerError(f"{path}: unsupported compression {name}")
    raise LayerError(f"{path}: no data.tar member")


def merged_usr(path: str) -> str:
    return f"usr/{path}" if path.split("/", 1)[0] in _MERGED_DIRS else path


def kept(path: str) -> bool:
    if path.startswith(_DROPPED_PREFIXES):
        return False
    if path.startswith("usr/share/doc/"):
        return path.endswith("/copyright") or path.count("/") == 3
    return True


def unpack_debs(debs: Iterable[Path]) -> Tree:
    """Unpacks the packages in order into one merged-/usr tree.

    Raises:
        LayerError: a package cannot be read or holds an unsupported member.
    """
    tree: Tree = {}
    for deb in debs:
        with deb_data(deb) as data:
            members = {m.name: m for m in data.getmembers()}
            for member in members.values():
                path = merged_usr(os.path.normpath(member.name).removeprefix("/"))
                if path in ("", ".") or not kept(path):
                    continue
                if member.isdir():
                    tree.setdefault(path, Entry(tarfile.DIRTYPE, member.mode))
                elif member.issym():
                    tree[path] = Entry(tarfile.SYMTYPE, 0o777, link=member.linkname)
                elif member.islnk():
                    target = members[member.linkname]
                    tree[path] = Entry(tarfile.REGTYPE, target.mode, data=_read(data, target))
                elif member.isfile():
                    tree[path] = Entry(tarfile.REGTYPE, member.mode, data=_read(data, member))
    for name in _MERGED_DIRS:
        tree[name] = Entry(tarfile.SYMTYPE, 0o777, link=f"usr/{name}")
    return tree


def _read(data: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = data.extractfile(member)
    return handle.read() if handle else b""


def configure(tree: Tree, user: str, uid: int) -> None:
    """Does the work of the maintainer scripts that were not run.

    Adds: the CA bundle (update-ca-certificates: every certificate under
    /usr/share/ca-certificates, in path order), /etc/localtime as UTC,
    /etc/passwd, /etc/group and /etc/nsswitch.conf with root, nobody and
    `user` (uid = gid = `uid`, home /home/<user> owned by it), /tmp 1777.
    """
    certs = sorted(
        p for p in tree if p.startswith("usr/share/ca-certificates/") and p.endswith(".crt")
    )
    if certs:
        bundle = b"".join(
            tree[p].data if tree[p].data.endswith(b"\n") else tree[p].data + b"\n" for p in certs
        )
        tree["etc/ssl/certs/ca-certificates.crt"] = Entry(tarfile.REGTYPE, 0o644, data=bundle)
    tree["etc/localtime"] = Entry(tarfile.SYMTYPE, 0o777, link="/usr/share/zoneinfo/Etc/UTC")
    tree["etc/timezone"] = Entry(tarfile.REGTYPE, 0o644, data=b"Etc/UTC\n")
    tree["etc/passwd"] = Entry(
        tarfile.REGTYPE,
        0o644,
        data=(
            "root:x:0:0:root:/root:/usr/sbin/nologin\n"
            "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            f"{user}:x:{uid}:{uid}:{user}:/home/{user}:/usr/sbin/nologin\n"
        ).encode(),
    )
    tree["etc/group"] = Entry(
        tarfile.REGTYPE, 0o644, data=f"root:x:0:\nnogroup:x:65534:\n{user}:x:{uid}:\n".encode()
    )
    tree["etc/nsswitch.conf"] = Entry(
        tarfile.REGTYPE, 0o644, data=b"passwd: files\ngroup: files\nhosts: files dns\n"
    )
    tree["root"] = Entry(tarfile.DIRTYPE, 0o700)
    tree["home"] = Entry(tarfile.DIRTYPE, 0o755)
    tree[f"home/{user}"] = Entry(tarfile.DIRTYPE, 0o755, uid=uid, gid=uid)
    tree["tmp"] = Entry(tarfile.DIRTYPE, 0o1777)
    if "usr/bin/python3.11" in tree and "usr/bin/python3" not in tree:
        tree["usr/bin/python3"] = Entry(tarfile.SYMTYPE, 0o777, link="python3.11")


# --- py_binary runfiles --------------------------------------------------------

CLASSES = ("group", "packages", "app")


def repo_matches(repo: str, patterns: Iterable[str]) -> bool:
    """True if the repository's apparent name matches a pattern (`pypi_torch`, `pypi_nvidia_*`).

    Canonical names look like `rules_python~0.22.1~pip~pypi_torch` (Bazel 7) or
    `rules_python++pip+pypi_torch` (Bazel 8); the apparent name is the last part.
    """
    name = repo.replace("+", "~").split("~")[-1]
    return any(
        name == pattern or (pattern.endswith("*") and name.startswith(pattern[:-1]))
        for pattern in patterns
    )


def classify(runfiles_path: str, patterns: Iterable[str] = ()) -> str:
    """Layer class of a runfiles path: group, packages (other third-party) or app.

    The first path component is the repository: `_main` is this project; a pip
    repository whose name matches one of `patterns` belongs to the layer group.
    """
    repo = runfiles_path.split("/", 1)[0]
    if repo == "_main" or repo == "_repo_mapping":
        return "app"
    if repo_matches(repo, patterns):
        return "group"
    return "packages"


def runfiles_tree(
    manifest: Path,
    root: str,
    select: str,
    patterns: Iterable[str] = (),
    exclude: Iterable[str] = (),
) -> Tree:
    """Reads a manifest of `RUNFILES_PATH<TAB>SOURCE` lines into a tree.

    An empty SOURCE is an empty file (Bazel's generated __init__.py); the line
    `<launcher><TAB>SOURCE` puts the binary's launcher at `root` itself.
    `select` keeps one class (see classify): "group" the repositories matching
    `patterns`, "packages" the other third-party ones, "app" this project's.
    Third-party files whose path inside their repository matches a glob of
    `exclude` (e.g. `*/tests/*`, the packages' own test suites) are left out.

    Raises:
        LayerError: a malformed line, or a path outside the runfiles tree.
    """
    tree: Tree = {}
    base = root.strip("/")
    for number, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line:
            continue
        path, sep, source = line.partition("\t")
        if not sep or not path or path.startswith("/") or ".." in path.split("/"):
            raise LayerError(
                f"{manifest}:{number}: expected RUNFILES_PATH<TAB>SOURCE, got {line!r}"
            )
        if path == "<launcher>":
            if select == "app":
                tree[base] = Entry(tarfile.REGTYPE, 0o755, source=Path(source))
            continue
        if classify(path, patterns) != select:
            continue
        if select != "app" and any(fnmatch.fnmatchcase(path.partition("/")[2], g) for g in exclude):
            continue
        dest = f"{base}.runfiles/{path}"
        if not source:
            tree[dest] = Entry(tarfile.REGTYPE, 0o644)
            continue
        src = Path(source)
        mode = 0o755 if os.access(src, os.X_OK) else 0o644
        tree[dest] = Entry(tarfile.REGTYPE, mode, source=src)
    return tree


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="source", required=True)
    debs = sub.add_parser("debs", help="root file system from Debian packages")
    debs.add_argument("--out", type=Path, required=True)
    debs.add_argument("--user", default="slipway")
    debs.add_argument("--uid", type=int, default=10001)
    debs.add_argument("debs", type=Path, nargs="+")
    runfiles = sub.add_parser("runfiles", help="one class of a py_binary's runfiles")
    runfiles.add_argument("--out", type=Path, required=True)
    runfiles.add_argument("--root", default="/app/main", help="launcher path in the image")
    runfiles.add_argument("--select", choices=CLASSES, required=True)
    runfiles.add_argument(
        "--pattern",
        action="append",
        default=[],
        help="repository name pattern of the layer group (repeatable; `pypi_x*` is a prefix)",
    )
    runfiles.add_argument(
        "--exclude",
        action="append",
        default=[],
        help="glob of third-party paths (inside their repository) to leave out (repeatable)",
    )
    runfiles.add_argument("manifest", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.source == "debs":
            tree = unpack_debs(args.debs)
            configure(tree, args.user, args.uid)
        else:
            tree = runfiles_tree(args.manifest, args.root, args.select, args.pattern, args.exclude)
        write_layer(tree, args.out)
    except (LayerError, OSError) as err:
        print(f"layer: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
