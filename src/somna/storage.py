"""Atomic writes and checksums: nothing half-written is ever trusted."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_write", "folder_lock", "sha256_file", "writable_folder", "write_json_atomic"]

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` on a temporary file beside ``path``, fsync it, then rename it over ``path``.

    A crash leaves either the old file or the new one, never a partial one; temporary files are named
    ``.<name>.*.tmp`` and removed on failure.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; results are ordinary files
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def sha256_file(path: str | Path, chunk_bytes: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def writable_folder(path: str | Path) -> Path:
    """Create an output folder if needed and check it can be written, before any work starts.

    Raises
    ------
    SomnaError
        If the path is a file, lies under a file, or cannot be created or written.
    """
    from somna.errors import SomnaError

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise SomnaError("is a file, not an output folder", out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".somna-write-test-{os.getpid()}"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise SomnaError(f"cannot write the output folder: {err.strerror or err}", out) from None
    return out


LOCK_NAME = ".somna.lock"


@contextlib.contextmanager
def folder_lock(folder: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on an output folder while writing into it; one writer at a time.

    The lock is an ``fcntl`` lock on ``folder/.somna.lock`` (holding the writer's process id), which the
    operating system releases when the writer exits, however it ends. Temporary files left in the
    folder by a killed writer are removed once the lock is held (no live writer can own them then).

    Raises
    ------
    SomnaError
        If another process holds the lock ("being written by process N").
    """
    from somna.errors import SomnaError

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise SomnaError(f"is being written by process {holder}; wait for it to finish", folder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)
        yield folder
    finally:
        os.close(fd)  # releases the lock
