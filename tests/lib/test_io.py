"""slipway.io: atomic writes leave either the old or the new file, never a partial one."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from slipway import io


def test_write_text_creates_parents_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "out.txt"
    io.write_text(target, "one")
    io.write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in target.parent.iterdir()] == ["out.txt"]  # no temp files left


def test_failed_write_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    io.write_bytes(target, b"old")
    with pytest.raises(RuntimeError), io.atomic_open(target, "wb") as fh:
        fh.write(b"partial")
        raise RuntimeError("boom")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_atomic_path_for_name_based_writers(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    with io.atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_text("{}")
        assert not target.exists()
    assert target.read_text() == "{}"


def test_json_roundtrip_is_stable(tmp_path: Path) -> None:
    io.write_json(tmp_path / "a.json", {"b": 1, "a": [1, 2]})
    io.write_json(tmp_path / "b.json", {"a": [1, 2], "b": 1})
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert io.read_json(tmp_path / "a.json") == {"a": [1, 2], "b": 1}


def test_sha256_file(tmp_path: Path) -> None:
    data = b"x" * (3 << 20)
    io.write_bytes(tmp_path / "big", data)
    assert io.sha256_file(tmp_path / "big") == hashlib.sha256(data).hexdigest()


def test_atomic_open_rejects_read_mode(tmp_path: Path) -> None:
    with pytest.raises(ValueError), io.atomic_open(tmp_path / "x", "r"):
        pass


@pytest.fixture
def umask() -> Iterator[Callable[[int], None]]:
    """Set the process umask for one test; the old one comes back afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


@pytest.mark.parametrize(
    ("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)]
)
def test_outputs_get_the_umask_permissions(
    tmp_path: Path, umask: Callable[[int], None], mask: int, file_mode: int, dir_mode: int
) -> None:
    # As a plain open() or mkdir: readable by others where the umask says so (not 0600).
    umask(mask)
    io.write_text(tmp_path / "a.txt", "x")
    with io.atomic_path(tmp_path / "b.bin") as tmp:
        tmp.write_bytes(b"x")
    folder = io.make_temp_dir(tmp_path, prefix=".new.")
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == file_mode
    assert stat.S_IMODE(folder.stat().st_mode) == dir_mode
    assert folder.name.startswith(".new.") and folder.parent == tmp_path
