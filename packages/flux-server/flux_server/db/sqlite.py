"""The SQLite backend: one writer thread with group commit, a small reader pool, WAL mode.

Every write, by any way in, holds one in-process lock (SQLite has one writer anyway; queueing
on a lock is cheaper than its busy-wait), so one SQLite file serves one server process:
``run_write`` and ``run_statement`` queue on the writer thread, and ``write()`` parks that
thread while its block runs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from flux._files import private_file
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from flux_server.db.connections import ThreadConnections
from flux_server.db.group_commit import GroupWriter
from flux_server.db.tx import ResultTx, Tx
from flux_server.db.urls import sync_url

__all__ = ["SQLiteBackend", "StatementConnection"]

T = TypeVar("T")


class StatementConnection:
    """``tx.conn`` of ``run_statement`` on SQLite: the writer thread's connection, as
    ``sync_connection``, in the writer's transaction.

    The statement function runs in that thread to its end without ever suspending: what it
    awaits must answer at once, as :meth:`flux_server.db.raw.Statement.execute_async` does
    with this connection (it runs the statement on ``sync_connection``).
    """

    __slots__ = ("sync_connection",)

    def __init__(self, conn: sa.Connection) -> None:
        self.sync_connection = conn


class SQLiteBackend:
    """The ``sqlite`` backend of :class:`~flux_server.db.database.Database`.

    Args:
        url: the database, with its async driver (``sqlite+aiosqlite``); its folder is made.
    """

    def __init__(self, url: sa.URL) -> None:
        assert url.database is not None
        # Owner-only: it holds secrets (encrypted), token hashes, sources, inputs, outputs.
        private_file(Path(url.database).expanduser())
        self.engine = create_async_engine(
            url, pool_size=4, max_overflow=8, connect_args={"timeout": 30}
        )
        event.listen(self.engine.sync_engine, "connect", _pragmas)
        plain = sync_url(url)
        self._writer_engine = _engine(plain, pool_size=1, begin="BEGIN IMMEDIATE")
        self._reader_engine = _engine(plain, pool_size=2, begin="BEGIN")
        self._writer = GroupWriter(self._writer_engine, "flux-db-write")
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="flux-db-read")
        self._conns = ThreadConnections()
        self._write_lock = asyncio.Lock()

    def run_write(
        self, fn: Callable[[Tx[sa.Connection]], Any], insert_only: bool
    ) -> asyncio.Future[ResultTx]:
        # The one writer thread runs these in arrival order, several to a transaction when
        # they queue up; no lock is held across the hop back to the event loop.
        return self._writer.submit(fn)

    async def run_statement(self, fn: Callable[[Tx[Any]], Awaitable[T]]) -> tuple[Tx[Any], T]:
        tx = await self._writer.submit(partial(_statement, fn))
        return tx, tx.result

    def run_read(self, fn: Callable[[sa.Connection], T]) -> asyncio.Future[T]:
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._readers, self._read, fn)

    def _read(self, fn: Callable[[sa.Connection], T]) -> T:
        conn = self._conns.get(self._reader_engine, "read")
        try:
            with conn.begin():  # one snapshot, let go at the end
                return fn(conn)
        except BaseException:
            self._conns.drop(conn)
            raise

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx[AsyncConnection]]:
        lock = self._write_lock
        paused = threading.Event()
        await lock.acquire()
        try:
            # Hold the writer thread at a barrier so no run_write transaction interleaves.
            loop = asyncio.get_running_loop()
            reached = loop.create_future()
            self._writer.park(loop, reached, paused)
            await reached
        except BaseException:
            paused.set()
            lock.release()
            raise
        try:
            async with self.engine.begin() as conn:
                yield Tx(conn)
        finally:
            # The writer thread moves on; run_write jobs queued meanwhile run after the barrier.
            paused.set()
            lock.release()

    async def dispose(self) -> None:
        await self.engine.dispose()
        await asyncio.get_running_loop().run_in_executor(None, self._close_threads)

    def _close_threads(self) -> None:
        self._readers.shutdown(wait=True)
        self._conns.close()  # the readers have stopped: nobody uses these now
        self._writer.close()
        self._writer_engine.dispose()
        self._reader_engine.dispose()


def _statement(fn: Callable[[Tx[Any]], Awaitable[T]], tx: Tx[sa.Connection]) -> T:
    """A ``run_statement`` function as a writer job: run to its end in the writer's thread."""
    inner: Tx[StatementConnection] = Tx(StatementConnection(tx.conn))
    steps = fn(inner).__await__()
    try:
        steps.send(None)
    except StopIteration as done:
        tx.notes.extend(inner.notes)
        tx.facts.extend(inner.facts)
        return done.value  # type: ignore[no-any-return]  # the awaitable's T
    steps.close()
    raise RuntimeError(
        "a run_statement() function waited on something other than its connection; "
        "on SQLite it runs in the writer thread and may only await its statements"
    )


def _engine(url: sa.URL, *, pool_size: int, begin: str) -> sa.Engine:
    """A blocking pysqlite engine whose transactions start with ``begin`` (``BEGIN IMMEDIATE``
    takes the write lock up front, so another process's writer makes it wait, never fail)."""
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    def connect(dbapi_connection: Any, record: Any) -> None:
        _pragmas(dbapi_connection, record)
        # Let SQLAlchemy, not the driver, decide where transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", lambda conn: conn.connection.dbapi_connection.execute(begin))
    return engine


def _pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets reads run beside the writer; NORMAL syncs at checkpoints only, which survives a
    # process crash (an OS crash may lose the last transactions).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
