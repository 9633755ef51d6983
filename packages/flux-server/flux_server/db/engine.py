"""The database handle: one async engine per server, write transactions, post-commit signals.

``sqlite:///path`` (the default, ``.flux/flux.db``) runs on aiosqlite in WAL mode;
``postgresql://`` URLs run on psycopg 3. Nothing here blocks the event loop.

Writes go through :meth:`Database.write`. On SQLite they are serialised by an in-process lock
(SQLite has one writer anyway; queueing on a lock is cheaper than SQLite's busy-wait), which is
why one SQLite file serves one server process. On PostgreSQL any number of replicas share the
database; row locks and conditional updates keep them consistent.

A write transaction can carry notes (``tx.notify("dispatch")``): on PostgreSQL they are sent
with ``pg_notify`` inside the transaction, so other replicas hear them exactly when the change
is visible; in this process they are delivered to :attr:`Database.sink` after the commit.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flux.errors import UsageError
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

__all__ = ["NOTIFY_CHANNEL", "Database", "Tx", "async_url", "sync_url"]

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "flux"


def async_url(url: str) -> sa.URL:
    """Map a configured URL to its async driver (aiosqlite, psycopg 3).

    Raises:
        UsageError: an unsupported database or an in-memory SQLite database.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise UsageError(f"invalid database_url {url!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
        parsed = parsed.set(drivername="postgresql")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise UsageError(
                f"database_url {url!r} is an in-memory SQLite database, which each connection "
                "would see empty; use a file such as 'sqlite:///.flux/flux.db'"
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        driver = parsed.get_driver_name()
        if driver in ("", "psycopg2", "psycopg"):
            return parsed.set(drivername="postgresql+psycopg")
        return parsed
    raise UsageError(
        f"unsupported database_url {url!r}; use 'sqlite:///path/flux.db' or 'postgresql://...'"
    )


def sync_url(url: str | sa.URL) -> sa.URL:
    """The same database through a blocking driver (for the ``alembic`` command line)."""
    parsed = async_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed


class Tx:
    """A write transaction: its connection and the notes to send when it commits."""

    __slots__ = ("conn", "notes")

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        self.notes: list[str] = []

    def notify(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


class Database:
    """An async engine plus the write discipline described in the module docstring."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self.origin = uuid.uuid4().hex[:12]
        """Identifies this process in notes, so it can skip its own."""
        self.sink: Callable[[str], None] = lambda note: None
        kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 2 * pool_size}
        if self.is_sqlite:
            assert self.url.database is not None
            Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs = {"pool_size": 4, "max_overflow": 8, "connect_args": {"timeout": 30}}
        else:
            kwargs["pool_recycle"] = 1800
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A write transaction, committed when the block exits without an exception."""
        lock = self._write_lock
        if lock is not None:
            await lock.acquire()
        try:
            async with self.engine.begin() as conn:
                tx = Tx(conn)
                yield tx
                if tx.notes and not self.is_sqlite:
                    await conn.execute(
                        sa.text(
                            f"SELECT pg_notify('{NOTIFY_CHANNEL}', n) "
                            "FROM unnest(CAST(:notes AS text[])) AS n"
                        ),
                        {"notes": [f"{self.origin}|{note}" for note in tx.notes]},
                    )
        finally:
            if lock is not None:
                lock.release()
        for note in tx.notes:
            self.sink(note)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (each statement sees committed data)."""
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets reads run beside the writer; NORMAL syncs at checkpoints only, which survives a
    # process crash (an OS crash may lose the last transactions).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
