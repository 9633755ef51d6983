"""Group commit: one thread that runs write jobs, several to a transaction."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from flux_server.db.tx import ResultTx, Tx

__all__ = ["GroupWriter"]

log = logging.getLogger(__name__)

_Job = tuple[asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[[Tx[sa.Connection]], Any]]
_Outcome = tuple["asyncio.Future[Any]", bool, Any]


class GroupWriter:
    """One thread that runs write jobs, several to a transaction: group commit. On SQLite it
    runs every write; on PostgreSQL the insert-only ones.

    Jobs (synchronous functions of a transaction) queue up while a transaction runs; the next
    transaction runs all of them, in order, and commits once, and their answers go back to the
    event loop in one hop. SQLite commits cost the same for one job as for fifty, so under load
    this is what keeps the write path from being a queue of commits. A job that raises makes
    the batch roll back and every job of it run again alone, so each job still succeeds or
    fails on its own (jobs are functions of the transaction; running one again is safe).

    Args:
        engine: where the thread's one connection comes from.
        name: the thread's name.
        before_commit: called with the connection and the batch's notes inside the
            transaction, last (PostgreSQL sends the notes that must not be lost there).
        after_commit: called with the batch's notes once it committed.
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

    def submit(self, fn: Callable[[Tx[sa.Connection]], Any]) -> asyncio.Future[ResultTx]:
        """Queue ``fn``; the future resolves, on the calling loop, to its committed
        transaction (``result`` is what ``fn`` returned) or fails with what ``fn`` raised."""
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
        """Run what is queued, then stop the thread and close its connection."""
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
        outcomes: list[_Outcome] = []
        notes: list[str] = []
        try:
            conn = self._connection()
            with conn.begin():
                for _, future, fn in batch:
                    tx = ResultTx(conn)
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
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for (loop, _, _), outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(loop, []).append(outcome)
        for loop, delivered in by_loop.items():
            _deliver_all(loop, delivered)


def _CLOSE() -> None:
    """Marks the end of the writer's queue."""


def _deliver_all(loop: asyncio.AbstractEventLoop, outcomes: list[_Outcome]) -> None:
    try:
        loop.call_soon_threadsafe(_deliver, outcomes)
    except RuntimeError:  # the loop closed meanwhile: nobody is waiting any more
        pass


def _deliver(outcomes: list[_Outcome]) -> None:
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
