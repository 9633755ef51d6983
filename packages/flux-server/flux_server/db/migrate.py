"""Apply the Alembic migrations in ``migrations/`` (programmatically, no alembic.ini)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from flux_server.db.database import Database

__all__ = ["VERSION_TABLE", "alembic_config", "applied", "heads", "upgrade"]

VERSION_TABLE = "flux_alembic_version"
_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x464C5558  # "FLUX": one replica migrates at a time


def alembic_config(connection: Any = None, url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url)
    cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _heads() -> tuple[str, ...]:
    return tuple(ScriptDirectory.from_config(alembic_config()).get_heads())


def heads() -> list[str]:
    """This server's migration heads (read from the scripts once: ``/ready`` asks often)."""
    return list(_heads())


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (concurrent replicas on PostgreSQL take turns)."""
    async with db.write() as tx:
        if not db.is_sqlite:
            await tx.conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        await tx.conn.run_sync(_upgrade, revision)


def _upgrade(connection: sa.Connection, revision: str) -> None:
    command.upgrade(alembic_config(connection), revision)


async def applied(db: Database) -> list[str]:
    """The revisions the database's schema is at (empty before the first migration)."""

    def read(conn: sa.Connection) -> list[str]:
        if not sa.inspect(conn).has_table(VERSION_TABLE):
            return []
        rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
        return sorted(r[0] for r in rows)

    return await db.run_read(read)
