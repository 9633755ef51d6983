"""The PostgreSQL backend: a few threads over blocking psycopg connections, group commit for
insert-only writes, single statements on the event loop, notes to other replicas.

Any number of replicas share the database; row locks and conditional updates keep them
consistent. A write's notes reach other replicas through ``pg_notify`` (see
:mod:`flux_server.db.notifier`): the rare ones inside the transaction, the hints batched just
after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from flux_server.db.connections import LoopConnections, ThreadConnections
from flux_server.db.group_commit import GroupWriter
from flux_server.db.notifier import HINT_KINDS, NOTIFY, NOTIFY_SQL, Notifier
from flux_server.db.raw import driver_error
from flux_server.db.tx import ResultTx, Tx
from flux_server.db.urls import sync_url

__all__ = ["PostgresBackend"]

T = TypeVar("T")


class PostgresBackend:
    """The ``postgresql`` backend of :class:`~flux_server.db.database.Database`.

    Args:
        url: the database, with its async driver (``postgresql+psycopg``).
        origin: this process's tag in the notes it sends.
        pool_size: the async engine's pool (``write()``, ``read()``).
        threads: database threads, and connections for ``run_statement``.
    """

    def __init__(self, url: sa.URL, origin: str, *, pool_size: int, threads: int) -> None:
        self.origin = origin
        # run_write / run_read: blocking connections, one per thread while in use, plus
        # the insert writer's and the notifier's. Few threads: each statement's wait
        # releases the GIL and each answer takes it back, and with more threads than
        # cores those hand-offs queue (30 threads ran half the workflows/s of 4).
        # Each thread keeps two (a transactional and an autocommit one, see ThreadConnections).
        self._engine = sa.create_engine(
            sync_url(url),
            pool_size=2 * threads + 2,
            max_overflow=threads,
            pool_recycle=1800,
        )
        # Reads skip BEGIN/ROLLBACK: two round trips fewer for a one-query read.
        self._read_engine = self._engine.execution_options(isolation_level="AUTOCOMMIT")
        self._threads = ThreadPoolExecutor(threads, thread_name_prefix="flux-db")
        self._conns = ThreadConnections()
        self.notifier = Notifier(self._read_engine, origin)
        self._inserts = GroupWriter(
            self._engine, "flux-db-insert", self._notify_in, self.notifier.send
        )
        self.engine = create_async_engine(
            url, pool_size=pool_size, max_overflow=2 * pool_size, pool_recycle=1800
        )
        self._on_loop = LoopConnections(sync_url(url), size=threads)

    def run_write(
        self, fn: Callable[[Tx[sa.Connection]], Any], insert_only: bool
    ) -> asyncio.Future[ResultTx]:
        if insert_only:
            return self._inserts.submit(fn)
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._threads, self._write, fn)

    def _write(self, fn: Callable[[Tx[sa.Connection]], Any]) -> ResultTx:
        conn = self._conns.get(self._engine, "transactional")
        try:
            with conn.begin():
                tx = ResultTx(conn)
                tx.result = fn(tx)
                self._notify_in(conn, tx.notes)
        except BaseException:
            self._conns.drop(conn)
            raise
        self.notifier.send(tx.notes)
        return tx

    def _notify_in(self, conn: sa.Connection, notes: list[str]) -> None:
        """Send the notes that must not be lost with the transaction itself (see
        :data:`~flux_server.db.notifier.HINT_KINDS` for the ones sent after it)."""
        lasting = [f"{self.origin}|{note}" for note in notes if not note.startswith(HINT_KINDS)]
        if lasting:
            conn.execute(NOTIFY, {"notes": lasting})

    async def run_statement(self, fn: Callable[[Tx[Any]], Awaitable[T]]) -> tuple[Tx[Any], T]:
        pool = self._on_loop
        try:
            conn = await pool.acquire()
        except psycopg.Error as exc:  # no connection: raised as run_write would raise it
            raise driver_error(exc) from exc
        tx: Tx[Any] = Tx(conn)
        try:
            result = await fn(tx)
            lasting = [f"{self.origin}|{n}" for n in tx.notes if not n.startswith(HINT_KINDS)]
            if lasting:
                await conn.execute(NOTIFY_SQL, [lasting])
        except BaseException as exc:
            await pool.discard(conn)
            if isinstance(exc, psycopg.Error):
                raise driver_error(exc) from exc
            raise
        pool.release(conn)
        self.notifier.send(tx.notes)
        return tx, result

    def run_read(self, fn: Callable[[sa.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._threads, self._read, fn)

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        conn = self._conns.get(self._read_engine, "autocommit")
        try:
            result = fn(conn)
            conn.rollback()  # ends SQLAlchemy's bookkeeping; autocommit sends nothing
        except BaseException:
            self._conns.drop(conn)
            raise
        return result

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx[AsyncConnection]]:
        async with self.engine.begin() as conn:
            tx = Tx(conn)
            yield tx
            await conn.run_sync(lambda sync: self._notify_in(sync, tx.notes))
        self.notifier.send(tx.notes)

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self._on_loop.close()
        await asyncio.get_running_loop().run_in_executor(None, self._close_threads)

    def _close_threads(self) -> None:
        self._threads.shutdown(wait=True)
        self._conns.close()  # the threads have stopped: nobody uses these now
        self._inserts.close()
        self.notifier.close()
        self._engine.dispose()
