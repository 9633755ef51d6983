"""Secrets for running workflows, encrypted at rest with :mod:`flux.secrets`.

The table has the layout of :class:`flux.secrets.LocalSecretStore`'s, so on SQLite the server
and ``flux secrets`` share secrets in the same file by default. Values never leave this store
except to a worker holding an execution (see the workers API) and are never logged.

``set``/``remove``/``names`` exist for the admin endpoints (``/admin/secrets``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa
from flux.domain import utcnow
from flux.errors import SecretNotFoundError
from flux.secrets import decrypt_value, encrypt_value, validate_secret_name

from flux_server.db import Database
from flux_server.db.tables import secrets

__all__ = ["SecretStore"]

_S = secrets.c


class SecretStore:
    """Args:
    db: the server database.
    load_key: returns the 32-byte secrets key; called once, off the event loop (it may read
        or create ``{home}/encryption.key``).
    """

    def __init__(self, db: Database, load_key: Callable[[], bytes]) -> None:
        self.db = db
        self._load_key = load_key
        self._key: bytes | None = None
        self._key_lock = asyncio.Lock()

    async def _get_key(self) -> bytes:
        if self._key is None:
            async with self._key_lock:
                if self._key is None:
                    self._key = await asyncio.to_thread(self._load_key)
        return self._key

    async def get_many(self, names: Iterable[str]) -> dict[str, Any]:
        """Raises SecretNotFoundError naming every missing secret; UsageError for a bad name."""
        wanted = list(dict.fromkeys(validate_secret_name(n) for n in names))
        if not wanted:
            return {}
        async with self.db.read() as conn:
            rows = dict(
                (await conn.execute(sa.select(_S.name, _S.value).where(_S.name.in_(wanted)))).all()
            )
        missing = [n for n in wanted if n not in rows]
        if missing:
            raise SecretNotFoundError(
                f"secret(s) not found: {', '.join(map(repr, missing))}; create them with "
                "`flux secrets set NAME VALUE`",
                missing=missing,
            )
        key = await self._get_key()
        return {n: decrypt_value(key, n, rows[n]) for n in wanted}

    async def set(self, name: str, value: Any) -> None:
        blob = encrypt_value(await self._get_key(), name, value)
        now = utcnow()
        async with self.db.write() as tx:
            updated = await tx.conn.execute(
                sa.update(secrets).where(_S.name == name).values(value=blob, updated_at=now)
            )
            if not updated.rowcount:
                await tx.conn.execute(
                    sa.insert(secrets).values(name=name, value=blob, updated_at=now)
                )

    async def remove(self, name: str) -> bool:
        validate_secret_name(name)
        async with self.db.write() as tx:
            result = await tx.conn.execute(sa.delete(secrets).where(_S.name == name))
        return bool(result.rowcount)

    async def names(self) -> list[str]:
        async with self.db.read() as conn:
            return list((await conn.execute(sa.select(_S.name).order_by(_S.name))).scalars())
