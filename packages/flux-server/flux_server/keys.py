"""API keys as text: how one is made, read back and checked.

A key is ``flux_<id>_<secret>``: ``id`` (12 hex digits) names the stored row, so checking a key
is one lookup by primary key and one SHA-256, never a slow password hash; ``secret`` is 256
random bits. Only the SHA-256 of the whole key is stored, and it is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from flux._files import private_dir

__all__ = [
    "KEY_PREFIX",
    "hash_key",
    "key_id_of",
    "matches",
    "new_key",
    "write_private",
]

KEY_PREFIX = "flux_"
_ID_HEX = 12


def new_key() -> tuple[str, str]:
    """A fresh ``(key_id, key)``."""
    key_id = secrets.token_hex(_ID_HEX // 2)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The id of a token shaped like an API key; ``None`` for anything else (a worker's session
    token, say)."""
    if not token.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = token[len(KEY_PREFIX) :].partition("_")
    if not sep or len(key_id) != _ID_HEX or not secret:
        return None
    try:
        int(key_id, 16)
    except ValueError:
        return None
    return key_id


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, stored_hash: str) -> bool:
    """Whether ``key`` hashes to ``stored_hash``, in time that does not depend on where they
    differ."""
    return hmac.compare_digest(hash_key(key).encode(), stored_hash.encode())


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable and writable by this user only (0600), replacing
    the file atomically; its folder is created 0700."""
    private_dir(path.parent)
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(staging, 0o600)  # O_CREAT's mode is filtered by the umask; this is not
        os.replace(staging, path)
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
