"""The database handle: one async engine per server, write transactions, post-commit signals.

``sqlite:///path`` (the default, ``.flux/flux.db``) runs on aiosqlite in WAL mode;
``postgresql://`` URLs run on psycopg 3. Nothing here blocks the event loop.

Two ways in:

- :meth:`Database.run_write` / :meth:`Database.run_read` take a *synchronous* function of a
  SQLAlchemy ``Connection`` and run it as one unit: on SQLite in a dedicated writer thread (or a
  small reader pool) over the blocking driver, so a whole store operation costs one thread hop
  instead of several per statement; on PostgreSQL likewise in a pool of threads over blocking
  psycopg connections (a statement there is a plain blocking call that releases the GIL while
  it waits, instead of an await through SQLAlchemy's greenlet bridge). The hot paths (runs,
  claims, checkpoints, dispatch, status) use these.
- ``async with db.write() as tx`` / ``async with db.read() as conn`` give an ``AsyncConnection``
  for code that is more convenient to write with ``await`` (slower per statement on SQLite).
- :meth:`Database.run_statement` (PostgreSQL only) runs one self-contained statement on the
  event loop itself, over psycopg's async connections: the hottest write (a worker's batch of
  checkpoints) skips the hop to a database thread and back, and the hand-offs of the GIL
  between that thread and the loop.

On SQLite every write, by either way, holds one in-process lock (SQLite has one writer anyway;
queueing on a lock is cheaper than its busy-wait), so one SQLite file serves one server process.
On PostgreSQL any number of replicas share the database; row locks and conditional updates keep
them consistent.

On PostgreSQL, writes that only insert rows (``run_write(..., insert_only=True)``, such as a
new execution) are group-committed by one thread, as every write is on SQLite: under load a
few hundred new executions a second cost a few dozen commits.

A write transaction can carry notes (``tx.notify("dispatch")``); in this process they are
delivered to :attr:`Database.sink` after the commit. On PostgreSQL other replicas hear them
through ``pg_notify``: the rare ones inside the transaction, the hot-path hints (see
:data:`HINT_KINDS`) batched just after it. Either way a replica never hears a note before the
change is visible.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Generic, TypeVar

import psycopg
import sqlalchemy as sa
from flux.errors import UsageError
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from flux_server.db.raw import driver_error

__all__ = [
    "HINT_KINDS",
    "NOTIFY_CHANNEL",
    "Database",
    "Tx",
    "async_url",
    "listener_name",
    "sync_url",
]

C = TypeVar("C")
T = TypeVar("T")

_IN_WRITE: contextvars.ContextVar[bool] = contextvars.ContextVar("flux_in_write", default=False)

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


class Tx(Generic[C]):
    """A write transaction: its connection (``AsyncConnection`` from :meth:`Database.write`,
    ``Connection`` in :meth:`Database.run_write`) and the notes to send when it commits."""

    __slots__ = ("conn", "notes")

    def __init__(self, conn: C) -> None:
        self.conn = conn
        self.notes: list[str] = []

    def notify(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)


class Database:
    """An async engine plus the write discipline described in the module docstring."""

    def __init__(self, url: str, *, pool_size: int = 10, threads: int = 4) -> None:
        self.url = async_url(url)
        self.dialect = self.url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self.origin = uuid.uuid4().hex[:12]
        """Identifies this process in notes, so it can skip its own."""
        self.sink: Callable[[str], None] = lambda note: None
        self._local = threading.local()
        self._held: list[sa.Connection] = []
        self._held_lock = threading.Lock()
        kwargs: dict[str, Any] = {"pool_size": pool_size, "max_overflow": 2 * pool_size}
        if self.is_sqlite:
            assert self.url.database is not None
            Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs = {"pool_size": 4, "max_overflow": 8, "connect_args": {"timeout": 30}}
        else:
            kwargs["pool_recycle"] = 1800
            # run_write / run_read: blocking connections, one per thread while in use, plus
            # the insert writer's and the notifier's. Few threads: each statement's wait
            # releases the GIL and each answer takes it back, and with more threads than
            # cores those hand-offs queue (30 threads ran half the workflows/s of 4).
            # Each thread keeps two (a transactional and an autocommit one, see _thread_conn).
            self._pg_engine = sa.create_engine(
                sync_url(self.url),
                pool_size=2 * threads + 2,
                max_overflow=threads,
                pool_recycle=1800,
            )
            # Reads skip BEGIN/ROLLBACK: two round trips fewer for a one-query read.
            self._pg_read_engine = self._pg_engine.execution_options(isolation_level="AUTOCOMMIT")
            self._pg_threads = ThreadPoolExecutor(threads, thread_name_prefix="flux-db")
            self._notifier = _Notifier(self._pg_read_engine, self.origin)
            self._pg_inserts = _GroupWriter(
                self._pg_engine, "flux-db-insert", self._notify_in, self._notifier.send
            )
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        self._on_loop: _LoopConnections | None = None
        if not self.is_sqlite:
            self._on_loop = _LoopConnections(sync_url(self.url), size=threads)
        self._write_lock = asyncio.Lock() if self.is_sqlite else None
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
            plain = sync_url(self.url)
            self._writer_engine = _sqlite_engine(plain, pool_size=1, begin="BEGIN IMMEDIATE")
            self._reader_engine = _sqlite_engine(plain, pool_size=2, begin="BEGIN")
            self._writer = _GroupWriter(self._writer_engine, "flux-db-write")
            self._readers = ThreadPoolExecutor(2, thread_name_prefix="flux-db-read")

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
        """
        if _IN_WRITE.get():
            # On SQLite the writer thread is parked until that block ends: this would deadlock.
            raise RuntimeError("run_write() inside an `async with db.write()` block")
        if self.is_sqlite:
            # The one writer thread runs these in arrival order, several to a transaction when
            # they queue up; no lock is held across the hop back to the event loop.
            tx: Tx[sa.Connection] = await self._writer.submit(fn)
        else:
            loop = asyncio.get_running_loop()
            if insert_only:
                tx = await self._pg_inserts.submit(fn)
            else:
                tx = await loop.run_in_executor(self._pg_threads, self._postgres_write, fn)
        for note in tx.notes:
            self.sink(note)
        return tx.result  # type: ignore[attr-defined, no-any-return]

    async def run_statement(self, fn: Callable[[Tx[Any]], Awaitable[T]]) -> T:
        """PostgreSQL only: ``await fn(tx)`` with ``tx.conn`` a psycopg ``AsyncConnection`` in
        autocommit, for a write that is one statement, atomic by itself (it may read first).
        Its notes are delivered as :meth:`run_write` delivers them.

        It runs to the end even when the caller is cancelled (as a database thread's work
        would): a statement that committed always has its notes delivered.

        Raises:
            sqlalchemy.exc.DBAPIError: the driver's error, as :meth:`run_write` raises it.
        """
        assert self._on_loop is not None, "run_statement() is for PostgreSQL"
        work = asyncio.ensure_future(self._statement(self._on_loop, fn))
        try:
            notes, result = await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(self._deliver_late)
            raise
        # Here, not in ``work``: the caller goes on in this same step (a checkpoint hands the
        # settled statuses to their waiters before any waiter wakes up to read one).
        for note in notes:
            self.sink(note)
        return result

    async def _statement(
        self, pool: _LoopConnections, fn: Callable[[Tx[Any]], Awaitable[T]]
    ) -> tuple[list[str], T]:
        try:
            conn = await pool.acquire()
        except psycopg.Error as exc:  # no connection: raised as run_write would raise it
            raise driver_error(exc) from exc
        tx: Tx[Any] = Tx(conn)
        try:
            result = await fn(tx)
            lasting = [f"{self.origin}|{n}" for n in tx.notes if not n.startswith(HINT_KINDS)]
            if lasting:
                await conn.execute(_NOTIFY_SQL, [lasting])
        except BaseException as exc:
            await pool.discard(conn)
            if isinstance(exc, psycopg.Error):
                raise driver_error(exc) from exc
            raise
        pool.release(conn)
        self._notifier.send(tx.notes)
        return tx.notes, result

    def _deliver_late(self, work: asyncio.Future[tuple[list[str], Any]]) -> None:
        """The notes of a statement whose caller was cancelled, once it committed."""
        if work.cancelled() or work.exception() is not None:
            return  # nothing committed (the error is retrieved: not logged as lost)
        for note in work.result()[0]:
            self.sink(note)

    async def run_read(self, fn: Callable[[sa.Connection], T]) -> T:
        """Run the synchronous ``fn(conn)`` for reads: one snapshot on SQLite; on PostgreSQL each
        statement sees what is committed when it runs (autocommit)."""
        loop = asyncio.get_running_loop()
        if self.is_sqlite:
            return await loop.run_in_executor(self._readers, self._sqlite_read, fn)
        return await loop.run_in_executor(self._pg_threads, self._postgres_read, fn)

    def _sqlite_read(self, fn: Callable[[sa.Connection], T]) -> T:
        conn = self._thread_conn(self._reader_engine, "read")
        try:
            with conn.begin():  # one snapshot, let go at the end
                return fn(conn)
        except BaseException:
            self._drop_thread_conn(conn)
            raise

    def _thread_conn(self, engine: sa.Engine, kind: str) -> sa.Connection:
        """This database thread's connection of ``kind``, from ``engine``, kept for the
        thread's life: a pool checkout and return per operation cost more than a short
        statement."""
        conn: sa.Connection | None = getattr(self._local, kind, None)
        if conn is None or conn.closed or conn.invalidated:
            conn = engine.connect()
            setattr(self._local, kind, conn)
            with self._held_lock:
                self._held = [c for c in self._held if not c.closed] + [conn]
        return conn

    def _drop_thread_conn(self, conn: sa.Connection) -> None:
        """After an error: close the thread's connection (a fresh one next time)."""
        for kind, held in list(vars(self._local).items()):
            if held is conn:
                setattr(self._local, kind, None)
        try:
            conn.close()
        except Exception:  # already broken: the pool discards it
            log.debug("closing a database thread's connection failed", exc_info=True)

    def _postgres_read(self, fn: Callable[[sa.Connection], T]) -> T:
        conn = self._thread_conn(self._pg_read_engine, "autocommit")
        try:
            result = fn(conn)
            conn.rollback()  # ends SQLAlchemy's bookkeeping; autocommit sends nothing
        except BaseException:
            self._drop_thread_conn(conn)
            raise
        return result

    def _postgres_write(self, fn: Callable[[Tx[sa.Connection]], Any]) -> Tx[sa.Connection]:
        conn = self._thread_conn(self._pg_engine, "transactional")
        try:
            with conn.begin():
                tx = _ResultTx(conn)
                tx.result = fn(tx)
                self._notify_in(conn, tx.notes)
        except BaseException:
            self._drop_thread_conn(conn)
            raise
        self._notifier.send(tx.notes)
        return tx

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A write transaction, committed when the block exits without an exception."""
        lock = self._write_lock
        paused = threading.Event()
        if lock is not None:
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
        token = _IN_WRITE.set(True)
        try:
            async with self.engine.begin() as conn:
                tx = Tx(conn)
                yield tx
                if not self.is_sqlite:
                    await conn.run_sync(lambda sync: self._notify_in(sync, tx.notes))
        finally:
            _IN_WRITE.reset(token)
            # The writer thread moves on; run_write jobs queued meanwhile run after the barrier.
            paused.set()
            if lock is not None:
                lock.release()
        if not self.is_sqlite:
            self._notifier.send(tx.notes)
        for note in tx.notes:
            self.sink(note)

    def _notify_in(self, conn: sa.Connection, notes: list[str]) -> None:
        """Send the notes that must not be lost with the transaction itself (see
        :data:`HINT_KINDS` for the ones sent after it)."""
        lasting = [f"{self.origin}|{note}" for note in notes if not note.startswith(HINT_KINDS)]
        if lasting:
            conn.execute(_NOTIFY, {"notes": lasting})

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (each statement sees committed data)."""
        async with self.engine.connect() as conn:
            yield conn

    async def ping(self) -> None:
        await self.run_read(lambda conn: conn.execute(sa.text("SELECT 1")).all())

    async def dispose(self) -> None:
        await self.engine.dispose()
        if self._on_loop is not None:
            await self._on_loop.close()
        await asyncio.get_running_loop().run_in_executor(None, self._close_threads)

    def _close_threads(self) -> None:
        threads = self._readers if self.is_sqlite else self._pg_threads
        threads.shutdown(wait=True)
        for conn in self._held:  # the threads have stopped: nobody uses these now
            if not conn.closed:
                conn.close()
        if self.is_sqlite:
            self._writer.close()
            self._writer_engine.dispose()
            self._reader_engine.dispose()
        else:
            self._pg_inserts.close()
            self._notifier.close()
            self._pg_engine.dispose()


