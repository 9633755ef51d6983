"""Worker authentication: the bootstrap token and per-worker session tokens.

The bootstrap token lets a worker register. It comes from ``workers.bootstrap_token`` in the
settings; else from the database, where every server records the SHA-256 of the token it
accepts (so replicas of one database without a configured token accept the same one); else
from ``{home}/bootstrap-token``, generated once with mode 0600: there is never a public
default. Registration returns a random session token; only its SHA-256 is stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from flux._files import private_dir
from flux.errors import ApiError

from flux_server.db import Database
from flux_server.store import WorkerStore
from flux_server.store.server_state import record_token_digest, recorded_token_digest

__all__ = [
    "TOKEN_FILE",
    "Authenticator",
    "bearer",
    "bootstrap_digest",
    "hash_token",
    "load_bootstrap_token",
    "new_token",
]

log = logging.getLogger(__name__)

TOKEN_FILE = "bootstrap-token"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def load_bootstrap_token(configured: str | None, home: Path) -> str:
    """``configured`` when set, else the token in ``{home}/bootstrap-token`` (created once)."""
    if configured:
        return configured
    path = Path(home) / TOKEN_FILE
    try:
        token = path.read_text().strip()
    except FileNotFoundError:
        token = ""
    if token:
        return token
    private_dir(path.parent)
    token = new_token()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    log.info("generated a worker bootstrap token in %s (readable by this user only)", path)
    return token


async def bootstrap_digest(db: Database, configured: str | None, home: Path) -> str:
    """The SHA-256 (hex) of the bootstrap token this server accepts, recorded in ``db``.

    A configured token is the one, and replaces a different recorded one (with a warning:
    servers that still have the old token accept only that one). Without one, the token the
    database recorded is the one; a database without one takes the token of
    ``{home}/bootstrap-token`` (generated when missing).
    """
    if configured:
        digest = hash_token(configured)
        before = await record_token_digest(db, digest, replace=True)
        if before is not None and before != digest:
            log.warning(
                "workers.bootstrap_token differs from the token the other servers of this "
                "database accepted; this server's replaces it, and servers still configured "
                "with the old one accept only that: give every server the same token"
            )
        return digest
    recorded = await recorded_token_digest(db)
    if recorded is None:
        token = await asyncio.to_thread(load_bootstrap_token, None, home)
        recorded = await record_token_digest(db, hash_token(token), replace=False)
        if recorded is None:
            return hash_token(token)
    local = await asyncio.to_thread(_token_file, Path(home) / TOKEN_FILE)
    if local and hash_token(local) != recorded:
        log.warning(
            "the token in %s is not the bootstrap token the servers of this database accept "
            "(another server recorded it first); workers must use that one: set "
            "workers.bootstrap_token on every server and worker",
            Path(home) / TOKEN_FILE,
        )
    return recorded


def _token_file(path: Path) -> str:
    try:
        return path.read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return ""


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header; ``None`` for any other."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _unauthorized(message: str) -> ApiError:
    return ApiError(message, 401)


class Authenticator:
    """Checks ``Authorization: Bearer ...`` headers; caches token owners in memory."""

    def __init__(self, bootstrap_digest: str, workers: WorkerStore) -> None:
        self._bootstrap = bootstrap_digest.encode()
        self._workers = workers
        self._owners: dict[str, str] = {}

    def check_bootstrap(self, authorization: str | None) -> None:
        """Raises ApiError 401 unless the header carries the bootstrap token."""
        token = bearer(authorization)
        if token is None:
            raise _unauthorized(
                "worker registration needs 'Authorization: Bearer <bootstrap token>'"
            )
        if not hmac.compare_digest(hash_token(token).encode(), self._bootstrap):
            raise _unauthorized(
                "wrong bootstrap token; use the server's (workers.bootstrap_token, or the "
                f"{TOKEN_FILE} file in the Flux home of the server that made it)"
            )

    async def check_session(self, name: str, authorization: str | None) -> None:
        """Raises ApiError 401 for a missing/unknown token, 403 for another worker's token."""
        token = bearer(authorization)
        if token is None:
            raise _unauthorized("worker calls need 'Authorization: Bearer <session token>'")
        owner = await self.session_owner(token)
        if owner is None:
            raise _unauthorized("unknown or expired session token; register the worker again")
        if owner != name:
            raise ApiError(f"this session token belongs to another worker, not {name!r}", 403)

    async def session_owner(self, token: str) -> str | None:
        """The worker whose current session token ``token`` is; ``None`` when none."""
        digest = hash_token(token)
        owner = self._owners.get(digest)
        if owner is None:
            owner = await self._workers.token_owner(digest)
            if owner is None:
                return None
            self._owners[digest] = owner
        return owner

    def forget(self, token_hash: str) -> None:
        """A session ended (re-registration): stop accepting its token."""
        self._owners.pop(token_hash, None)

    def forget_all(self) -> None:
        """Notes may have been missed: check every token against the database again."""
        self._owners.clear()
