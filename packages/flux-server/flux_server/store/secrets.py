"""Secrets for running workflows, encrypted at rest with :mod:`flux.secrets`.

The table has the layout of :class:`flux.secrets.LocalSecretStore`'s, so on SQLite the server
and ``flux secrets`` share secrets in the same file by default. Values never leave this store
except to a worker holding an execution (see the workers API) and are never logged.

``set``/``remove``/``names`` exist for the admin endpoints (``/admin/secrets``).
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flux.domain import utcnow
from flux.errors import SecretNotFoundError
from flux.secrets import encrypt_value, validate_secret_name
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flux_server.db import Database
from flux_server.db.tables import secrets
from flux_server.store.key_rotation import decrypt_any

__all__ = ["SecretStore"]

_S = secrets.c


class SecretStore:
    """Args:
    db: the server database.
    load_key: returns the 32-byte secrets key; called once, off the event loop (it may read
        or create ``{home}/encryption.key``).
    previous: keys being rotated away from: what one of them opens is read too.
    """

    def __init__(
        self, db: Database, load_key: Callable[[], bytes], previous: Sequence[bytes] = ()
    ) -> None:
        self.db = db
        self._load_key = load_key
        self._previous = list(previous)
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
            noun = "secret" if len(missing) == 1 else "secrets"
            raise SecretNotFoundError(
                f"{noun} not found: {', '.join(map(repr, missing))}; create with "
                "`flux secrets set NAME VALUE`",
                missing=missing,
            )
        keys = [await self._get_key(), *self._previous]
        return {n: decrypt_any(keys, n, rows[n])[0] for n in wanted}

    async def get(self, name: str) -> Any:
        """Raises SecretNotFoundError, SecretDecryptionError (another key), UsageError (bad
        name)."""
        return (await self.get_many([name]))[name]

    async def set(self, name: str, value: Any) -> datetime:
        """Create or replace ``name`` (any JSON value); returns the time it was stored.

        Raises:
            UsageError: an invalid name, or a value that is not JSON (never echoed).
        """
        blob = encrypt_value(await self._get_key(), name, value)
        now = utcnow()
        async with self.db.write() as tx:
            insert = sqlite_insert if self.db.is_sqlite else pg_insert
            stmt = insert(secrets).values(name=name, value=blob, updated_at=now)
            await tx.conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )
        return now

    async def remove(self, name: str) -> bool:
        validate_secret_name(name)
        async with self.db.write() as tx:
            result = await tx.conn.execute(sa.delete(secrets).where(_S.name == name))
        return bool(result.rowcount)

    async def names(self) -> builtins.list[str]:
        async with self.db.read() as conn:
            return list((await conn.execute(sa.select(_S.name).order_by(_S.name))).scalars())

    async def list(self) -> builtins.list[tuple[str, datetime]]:
        """(name, updated_at) of every secret, by name; never the values."""
        async with self.db.read() as conn:
            rows = await conn.execute(sa.select(_S.name, _S.updated_at).order_by(_S.name))
            return [(row.name, row.updated_at) for row in rows]