_NOTIFY_TEMPLATE = (
    "SELECT pg_notify('" + NOTIFY_CHANNEL + "', n) FROM unnest(CAST({} AS text[])) AS n"
)
_NOTIFY = sa.text(_NOTIFY_TEMPLATE.format(":notes"))  # through SQLAlchemy
_NOTIFY_SQL = _NOTIFY_TEMPLATE.format("%s")  # straight to psycopg (run_statement)

HINT_KINDS = ("dispatch", "exec:", "cancel:")
"""Notes that are hints, sent to other replicas just after the commit instead of inside it.

PostgreSQL serializes every committing transaction that sent a NOTIFY, fsync included, on one
lock per database: with the hot paths (runs, offers, claims, checkpoints) notifying, commits
queued behind each other. Hints go out batched, from one connection, after the commit, so
another replica still never hears one before the change is visible. One is lost only if this
process dies between its commit and the send, and each has a fallback: the dispatcher's sweep,
the waiters' periodic recheck, the ``cancelling`` list in every heartbeat answer. The other
notes (revoked tokens, dropped workers, registered workflows, changed schedules) are rare and
have no fallback, so they stay inside their transaction.
"""


def listener_name(origin: str) -> str:
    """The ``application_name`` of the LISTEN connection of the replica ``origin``."""
    return f"{_LISTENER_PREFIX}{origin}"


