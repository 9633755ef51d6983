"""Values every replica of one database must agree on, checked when a server starts: the
fingerprint of the secrets key, and the digest of the workers' bootstrap token."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from flux.domain import utcnow
from flux.errors import UsageError

from flux_server.db import Database, Tx
from flux_server.db.tables import server_state

__all__ = [
    "check_secrets_key",
    "key_fingerprint",
    "record_token_digest",
    "recorded_key_fingerprint",
    "recorded_token_digest",
]

_KEY = "key_fingerprint"
_TOKEN = "bootstrap_token_sha256"


def key_fingerprint(key: bytes) -> str:
    """A short, one-way name for a secrets key (it cannot give the key back)."""
    return hashlib.sha256(b"flux secrets key\x00" + key).hexdigest()[:16]


async def _read(db: Database, name: str) -> str | None:
    def read(conn: sa.Connection) -> str | None:
        found = conn.execute(
            sa.select(server_state.c.value).where(server_state.c.name == name)
        ).scalar()
        return None if found is None else str(found)

    return await db.run_read(read)


async def _record(db: Database, name: str, value: str, *, replace: bool) -> str | None:
    """Record ``value`` under ``name`` when nothing is recorded (or, with ``replace``, when
    something else is); what was recorded before (``None``: nothing)."""

    def write(tx: Tx[sa.Connection]) -> str | None:
        found = tx.conn.execute(
            sa.select(server_state.c.value).where(server_state.c.name == name)
        ).scalar()
        if found is None:
            tx.conn.execute(
                sa.insert(server_state).values(name=name, value=value, updated_at=utcnow())
            )
        elif replace and found != value:
            tx.conn.execute(
                sa.update(server_state)
                .where(server_state.c.name == name)
                .values(value=value, updated_at=utcnow())
            )
        return None if found is None else str(found)

    try:
        return await db.run_write(write)
    except sa.exc.IntegrityError:  # another replica recorded one meanwhile: that one counts
        recorded = await _read(db, name)
        if replace and recorded != value:
            return await _record(db, name, value, replace=True)
        return recorded


async def recorded_key_fingerprint(db: Database) -> str | None:
    """The fingerprint of the key this database's secrets are written with, once recorded."""
    return await _read(db, _KEY)


async def check_secrets_key(db: Database, key: bytes, previous: Sequence[bytes] = ()) -> None:
    """Record this key's fingerprint if the database has none, else require the same one, or
    that of one of the ``previous`` keys: then every secret is re-encrypted with ``key``
    (:mod:`flux_server.store.key_rotation`), as are any an interrupted rotation left.

    Raises:
        UsageError: the database's secrets were written with another key (a replica with its
            own generated ``encryption.key``, or a changed ``security.encryption_key``).
    """
    from flux_server.store.key_rotation import rotate_secrets_key

    mine = key_fingerprint(key)
    recorded = await _record(db, _KEY, mine, replace=False) or mine
    if recorded == mine or recorded in {key_fingerprint(k) for k in previous}:
        if previous:
            await rotate_secrets_key(db, key, previous, mine)
        return
    raise UsageError(
        f"this server's secrets key (fingerprint {mine}) is not the one this database's "
        f"secrets were written with ({recorded}): give every server of one database the "
        "same key, security.encryption_key (FLUX_SECURITY__ENCRYPTION_KEY), or the same "
        "encryption.key file in its home; to rotate keys, give the old one in "
        "security.previous_encryption_keys",
        fingerprint=mine,
        expected=recorded,
    )


async def recorded_token_digest(db: Database) -> str | None:
    """The SHA-256 (hex) of the bootstrap token the servers of this database accept."""
    return await _read(db, _TOKEN)


async def record_token_digest(db: Database, digest: str, *, replace: bool) -> str | None:
    """Record the digest of the bootstrap token this server accepts: when none is recorded,
    or (``replace``: the token is configured) in place of another. The digest recorded
    before, if any."""
    return await _record(db, _TOKEN, digest, replace=replace)
