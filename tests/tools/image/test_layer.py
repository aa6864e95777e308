"""tools/image/layer.py: same inputs, same bytes; each class in its layer; clear errors."""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

RUNFILES = Path(os.environ.get("RUNFILES_DIR", Path(__file__).parents[4]))
LAYER = RUNFILES / "_main/tools/image/layer"


def layer(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LAYER), *map(str, args)], capture_output=True, text=True)


def members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def make_deb(path: Path, files: dict[str, bytes], symlinks: dict[str, str] | None = None) -> Path:
    """A minimal .deb (ar: debian-binary, control.tar.xz, data.tar.xz)."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo("./" + name)
            info.size, info.mode, info.mtime = len(content), 0o644, 12345
            tar.addfile(info, io.BytesIO(content))
        for name, target in (symlinks or {}).items():
            info = tarfile.TarInfo("./" + name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    members_ = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", lzma.compress(b"")),
        ("data.tar.xz", lzma.compress(data.getvalue())),
    ]
    out = b"!<arch>\n"
    for name, body in members_:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(body):<10}`\n".encode() + body
        out += b"\n" if len(body) % 2 else b""
    path.write_bytes(out)
    return path


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    sources = tmp_path / "src"
    sources.mkdir()
    lines = []
    for path in [
        "_main/lib/slipway/models.py",
        "rules_python~~pip~pypi_torch/site-packages/torch/__init__.py",
        "rules_python~~pip~pypi_numpy/site-packages/numpy/__init__.py",
        "rules_python++pip+pypi_nvidia_cublas/site-packages/nvidia/cublas.py",
    ]:
        src = sources / path.replace("/", "_")
        src.write_text(f"# {path}\n")
        lines.append(f"{path}\t{src}")
    launcher = sources / "launcher"
    launcher.write_text("#!/usr/bin/env python3\n")
    lines.append(f"<launcher>\t{launcher}")
    lines.append("_main/lib/__init__.py\t")
    out = tmp_path / "manifest.txt"
    out.write_text("\n".join(lines) + "\n")
    return out


TORCH = "app/main.runfiles/rules_python~~pip~pypi_torch/site-packages/torch/__init__.py"
NUMPY = "app/main.runfiles/rules_python~~pip~pypi_numpy/site-packages/numpy/__init__.py"
CUBLAS = "app/main.runfiles/rules_python++pip+pypi_nvidia_cublas/site-packages/nvidia/cublas.py"


@pytest.mark.parametrize(
    ("select", "patterns", "expected"),
    [
        (
            "app",
            [],
            {
                "app/main",
                "app/main.runfiles/_main/lib/slipway/models.py",
                "app/main.runfiles/_main/lib/__init__.py",
            },
        ),
        ("group", ["pypi_torch"], {TORCH}),
        ("group", ["pypi_torch", "pypi_nvidia_*"], {TORCH, CUBLAS}),
        ("group", ["pypi_nvidia_*"], {CUBLAS}),
        ("packages", [], {TORCH, NUMPY, CUBLAS}),
        ("packages", ["pypi_torch"], {NUMPY, CUBLAS}),
        ("packages", ["pypi_torch", "pypi_nvidia_*"], {NUMPY}),
        # A pattern names a whole repository, not a prefix, unless it ends in `*`.
        ("group", ["pypi_tor", "pypi_nvidia"], set()),
    ],
)
def test_each_class_holds_only_its_files(
    manifest: Path, tmp_path: Path, select: str, patterns: list[str], expected: set[str]
) -> None:
    out = tmp_path / f"{select}.tar.gz"
    flags = [arg for pattern in patterns for arg in ("--pattern", pattern)]
    assert layer("runfiles", "--out", out, "--select", select, *flags, manifest).returncode == 0
    files = {name for name, info in members(out).items() if info.isfile()}
    assert files == expected


def test_same_inputs_same_bytes_whatever_the_order(manifest: Path, tmp_path: Path) -> None:
    reordered = tmp_path / "reordered.txt"
    reordered.write_text("\n".join(reversed(manifest.read_text().splitlines())) + "\n")
    first, second = tmp_path / "a.tar.gz", tmp_path / "b.tar.gz"
    assert layer("runfiles", "--out", first, "--select", "app", manifest).returncode == 0
    assert layer("runfiles", "--out", second, "--select", "app", reordered).returncode == 0
    assert (
        hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()
    )
    for info in members(first).values():
        assert (info.mtime, info.uid, info.gid, info.uname, info.gname) == (0, 0, 0, "", "")
    assert first.read_bytes()[4:8] == b"\0\0\0\0"  # gzip header mtime


def test_debs_become_a_configured_merged_usr_root(tmp_path: Path) -> None:
    deb = make_deb(
        tmp_path / "a.deb",
        {
            "lib/x86_64-linux-gnu/libz.so.1": b"elf",
            "usr/share/ca-certificates/mozilla/A.crt": b"-----A-----\n",
            "usr/share/doc/a/copyright": b"c",
            "usr/share/doc/a/changelog.gz": b"x",
            "usr/share/man/man1/a.1": b"m",
        },
        {"usr/bin/python3.11": "python3.11-real"},
    )
    out = tmp_path / "rootfs.tar.gz"
    done = layer("debs", "--out", out, "--user", "app", "--uid", "4242", deb)
    assert done.returncode == 0, done.stderr
    entries = members(out)
    assert entries["lib"].issym() and entries["lib"].linkname == "usr/lib"
    assert "usr/lib/x86_64-linux-gnu/libz.so.1" in entries
    assert "usr/share/doc/a/copyright" in entries and "usr/share/doc/a/changelog.gz" not in entries
    assert not any(name.startswith("usr/share/man") for name in entries)
    assert entries["tmp"].mode == 0o1777
    assert (entries["home/app"].uid, entries["home/app"].gid) == (4242, 4242)
    with tarfile.open(out) as tar:
        passwd = tar.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
        bundle = tar.extractfile("etc/ssl/certs/ca-certificates.crt").read()  # type: ignore[union-attr]
    assert "app:x:4242:4242:" in passwd
    assert bundle == b"-----A-----\n"


def test_not_a_deb_is_named_and_nothing_is_written(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.deb"
    bogus.write_text("not an archive")
    out = tmp_path / "rootfs.tar.gz"
    done = layer("debs", "--out", out, bogus)
    assert done.returncode == 1
    assert "bogus.deb: not a Debian package" in done.stderr
    assert not out.exists() and not list(tmp_path.glob("*.tmp"))


def test_malformed_manifest_line_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "manifest.txt"
    bad.write_text("_main/ok.py\t/x\n../escape.py\t/y\n")
    done = layer("runfiles", "--out", tmp_path / "o.tar.gz", "--select", "app", bad)
    assert done.returncode == 1
    assert "manifest.txt:2" in done.stderr
