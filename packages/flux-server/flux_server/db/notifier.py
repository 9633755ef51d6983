"""Notes to other replicas on PostgreSQL: the ``NOTIFY`` channel and the thread that sends hints.

A write's notes reach other replicas through ``pg_notify`` on :data:`NOTIFY_CHANNEL`, each
tagged ``origin|note`` so a replica skips its own. The rare notes go out inside their
transaction (see the PostgreSQL backend); the hot-path hints (:data:`HINT_KINDS`) go out
batched just after the commit, through :class:`Notifier`. Either way a replica never hears a
note before the change is visible.

Why hints wait for the commit: PostgreSQL serializes every committing transaction that sent a
NOTIFY, fsync included, on one lock per database; with the hot paths (runs, offers, claims,
checkpoints) notifying, commits queued behind each other. Hints go out batched, from one
connection, after the commit. One is lost only if this process dies between its commit and
the send, and each has a fallback (see :data:`flux_server.notes.HINT_KINDS`). The other notes
(revoked tokens, dropped workers, registered workflows, changed schedules) are rare and have no
fallback, so they stay inside their transaction.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

import sqlalchemy as sa

from flux_server.notes import HINT_KINDS

__all__ = [
    "HINT_KINDS",
    "NOTIFY",
    "NOTIFY_CHANNEL",
    "NOTIFY_SQL",
    "Notifier",
    "listener_name",
]

log = logging.getLogger(__name__)

NOTIFY_CHANNEL = "flux"

_NOTIFY_TEMPLATE = (
    "SELECT pg_notify('" + NOTIFY_CHANNEL + "', n) FROM unnest(CAST({} AS text[])) AS n"
)
NOTIFY = sa.text(_NOTIFY_TEMPLATE.format(":notes"))
"""Send the notes of the parameter ``notes`` (through SQLAlchemy)."""
NOTIFY_SQL = _NOTIFY_TEMPLATE.format("%s")
"""The same, straight to psycopg: one positional parameter, the list of notes."""


def listener_name(origin: str) -> str:
    """The ``application_name`` of the LISTEN connection of the replica ``origin``."""
    return f"{_LISTENER_PREFIX}{origin}"


_LISTENER_PREFIX = "flux-listen-"
_OTHER_LISTENERS = sa.text(
    "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE :pattern AND application_name <> :mine)"
)


class Notifier:
    """One thread that sends hint notes with ``pg_notify``, as many at a time as have queued.

    Hints are for other replicas only: while no other replica listens (no other LISTEN
    connection in ``pg_stat_activity``, looked up at most every :attr:`RECHECK` seconds) they
    are dropped instead of sent, which spares a single server a statement and a commit per
    write. A replica that starts hears every hint from at most that long after, and missed
    nothing it needs before: its listener asks for a dispatch round when it connects, and
    its waiters look again on their own.

    Args:
        engine: where to send from (autocommit: each batch is its own transaction).
        origin: this process's tag, put before each note.
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
        """Queue the hints among ``notes`` (of a committed transaction) for other replicas."""
        if not self._others and time.monotonic() - self._checked < self.RECHECK:
            return  # alone, as looked up lately: dropped here, the thread not even woken
        hints = [note for note in notes if note.startswith(HINT_KINDS)]
        if hints:
            self._notes.put(hints)

    def close(self) -> None:
        """Send what is queued, then stop the thread."""
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
                        conn.execute(NOTIFY, {"notes": payload})
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
