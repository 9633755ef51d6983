"""Long-term memory (``/memory``, protocol 1.11): JSON values by scope and key, for every worker
(:mod:`flux.memory`). One row per value; a write replaces the row."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from flux.domain import MAX_MEMORY_BYTES, MAX_MEMORY_NAME, utcnow
from flux.errors import ApiError, NotFoundError, UsageError
from flux.protocol import MemoryEntry, MemoryItems
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from flux_server.db import Database
from flux_server.db.tables import memory

__all__ = ["MemoryStore"]

_M = memory.c


class MemoryStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, scope: str, key: str) -> MemoryEntry:
        """Raises NotFoundError when there is no value; UsageError for a bad scope or key."""
        _check(scope, key)
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    sa.select(_M.value, _M.updated_at).where(_M.scope == scope, _M.key == key)
                )
            ).first()
        if row is None:
            raise NotFoundError(f"memory {scope!r} has no key {key!r}", scope=scope, key=key)
        return MemoryEntry(
            scope=scope, key=key, value=json.loads(row.value), updated_at=row.updated_at
        )

    async def items(self, scope: str) -> MemoryItems:
        _check(scope, "-")
        async with self.db.read() as conn:
            rows = await conn.execute(
                sa.select(_M.key, _M.value, _M.updated_at).where(_M.scope == scope).order_by(_M.key)
            )
            entries = [
                MemoryEntry(
                    scope=scope, key=r.key, value=json.loads(r.value), updated_at=r.updated_at
                )
                for r in rows
            ]
        return MemoryItems(scope=scope, items=entries)

    async def put(self, scope: str, key: str, value: Any) -> MemoryEntry:
        """Create or replace. Raises ApiError 413 for a value over 64 KiB as JSON."""
        _check(scope, key)
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        size = len(text.encode())
        if size > MAX_MEMORY_BYTES:
            raise ApiError(
                f"a memory value of {size} bytes as JSON is over the limit of "
                f"{MAX_MEMORY_BYTES} (64 KiB)",
                413,
            )
        now = utcnow()
        insert = sqlite_insert if self.db.is_sqlite else pg_insert
        stmt = insert(memory).values(scope=scope, key=key, value=text, updated_at=now)
        async with self.db.write() as tx:
            await tx.conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["scope", "key"],
                    set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
                )
            )
        return MemoryEntry(scope=scope, key=key, value=value, updated_at=now)

    async def delete(self, scope: str, key: str) -> bool:
        _check(scope, key)
        async with self.db.write() as tx:
            result = await tx.conn.execute(
                sa.delete(memory).where(_M.scope == scope, _M.key == key)
            )
        return bool(result.rowcount)


def _check(scope: str, key: str) -> None:
    for label, name in (("scope", scope), ("key", key)):
        if not name or len(name) > MAX_MEMORY_NAME or "/" in name:
            raise UsageError(
                f"memory {label} {name!r}: give a non-empty name of at most "
                f"{MAX_MEMORY_NAME} characters, without '/'"
            )
