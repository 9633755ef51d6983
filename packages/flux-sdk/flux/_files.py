"""Files only their owner may read: the Flux home and the SQLite databases in it hold
encrypted secrets, token hashes, workflow sources and every input and output."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["private_dir", "private_file"]


def private_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder, created owner-only (0700) when missing (with its parents); an
    existing folder keeps its mode (it may be shared on purpose)."""
    folder = Path(path)
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            return folder  # made by another process meanwhile
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask; this is not
    return folder


def private_file(path: str | os.PathLike[str]) -> Path:
    """``path`` as a file readable by its owner only (0600): created empty when missing, its
    mode narrowed when it is this user's and others may read it. SQLite gives a database's
    ``-wal`` and ``-shm`` files the database file's mode."""
    file = Path(path)
    private_dir(file.parent)
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        info = file.stat()
        if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
            os.chmod(file, stat.S_IMODE(info.st_mode) & 0o700)
        return file
    os.close(fd)
    os.chmod(file, 0o600)
    return file
