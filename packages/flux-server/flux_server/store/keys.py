"""API keys: created, listed, revoked, and found by id when a request shows one.

Rows keep the SHA-256 of a key, never the key. Found keys are cached in memory; a revocation
sends a note (``key:<id>``) so that every replica forgets its copy at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from flux.domain import utcnow
from flux.errors import NotFoundError, UsageError
from flux.protocol import ApiKeyInfo, CreatedApiKey, Role

from flux_server.db import Database, Tx
from flux_server.db.tables import api_keys
from flux_server.keys import hash_key, new_key
from flux_server.notes import key_note

__all__ = ["KeyRecord", "KeyStore"]

_A = api_keys.c
_BY_ID = sa.select(_A.id, _A.name, _A.role, _A.key_hash, _A.expires_at, _A.revoked_at).where(
    _A.id == sa.bindparam("b_id")
)
_CACHE_LIMIT = 10_000
_LOCK = 0x466C75784B657973  # "FluxKeys": creating the first admin key, one replica at a time


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What checking a request's key needs."""

    id: str
    name: str
    role: Role
    key_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None

    def usable(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class KeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, KeyRecord] = {}

    def forget(self, key_id: str) -> None:
        """A key changed (revoked), here or on a replica: read it again next time."""
        self._cache.pop(key_id, None)

    def forget_all(self) -> None:
        """Notes may have been missed: read every key again next time."""
        self._cache.clear()

    def is_current(self, record: KeyRecord) -> bool:
        """Whether ``record`` is still this store's copy of its key (not forgotten since it
        was found)."""
        return self._cache.get(record.id) is record

    async def find(self, key_id: str) -> KeyRecord | None:
        """The key with this id, revoked and expired ones included; ``None`` when unknown."""
        record = self._cache.get(key_id)
        if record is not None:
            return record
        row = await self.db.run_read(lambda conn: conn.execute(_BY_ID, {"b_id": key_id}).first())
        if row is None:
            return None
        record = KeyRecord(
            id=row.id,
            name=row.name,
            role=Role(row.role),
            key_hash=row.key_hash,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[key_id] = record
        return record

    async def create(
        self,
        name: str,
        role: Role,
        expires_at: datetime | None = None,
        created_by: str | None = None,
    ) -> CreatedApiKey:
        """A new key; the answer is the only place the key itself ever appears.

        Raises:
            UsageError: ``expires_at`` is not in the future.
        """
        now = utcnow()
        if expires_at is not None and expires_at <= now:
            raise UsageError(
                f"expires_at {expires_at.isoformat()} is not in the future; give a later time "
                "or none (the key then lasts until revoked)"
            )
        created = _new(name, role, expires_at, created_by)
        await self.db.run_write(lambda tx: _insert(tx, created))
        return created

    async def create_first_admin(self, name: str) -> CreatedApiKey | None:
        """An admin key, unless a usable one exists (then ``None``). Replicas starting at once
        on PostgreSQL take turns, so only one of them creates it."""
        created = _new(name, Role.ADMIN, None, None)

        def write(tx: Tx[sa.Connection]) -> bool:
            if not self.db.is_sqlite:
                tx.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK})
            if tx.conn.execute(_usable_admin(created.created_at)).first() is not None:
                return False
            _insert(tx, created)
            return True

        return created if await self.db.run_write(write) else None

    async def list(self) -> list[ApiKeyInfo]:
        """Every key, oldest first (never the keys)."""
        query = sa.select(
            _A.id, _A.name, _A.role, _A.created_at, _A.expires_at, _A.revoked_at, _A.created_by
        ).order_by(_A.created_at, _A.id)
        rows = await self.db.run_read(lambda conn: conn.execute(query).all())
        return [ApiKeyInfo.model_validate(row._asdict()) for row in rows]

    async def revoke(self, key_id: str) -> None:
        """Refuse the key from now on, on every replica (revoking twice changes nothing).

        Raises:
            NotFoundError: no key has that id.
        """
        now = utcnow()

        def write(tx: Tx[sa.Connection]) -> bool:
            found = tx.conn.execute(sa.select(_A.revoked_at).where(_A.id == key_id)).first()
            if found is None:
                return False
            if found.revoked_at is None:
                tx.conn.execute(sa.update(api_keys).where(_A.id == key_id).values(revoked_at=now))
                tx.notify(key_note(key_id))
            return True

        if not await self.db.run_write(write):
            raise NotFoundError(
                f"no API key has id {key_id!r}; list them with `flux auth key list`"
            )
        self.forget(key_id)


def _new(
    name: str, role: Role, expires_at: datetime | None, created_by: str | None
) -> CreatedApiKey:
    key_id, key = new_key()
    return CreatedApiKey(
        id=key_id,
        name=name,
        role=role,
        created_at=utcnow(),
        expires_at=expires_at,
        created_by=created_by,
        key=key,
    )


def _insert(tx: Tx[sa.Connection], created: CreatedApiKey) -> None:
    values = created.model_dump(include={"id", "name", "created_at", "expires_at", "created_by"})
    values.update(role=created.role.value, key_hash=hash_key(created.key), revoked_at=None)
    tx.conn.execute(sa.insert(api_keys).values(values))


def _usable_admin(now: datetime) -> sa.Select[tuple[str]]:
    return (
        sa.select(_A.id)
        .where(
            _A.role == Role.ADMIN.value,
            _A.revoked_at.is_(None),
            sa.or_(_A.expires_at.is_(None), _A.expires_at > now),
        )
        .limit(1)
    )
