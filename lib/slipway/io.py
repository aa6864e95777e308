"""Atomic file output: readers never see a half-written file.

Each writer writes to a temporary file in the destination's directory (same file
system, so the final `os.replace` is atomic on POSIX) and fsyncs before the rename.
Temporary files and folders are created as a plain `open()` or `mkdir` would create
them (mode 0666 / 0777 less the process umask), not `tempfile`'s private 0600 / 0700,
so that outputs are readable by whom the user's umask allows (e.g. a container's user).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

_CHUNK_BYTES = 1 << 20
_TEMP_ATTEMPTS = 100


def _temp_name(parent: Path, prefix: str, suffix: str) -> Path:
    return parent / f"{prefix}{secrets.token_hex(6)}{suffix}"


def make_temp_file(parent: str | os.PathLike[str], prefix: str, suffix: str = ".tmp") -> Path:
    """Create a new empty file in `parent` with the umask's permissions; return its path.

    Raises:
        FileExistsError: no free name after 100 attempts.
    """
    for _ in range(_TEMP_ATTEMPTS):
        path = _temp_name(Path(parent), prefix, suffix)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name {prefix}*{suffix} in {parent}")


def make_temp_dir(parent: str | os.PathLike[str], prefix: str) -> Path:
    """Create a new empty folder in `parent` with the umask's permissions; return its path.

    Raises:
        FileExistsError: no free name after 100 attempts.
    """
    for _ in range(_TEMP_ATTEMPTS):
        path = _temp_name(Path(parent), prefix, "")
        try:
            path.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free temporary name {prefix}* in {parent}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success rename it over `path`.

    Use for writers that want a file name rather than a handle (pyarrow, torch.save,
    matplotlib). The parent directory is created if needed. On error the temporary
    file is removed and `path` is left untouched. `suffix` ends the temporary name,
    for writers that choose the format by it.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_file(dest.parent, prefix=f".{dest.name}.", suffix=suffix)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file for writing (`mode` "w" or "wb"); rename over `path` on success.

    Raises:
        ValueError: `mode` is not a write mode.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open supports modes 'w' and 'wb', not {mode!r}")
    with atomic_path(path) as tmp:
        encoding = "utf-8" if mode == "w" else None
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Atomically write UTF-8 `text` to `path`."""
    with atomic_open(path, "w") as fh:
        fh.write(text)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Atomically write `data` to `path`."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write `obj` as indented, key-sorted JSON (stable bytes for equal input)."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file.

    Raises:
        FileNotFoundError: `path` does not exist.
        json.JSONDecodeError: the file is not valid JSON.
    """
    return json.loads(Path(path).read_text(encoding="utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 digest of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