_LISTENER_PREFIX = "flux-listen-"
_OTHER_LISTENERS = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE :pattern AND application_name <> :mine)"
)


class _Notifier:
    """One thread that sends hint notes with ``pg_notify``, as many at a time as have queued.

    Hints are for other replicas only: while no other replica listens (no other LISTEN
    connection in ``pg_stat_activity``, looked up at most every :attr:`RECHECK` seconds) they
    are dropped instead of sent, which spares a single server a statement and a commit per
    write. A replica that starts hears every hint from at most that long after, and missed
    nothing it needs before: its listener asks for a dispatch round when it connects, and
    its waiters look again on their own.
    """

    RECHECK = 1.0

    def __init__(self, engine: sa.Engine, origin: str) -> None:
        self._engine = engine
        self._origin = origin
        self._others = True  # until known otherwise
        self._checked = -self.RECHECK
        self._notes: queue.SimpleQueue[list[str] | threading.Event | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name="flux-db-notify", daemon=True)
        self._thread.start()

    def send(self, notes: list[str]) -> None:
        if not self._others and time.monotonic() - self._checked < self.RECHECK:
            return  # alone, as looked up lately: dropped here, the thread not even woken
        hints = [note for note in notes if note.startswith(HINT_KINDS)]
        if hints:
            self._notes.put(hints)

    def close(self) -> None:
        self._notes.put(None)
        self._thread.join()

    def flush(self) -> None:
        """Return once every hint queued before has been sent or dropped."""
        done = threading.Event()
        self._notes.put(done)
        done.wait()

    def _serve(self) -> None:
        closing = False
        while not closing:
            first = self._notes.get()
            if first is None:
                return
            if isinstance(first, threading.Event):
                first.set()
                continue
            batch = dict.fromkeys(first)
            flushed: threading.Event | None = None
            while True:
                try:
                    more = self._notes.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    closing = True
                    break
                if isinstance(more, threading.Event):
                    flushed = more
                    break
                batch.update(dict.fromkeys(more))
            payload = [f"{self._origin}|{note}" for note in batch]
            try:
                with self._engine.connect() as conn:
                    if self._anyone_listens(conn):
                        conn.execute(_NOTIFY, {"notes": payload})
            except Exception as exc:  # a hint: the fallbacks cover it
                log.warning("could not send %d note(s) to other replicas: %s", len(payload), exc)
            if flushed is not None:
                flushed.set()

    def _anyone_listens(self, conn: sa.Connection) -> bool:
        now = time.monotonic()
        if now - self._checked >= self.RECHECK:
            params = {"pattern": f"{_LISTENER_PREFIX}%", "mine": listener_name(self._origin)}
            self._others = bool(conn.execute(_OTHER_LISTENERS, params).scalar())
            self._checked = now  # after the answer: send() reads the two without a lock
        return self._others


