"""Rotating the secrets' encryption key: every stored secret re-encrypted in place with the new
key, in one transaction, and the new key's fingerprint recorded.

A server given ``security.encryption_key`` (the new key) and the old one in
``security.previous_encryption_keys`` reads secrets written with either, and on start
re-encrypts those still under an old key. Replicas take turns on PostgreSQL; once the
fingerprint is the new key's, the old keys can be dropped from the configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from flux.domain import utcnow
from flux.errors import SecretDecryptionError, UsageError
from flux.secrets import decrypt_value, encrypt_value

from flux_server.db import Database, Tx
from flux_server.db.tables import secrets, server_state

__all__ = ["decrypt_any", "rotate_secrets_key"]

log = logging.getLogger("flux.server.secrets")

_LOCK = 0x466C75784B657952  # "FluxKeyR": one replica re-encrypts at a time
_FINGERPRINT = "key_fingerprint"


def decrypt_any(keys: Sequence[bytes], name: str, blob: bytes) -> tuple[object, int]:
    """The value of a stored secret and the index of the key in ``keys`` that opened it.

    Raises:
        SecretDecryptionError: none of ``keys`` opens it (the first key's message).
    """
    first: SecretDecryptionError | None = None
    for index, key in enumerate(keys):
        try:
            return decrypt_value(key, name, blob), index
        except SecretDecryptionError as exc:
            first = first or exc
    assert first is not None, "no keys"
    raise first


async def rotate_secrets_key(
    db: Database, key: bytes, previous: Sequence[bytes], fingerprint: str
) -> int:
    """Re-encrypt with ``key`` every secret that only one of ``previous`` opens, and record
    ``fingerprint`` as the database's key; how many secrets moved.

    Raises:
        UsageError: a secret that neither ``key`` nor any of ``previous`` opens (nothing is
            changed then).
    """

    def write(tx: Tx[sa.Connection]) -> int:
        if not db.is_sqlite:
            tx.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
        moved = 0
        for name, blob in tx.conn.execute(sa.select(secrets.c.name, secrets.c.value)).all():
            try:
                value, index = decrypt_any([key, *previous], name, blob)
            except SecretDecryptionError:
                raise UsageError(
                    f"secret {name!r} opens with neither security.encryption_key nor any of "
                    "security.previous_encryption_keys: add the key it was written with to "
                    "previous_encryption_keys (nothing was re-encrypted)",
                    name=name,
                ) from None
            if index > 0:
                tx.conn.execute(
                    sa.update(secrets)
                    .where(secrets.c.name == name)
                    .values(value=encrypt_value(key, name, value))
                )
                moved += 1
        tx.conn.execute(
            sa.update(server_state)
            .where(server_state.c.name == _FINGERPRINT)
            .values(value=fingerprint, updated_at=utcnow())
        )
        return moved

    moved = await db.run_write(write)
    if moved:
        log.warning(
            "re-encrypted %d secret(s) with the new key (fingerprint %s); once every server "
            "has it, security.previous_encryption_keys may go",
            moved,
            fingerprint,
        )
    return moved
