"""Values every replica of one database must agree on, checked when a server starts."""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from flux.domain import utcnow
from flux.errors import UsageError

from flux_server.db import Database, Tx
from flux_server.db.tables import server_state

__all__ = ["check_secrets_key", "key_fingerprint"]

_KEY = "key_fingerprint"


def key_fingerprint(key: bytes) -> str:
    """A short, one-way name for a secrets key (it cannot give the key back)."""
    return hashlib.sha256(b"flux secrets key\x00" + key).hexdigest()[:16]


async def check_secrets_key(db: Database, key: bytes) -> None:
    """Record this key's fingerprint if the database has none, else require the same one.

    Raises:
        UsageError: the database's secrets were written with another key (a replica with its
            own generated ``encryption.key``, or a changed ``security.encryption_key``).
    """
    mine = key_fingerprint(key)

    def write(tx: Tx[sa.Connection]) -> str:
        found = tx.conn.execute(
            sa.select(server_state.c.value).where(server_state.c.name == _KEY)
        ).scalar()
        if found is None:
            tx.conn.execute(
                sa.insert(server_state).values(name=_KEY, value=mine, updated_at=utcnow())
            )
            return mine
        return str(found)

    try:
        recorded = await db.run_write(write)
    except sa.exc.IntegrityError:  # another replica recorded its key meanwhile: compare to it
        recorded = await db.run_read(
            lambda conn: str(
                conn.execute(
                    sa.select(server_state.c.value).where(server_state.c.name == _KEY)
                ).scalar()
            )
        )
    if recorded != mine:
        raise UsageError(
            f"this server's secrets key (fingerprint {mine}) is not the one this database's "
            f"secrets were written with ({recorded}): give every server of one database the "
            "same key, security.encryption_key (FLUX_SECURITY__ENCRYPTION_KEY), or the same "
            "encryption.key file in its home",
            fingerprint=mine,
            expected=recorded,
        )