_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[["Tx[sa.Connection]"], Any]]


class _GroupWriter:
    """One thread that runs write jobs, several to a transaction: group commit. On SQLite it
    runs every write; on PostgreSQL the insert-only ones.

    Jobs (synchronous functions of a transaction) queue up while a transaction runs; the next
    transaction runs all of them, in order, and commits once, and their answers go back to the
    event loop in one hop. SQLite commits cost the same for one job as for fifty, so under load
    this is what keeps the write path from being a queue of commits. A job that raises makes
    the batch roll back and every job of it run again alone, so each job still succeeds or
    fails on its own (jobs are functions of the transaction; running one again is safe).
    """

    BATCH = 64

    def __init__(
        self,
        engine: sa.Engine,
        name: str,
        before_commit: Callable[[sa.Connection, list[str]], None] | None = None,
        after_commit: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._engine = engine
        self._before_commit = before_commit
        self._after_commit = after_commit
        self._jobs: queue.SimpleQueue[_Job | Callable[[], None] | None] = queue.SimpleQueue()
        self._conn: sa.Connection | None = None
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[Tx[sa.Connection]], Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._jobs.put((loop, future, fn))
        return future

    def park(
        self,
        loop: asyncio.AbstractEventLoop,
        reached: asyncio.Future[None],
        release: threading.Event,
    ) -> None:
        """Stop the thread between transactions until ``release`` is set (``reached`` resolves
        once it has stopped), so that another connection can write meanwhile."""

        def barrier() -> None:
            loop.call_soon_threadsafe(_resolve, reached, None)
            release.wait()

        self._jobs.put(barrier)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        jobs = self._jobs
        while True:
            item = jobs.get()
            if item is None:
                self._drop_connection()
                return
            if not isinstance(item, tuple):
                item()
                continue
            batch = [item]
            stop: Callable[[], None] | None = None
            while len(batch) < self.BATCH:
                try:
                    more = jobs.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(more, tuple):
                    stop = more if more is not None else _CLOSE
                    break
                batch.append(more)
            self._run(batch)
            if stop is _CLOSE:
                self._drop_connection()
                return
            if stop is not None:
                stop()

    def _connection(self) -> sa.Connection:
        # One connection for the thread's life: checking one out of the pool and back for
        # every transaction cost more than a small SQLite transaction itself.
        if self._conn is None:
            self._conn = self._engine.connect()
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken: the pool discards it
                log.debug("closing the writer's connection failed", exc_info=True)

    def _run(self, batch: list[_Job]) -> None:
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        notes: list[str] = []
        try:
            conn = self._connection()
            with conn.begin():
                for _, future, fn in batch:
                    tx = _ResultTx(conn)
                    tx.result = fn(tx)
                    outcomes.append((future, True, tx))
                    notes += tx.notes
                if self._before_commit is not None:
                    self._before_commit(conn, notes)
        except BaseException as exc:
            self._drop_connection()  # rolled back; a fresh one next time, in case it broke
            if len(batch) > 1:  # each job again, alone, to succeed or fail alone
                for job in batch:
                    self._run([job])
                return
            outcomes = [(batch[0][1], False, exc)]
        else:
            if self._after_commit is not None:
                self._after_commit(notes)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for (loop, _, _), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, delivered in by_loop.items():
            _deliver_all(loop, delivered)


def _CLOSE() -> None:
    """Marks the end of the writer's queue."""


def _deliver_all(
    loop: asyncio.AbstractEventLoop, outcomes: list[tuple[asyncio.Future[Any], bool, Any]]
) -> None:
    try:
        loop.call_soon_threadsafe(_deliver, outcomes)
    except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
        pass


def _deliver(outcomes: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    for future, ok, value in outcomes:
        if future.done():  # the waiter was cancelled; the transaction stands
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if not future.done():  # the waiter may have been cancelled
        future.set_result(value)


class _LoopConnections:
    """PostgreSQL connections for :meth:`Database.run_statement`: psycopg ``AsyncConnection``s
    in autocommit, at most ``size`` in use (a caller beyond that waits for one), opened on
    first use and kept. One that failed is closed, not reused."""

    def __init__(self, url: sa.URL, size: int) -> None:
        # SQLAlchemy's driver suffix off: libpq reads the rest of the URL as it is.
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.free: list[Any] = []
        self.slots = asyncio.Semaphore(size)

    async def acquire(self) -> Any:
        await self.slots.acquire()
        if self.free:
            return self.free.pop()
        try:
            return await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        except BaseException:
            self.slots.release()
            raise

    def release(self, conn: Any) -> None:
        self.free.append(conn)
        self.slots.release()

    async def discard(self, conn: Any) -> None:
        try:
            await conn.close()
        except Exception:  # already broken
            log.debug("closing a failed connection failed", exc_info=True)
        finally:
            self.slots.release()

    async def close(self) -> None:
        free, self.free = self.free, []
        for conn in free:
            await conn.close()


class _ResultTx(Tx[sa.Connection]):
    __slots__ = ("result",)

    def __init__(self, conn: sa.Connection) -> None:
        super().__init__(conn)
        self.result: Any = None


def _sqlite_engine(url: sa.URL, *, pool_size: int, begin: str) -> sa.Engine:
    """A blocking pysqlite engine whose transactions start with ``begin`` (``BEGIN IMMEDIATE``
    takes the write lock up front, so another process's writer makes it wait, never fail)."""
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        connect_args={"check_same_thread": False, "timeout": 30},
    )

    def connect(dbapi_connection: Any, record: Any) -> None:
        _sqlite_pragmas(dbapi_connection, record)
        # Let SQLAlchemy, not the driver, decide where transactions begin (see "begin" below).
        dbapi_connection.isolation_level = None

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", lambda conn: conn.connection.dbapi_connection.execute(begin))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets reads run beside the writer; NORMAL syncs at checkpoints only, which survives a
    # process crash (an OS crash may lose the last transactions).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
