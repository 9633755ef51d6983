"""The database handle: one per server, over the backend of its dialect.

``sqlite:///path`` (the default, ``.flux/flux.db``) runs on :class:`SQLiteBackend`, WAL mode;
``postgresql://`` URLs run on :class:`PostgresBackend`, psycopg 3. Nothing here blocks the
event loop. :class:`Database` picks the backend and keeps what both share: the ways in, the
guard against nesting, and delivering notes to :attr:`Database.sink`.

Three ways in, the same on both dialects:

- :meth:`Database.run_write` / :meth:`Database.run_read` take a *synchronous* function of a
  SQLAlchemy ``Connection`` and run it as one unit: on SQLite in a dedicated writer thread (or a
  small reader pool) over the blocking driver, so a whole store operation costs one thread hop
  instead of several per statement; on PostgreSQL likewise in a pool of threads over blocking
  psycopg connections (a statement there is a plain blocking call that releases the GIL while
  it waits, instead of an await through SQLAlchemy's greenlet bridge). The hot paths (runs,
  claims, checkpoints, dispatch, status) use these.
- :meth:`Database.run_statement` runs one self-contained statement: on PostgreSQL on the event
  loop itself, over psycopg's async connections, so the hottest write (a worker's batch of
  checkpoints) skips the hop to a database thread and back, and the hand-offs of the GIL
  between that thread and the loop; on SQLite as a write of the writer thread.
- ``async with db.write() as tx`` / ``async with db.read() as conn`` give an ``AsyncConnection``
  for code that is more convenient to write with ``await`` (slower per statement on SQLite).

Writes that only insert rows (``run_write(..., insert_only=True)``, such as a new execution)
are group-committed by one thread (:mod:`flux_server.db.group_commit`): on SQLite every write
is; on PostgreSQL these are, so under load a few hundred new executions a second cost a few
dozen commits.

A write transaction can carry notes (``tx.notify(notes.DISPATCH)``, the vocabulary of
:mod:`flux_server.notes`); in this process they are delivered to :attr:`Database.sink` after
the commit, never for a write that failed. On PostgreSQL other replicas hear them through
``pg_notify`` (:mod:`flux_server.db.notifier`), never before the change is visible. The facts
a transaction records for metrics (``tx.record(...)``, :mod:`flux_server.metrics`) go to
:attr:`Database.counter` the same way, in this process only.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from flux_server.db.postgres import PostgresBackend
from flux_server.db.sqlite import SQLiteBackend
from flux_server.db.tx import ResultTx, Tx
from flux_server.db.urls import async_url

__all__ = ["Backend", "Database", "Tx"]

T = TypeVar("T")

_IN_WRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("flux_in_write", default=False)


class Backend(Protocol):
    """What a dialect gives :class:`Database`. Notes and facts are the facade's to deliver: a
    backend hands back each committed transaction and sends nothing to the sink itself."""

    engine: AsyncEngine
    """The async engine behind :meth:`Database.write` and :meth:`Database.read`."""

    def run_write(
        self, fn: Callable[[Tx[sa.Connection]], Any], insert_only: bool
    ) -> Awaitable[ResultTx]:
        """Run ``fn`` in a write transaction; its committed transaction, ``result`` set."""
        ...

    def run_statement(self, fn: Callable[[Tx[Any]], Awaitable[T]]) -> Awaitable[tuple[Tx[Any], T]]:
        """Run ``await fn(tx)`` as one write; its committed transaction and its result. Runs
        to the end once started, whoever waits for it."""
        ...

    def run_read(self, fn: Callable[[sa.Connection], T]) -> Awaitable[T]:
        """Run ``fn`` for reads; what it returned."""
        ...

    def write(self) -> AbstractAsyncContextManager[Tx[AsyncConnection]]:
        """A write transaction on :attr:`engine`, committed when the block exits cleanly."""
        ...

    async def dispose(self) -> None:
        """Close every connection and stop every thread."""
        ...


class Database:
    """The database of one server: see the module docstring.

    Args:
        url: ``sqlite:///path`` or ``postgresql://...``.
        pool_size: PostgreSQL: the async engine's pool.
        threads: PostgreSQL: database threads, and connections for :meth:`run_statement`.

    Raises:
        UsageError: the URL is not supported (see :func:`~flux_server.db.urls.async_url`).
    """

    def __init__(self, url: str, *, pool_size: int = 10, threads: int = 4) -> None:
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self.origin = uuid.uuid4().hex[:12]
        """Identifies this process in notes, so it can skip its own."""
        self.sink: Callable[[str], None] = lambda note: None
        """Where each committed write's notes go, in this process."""
        self.counter: Callable[[list[Any]], None] = lambda facts: None
        """Where each committed write's facts go (a list per transaction that has any)."""
        self._backend: Backend
        if self.is_sqlite:
            self._backend = SQLiteBackend(self.url)
        else:
            self._backend = PostgresBackend(
                self.url, self.origin, pool_size=pool_size, threads=threads
            )
        self.engine: AsyncEngine = self._backend.engine

    async def run_write(
        self,
        fn: Callable[[Tx[sa.Connection]], T],
        *,
        insert_only: bool = False,
    ) -> T:
        """Run ``fn(tx)`` in one write transaction, committed when it returns; the notes it
        made are delivered after the commit. ``fn`` is synchronous and must not touch the event
        loop (it may run in another thread).

        ``insert_only``: ``fn`` only inserts rows (it takes no row lock another write could
        wait on), so on PostgreSQL it may share a transaction with other such writes: they
        are group-committed by one thread, as every write is on SQLite.

        Raises:
            RuntimeError: called inside an ``async with db.write()`` block.
        """
        if _IN_WRITE.get():
            # On SQLite the writer thread is parked until that block ends: this would deadlock.
            raise RuntimeError("run_write() inside an `async with db.write()` block")
        tx = await self._backend.run_write(fn, insert_only)
        self._deliver(tx)
        return tx.result  # type: ignore[no-any-return]  # what fn returned

    async def run_statement(self, fn: Callable[[Tx[Any]], Awaitable[T]]) -> T:
        """``await fn(tx)`` as a write that is one statement, atomic by itself (it may read
        first). Its notes are delivered as :meth:`run_write` delivers them.

        On PostgreSQL ``tx.conn`` is a psycopg ``AsyncConnection`` in autocommit, used on the
        event loop. On SQLite it is a :class:`~flux_server.db.sqlite.StatementConnection` and
        ``fn`` runs in the writer thread, in its transaction, to its end without suspending.
        :meth:`flux_server.db.raw.Statement.execute_async` runs on either.

        It runs to the end even when the caller is cancelled (as a database thread's work
        would): a statement that committed always has its notes delivered.

        Raises:
            sqlalchemy.exc.DBAPIError: the driver's error, as :meth:`run_write` raises it.
            RuntimeError: called inside an ``async with db.write()`` block.
        """
        if _IN_WRITE.get():
            raise RuntimeError("run_statement() inside an `async with db.write()` block")
        work = asyncio.ensure_future(self._backend.run_statement(fn))
        try:
            tx, result = await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(self._deliver_late)
            raise
        # Here, not in ``work``: the caller goes on in this same step (a checkpoint hands the
        # settled statuses to their waiters before any waiter wakes up to read one).
        self._deliver(tx)
        return result

    def _deliver_late(self, work: asyncio.Future[tuple[Tx[Any], Any]]) -> None:
        """The notes of a statement whose caller was cancelled, once it committed."""
        if work.cancelled() or work.exception() is not None:
            return  # nothing committed (the error is retrieved: not logged as lost)
        self._deliver(work.result()[0])

    def _deliver(self, tx: Tx[Any]) -> None:
        """A committed transaction's notes to :attr:`sink`, its facts to :attr:`counter`."""
        for note in tx.notes:
            self.sink(note)
        if tx.facts:
            self.counter(tx.facts)

    async def run_read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run the synchronous ``fn(conn)`` for reads: one snapshot on SQLite; on PostgreSQL each
        statement sees what is committed when it runs (autocommit)."""
        return await self._backend.run_read(fn)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx[AsyncConnection]]:
        """A write transaction, committed when the block exits without an exception; its
        notes are delivered after the commit."""
        token = _IN_WRITE.set(True)
        try:
            async with self._backend.write() as tx:
                yield tx
        finally:
            _IN_WRITE.reset(token)
        self._deliver(tx)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (each statement sees committed data)."""
        async with self.engine.connect() as conn:
            yield conn

    def hint_replicas(self, notes: list[str]) -> None:
        """Send hint notes (:data:`~flux_server.notes.HINT_KINDS`) to the other replicas only,
        outside any transaction: nothing on SQLite, nothing while no other replica listens."""
        notifier = getattr(self._backend, "notifier", None)  # PostgreSQL's backend has one
        if notifier is not None:
            notifier.send(notes)

    async def ping(self) -> None:
        """A round trip to the database.

        Raises:
            sqlalchemy.exc.DBAPIError: the database does not answer.
        """
        await self.run_read(lambda conn: conn.execute(sa.text("SELECT 1")).all())

    async def dispose(self) -> None:
        """Close every connection and stop the database threads."""
        await self._backend.dispose()
