"""Connections kept open: one per database thread and kind, and a pool on the event loop."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import psycopg
import sqlalchemy as sa

__all__ = ["LoopConnections", "ThreadConnections"]

log = logging.getLogger(__name__)


class ThreadConnections:
    """Each database thread's connections, one per kind (``"read"``, ``"transactional"``, ...),
    kept for the thread's life: a pool checkout and return per operation cost more than a short
    statement."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._held: list[sa.Connection] = []
        self._held_lock = threading.Lock()

    def get(self, engine: sa.Engine, kind: str) -> sa.Connection:
        """This thread's connection of ``kind``, from ``engine`` (opened on first use, or again
        after it was dropped or invalidated)."""
        conn: sa.Connection | None = getattr(self._local, kind, None)
        if conn is None or conn.closed or conn.invalidated:
            conn = engine.connect()
            setattr(self._local, kind, conn)
            with self._held_lock:
                self._held = [c for c in self._held if not c.closed] + [conn]
        return conn

    def drop(self, conn: sa.Connection) -> None:
        """After an error: close the thread's connection (a fresh one next time)."""
        for kind, held in list(vars(self._local).items()):
            if held is conn:
                setattr(self._local, kind, None)
        try:
            conn.close()
        except Exception:  # already broken: the pool discards it
            log.debug("closing a database thread's connection failed", exc_info=True)

    def close(self) -> None:
        """Close every connection; only once the threads that used them have stopped."""
        for conn in self._held:
            if not conn.closed:
                conn.close()


class LoopConnections:
    """PostgreSQL connections for ``run_statement``: psycopg ``AsyncConnection``s in
    autocommit, at most ``size`` in use (a caller beyond that waits for one), opened on first
    use and kept. One that failed is closed, not reused."""

    def __init__(self, url: sa.URL, size: int) -> None:
        # SQLAlchemy's driver suffix off: libpq reads the rest of the URL as it is.
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.free: list[Any] = []
        self.slots = asyncio.Semaphore(size)

    async def acquire(self) -> Any:
        """A connection, once one of the ``size`` slots is free.

        Raises:
            psycopg.Error: no connection could be opened (the slot is freed).
        """
        await self.slots.acquire()
        if self.free:
            return self.free.pop()
        try:
            return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        except BaseException:
            self.slots.release()
            raise

    def release(self, conn: Any) -> None:
        """Give back a connection that served, to be reused."""
        self.free.append(conn)
        self.slots.release()

    async def discard(self, conn: Any) -> None:
        """Close a connection whose statement failed, freeing its slot."""
        try:
            await conn.close()
        except Exception:  # already broken
            log.debug("closing a failed connection failed", exc_info=True)
        finally:
            self.slots.release()

    async def close(self) -> None:
        """Close the connections not in use."""
        free, self.free = self.free, []
        for conn in free:
            await conn.close()
