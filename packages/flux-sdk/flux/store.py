"""Durable state for local runs: the standard library's sqlite3 in WAL mode.

One file (``.flux/flux.db`` by default) holds executions, their event logs, the task cache and
the long-term memory of :mod:`flux.memory` (JSON text); the secrets table of
:mod:`flux.secrets` lives beside them. Several processes may share the file: SQLite serialises
writers, and an execution is owned by one live process at a time. Every ``save`` is one
transaction, committed before the workflow moves on.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flux._files import private_file
from flux.context import ExecutionContext
from flux.domain import (
    EVENT_TYPES,
    FINISHED_STATES,
    WORKFLOW_EVENT_STATE,
    ExecutionEvent,
    ExecutionState,
)
from flux.errors import ExecutionNotFoundError, ExecutionStateError, SerializationError
from flux.serialization import dumps, loads

__all__ = ["LocalMemory", "LocalStore", "StoredExecution"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS flux_executions (
    execution_id TEXT PRIMARY KEY,
    workflow_name TEXT NOT NULL,
    state TEXT NOT NULL,
    input BLOB,
    output BLOB,
    owner_pid INTEGER,
    owner_host TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS flux_events (
    execution_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    source_id TEXT NOT NULL,
    name TEXT NOT NULL,
    scope TEXT NOT NULL,
    value BLOB,
    time REAL NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flux_cache (
    key TEXT PRIMARY KEY,
    value BLOB,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS flux_memory (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
"""

# One clustered b-tree keyed by (execution, position in its log): the cheapest insert SQLite
# offers, and a resume reads one contiguous range.
_INSERT_EVENT = (
    "INSERT INTO flux_events (execution_id, seq, id, type, source_id, name, scope, value, time)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class StoredExecution:
    __slots__ = ("cancel_requested", "ctx", "owner_host", "owner_pid", "running_here")

    def __init__(
        self,
        ctx: ExecutionContext[Any],
        owner_pid: int | None,
        owner_host: str | None,
        cancel_requested: bool,
        running_here: bool = False,
    ) -> None:
        self.ctx = ctx
        self.owner_pid = owner_pid
        self.owner_host = owner_host
        self.cancel_requested = cancel_requested
        self.running_here = running_here

    @property
    def owner_alive(self) -> bool:
        """Whether the process that last ran it still runs (checked on this host only)."""
        if self.owner_pid is None:
            return False
        if self.owner_host != socket.gethostname():
            return True  # cannot tell: assume it lives
        if self.owner_pid == os.getpid():
            # The pid is ours: alive only while a run in this process holds it (on another
            # thread), not when an earlier run here ended without releasing it.
            return self.running_here
        try:
            os.kill(self.owner_pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


class LocalStore:
    """Executions, events and cache in one SQLite file. Thread-safe; cheap to share."""

    durable_on_save = True  # every save() is a committed transaction
    _instances: dict[Path, LocalStore] = {}
    _instances_lock = threading.Lock()
    # (database, execution id) of the runs live in this process, whichever store object
    # they went through.
    _running: set[tuple[str, str]] = set()
    _running_lock = threading.Lock()

    def __init__(self, path: str | Path, serializer: str = "pkl") -> None:
        self.path = Path(path)
        self.serializer = serializer
        if str(self.path) != ":memory:":
            private_file(self.path)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            str(self.path), isolation_level=None, check_same_thread=False, timeout=30
        )
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a crash of the process; only an OS crash or power
            # loss could drop the last transactions.
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=30000")
            with self._lock:
                self._ensure_schema()
        except BaseException:
            self._db.close()
            raise
        self._host = socket.gethostname()
        self._key = str(self.path.resolve())

    def _ensure_schema(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        has_tables = self._db.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'flux_executions'"
        ).fetchone()[0]
        if has_tables and version != SCHEMA_VERSION:
            from flux.errors import FluxError

            raise FluxError(
                f"{self.path} holds local Flux state of schema version {version}, this Flux "
                f"reads version {SCHEMA_VERSION}; point local_database at a new file"
            )
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    @classmethod
    def open(cls, path: str | Path, serializer: str = "pkl") -> LocalStore:
        """The shared store for ``path`` in this process, closed when the process exits (or
        by :meth:`close_all`)."""
        key = Path(path).resolve()
        with cls._instances_lock:
            store = cls._instances.get(key)
            if store is None:
                if not cls._instances:
                    atexit.register(cls.close_all)
                store = cls._instances[key] = cls(key, serializer)
            store.serializer = serializer
            return store

    @classmethod
    def close_all(cls) -> None:
        """Close every shared store :meth:`open` made; a later ``open`` makes a new one."""
        with cls._instances_lock:
            stores = list(cls._instances.values())
            cls._instances.clear()
            atexit.unregister(cls.close_all)
        for store in stores:
            store.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- serialization -------------------------------------------------------------------------

    def _dump(self, value: Any) -> bytes | None:
        if value is None:
            return None
        try:
            return dumps(value, self.serializer)
        except SerializationError:
            if isinstance(value, BaseException):  # keep the type's name and message at least
                from flux.errors import ExecutionError

                return dumps(ExecutionError(f"{type(value).__name__}: {value}"), self.serializer)
            raise

    # -- executions ----------------------------------------------------------------------------

    def create(self, ctx: ExecutionContext[Any]) -> None:
        """Store a new execution, owned by the calling process's run of it."""
        now = _now()
        with self._lock:
            self._running.add((self._key, ctx.execution_id))
            self._db.execute(
                "INSERT INTO flux_executions (execution_id, workflow_name, state, input, owner_pid,"
                " owner_host, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    ctx.execution_id,
                    ctx.workflow_name,
                    ctx.state.value,
                    self._dump(ctx.input),
                    os.getpid(),
                    self._host,
                    now,
                    now,
                ),
            )

    def load(self, execution_id: str) -> StoredExecution:
        with self._lock:
            row = self._db.execute(
                "SELECT workflow_name, state, input, owner_pid, owner_host, cancel_requested"
                " FROM flux_executions WHERE execution_id = ?",
                (execution_id,),
            ).fetchone()
            if row is None:
                raise ExecutionNotFoundError(
                    f"no execution with id {execution_id!r} in {self.path}; "
                    "check the id, or the database path in your configuration",
                    execution_id=execution_id,
                )
            rows = self._db.execute(
                "SELECT id, type, source_id, name, scope, value, time FROM flux_events"
                " WHERE execution_id = ? ORDER BY seq",
                (execution_id,),
            ).fetchall()
        name, state, input_blob, owner_pid, owner_host, cancel = row
        events = [
            ExecutionEvent(
                EVENT_TYPES[t], src, nm, loads(val), datetime.fromtimestamp(tm, UTC), eid, scope
            )
            for eid, t, src, nm, scope, val, tm in rows
        ]
        ctx: ExecutionContext[Any] = ExecutionContext(
            name, loads(input_blob), execution_id, events=events, state=ExecutionState(state)
        )
        running_here = (self._key, execution_id) in self._running
        return StoredExecution(ctx, owner_pid, owner_host, bool(cancel), running_here)

    def take_ownership(self, execution_id: str, previous_pid: int | None) -> None:
        """Atomically make this process's run the owner, unless another run took it first."""
        with self._lock, LocalStore._running_lock:
            if (self._key, execution_id) in self._running:
                raise ExecutionStateError(
                    f"execution {execution_id!r} is already running in this process",
                    execution_id=execution_id,
                )
            cur = self._db.execute(
                "UPDATE flux_executions SET owner_pid = ?, owner_host = ?, updated_at = ?"
                " WHERE execution_id = ? AND owner_pid IS ?",
                (os.getpid(), self._host, _now(), execution_id, previous_pid),
            )
            if cur.rowcount != 1:
                raise ExecutionStateError(
                    f"execution {execution_id!r} was just taken over by another process",
                    execution_id=execution_id,
                )
            self._running.add((self._key, execution_id))

    def release(self, execution_id: str) -> None:
        with self._lock:
            self._running.discard((self._key, execution_id))
            self._db.execute(
                "UPDATE flux_executions SET owner_pid = NULL, owner_host = NULL"
                " WHERE execution_id = ? AND owner_pid = ?",
                (execution_id, os.getpid()),
            )

    def request_cancel(self, execution_id: str) -> None:
        with self._lock:
            self._db.execute(
                "UPDATE flux_executions SET cancel_requested = 1, updated_at = ?"
                " WHERE execution_id = ?",
                (_now(), execution_id),
            )

    def cancel_requested(self, execution_id: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT cancel_requested FROM flux_executions WHERE execution_id = ?",
                (execution_id,),
            ).fetchone()
        return bool(row and row[0])

    def list_executions(self, workflow_name: str | None = None) -> list[tuple[str, str, str]]:
        query = "SELECT execution_id, workflow_name, state FROM flux_executions"
        params: tuple[Any, ...] = ()
        if workflow_name is not None:
            query += " WHERE workflow_name = ?"
            params = (workflow_name,)
        with self._lock:
            return list(self._db.execute(query + " ORDER BY created_at", params).fetchall())

    # -- the Checkpointer protocol -------------------------------------------------------------

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        execution_id = ctx.execution_id
        dump = self._dump
        # ``events`` is always the unsaved tail of ctx.events, so positions follow from it.
        first = len(ctx.events) - len(events)
        rows = [
            (
                execution_id,
                first + i,
                e.id,
                e.type.value,
                e.source_id,
                e.name,
                e.scope,
                dump(e.value),
                e.time.timestamp(),
            )
            for i, e in enumerate(events)
        ]
        state_change = any(e.type in WORKFLOW_EVENT_STATE for e in events)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_INSERT_EVENT, rows)
                if state_change:
                    state = ctx.state
                    output = dump(ctx.output) if state in FINISHED_STATES else None
                    db.execute(
                        "UPDATE flux_executions SET state = ?, output = ?, updated_at = ?"
                        " WHERE execution_id = ?",
                        (state.value, output, _now(), execution_id),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    async def flush(self) -> None:
        """Every save already committed; nothing is buffered."""

    async def finish(self, ctx: ExecutionContext[Any]) -> None:
        """Every save already committed; nothing is buffered."""

    # -- cache ---------------------------------------------------------------------------------

    def cache_get(self, key: str) -> tuple[bool, Any]:
        with self._lock:
            row = self._db.execute("SELECT value FROM flux_cache WHERE key = ?", (key,)).fetchone()
        if row is None:
            return False, None
        return True, loads(row[0])

    def cache_put(self, key: str, value: Any) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO flux_cache (key, value, created_at) VALUES (?, ?, ?)",
                (key, self._dump(value), _now()),
            )


def _now() -> float:
    return datetime.now(UTC).timestamp()


class LocalMemory:
    """The long-term memory of :mod:`flux.memory` in a :class:`LocalStore`'s file: JSON values
    by scope and key (the ``Services`` of local runs use it)."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    def get(self, scope: str, key: str) -> tuple[bool, Any]:
        row = self._one("SELECT value FROM flux_memory WHERE scope = ? AND key = ?", scope, key)
        return (False, None) if row is None else (True, json.loads(row[0]))

    def put(self, scope: str, key: str, text: str) -> None:
        """Keep ``text`` (JSON) under ``scope``/``key``, replacing what was there."""
        with self.store._lock:
            self.store._db.execute(
                "INSERT OR REPLACE INTO flux_memory (scope, key, value, updated_at) "
                "VALUES (?, ?, ?, ?)",
                (scope, key, text, _now()),
            )

    def delete(self, scope: str, key: str) -> bool:
        with self.store._lock:
            cursor = self.store._db.execute(
                "DELETE FROM flux_memory WHERE scope = ? AND key = ?", (scope, key)
            )
        return cursor.rowcount > 0

    def items(self, scope: str) -> dict[str, Any]:
        with self.store._lock:
            rows = self.store._db.execute(
                "SELECT key, value FROM flux_memory WHERE scope = ? ORDER BY key", (scope,)
            ).fetchall()
        return {key: json.loads(value) for key, value in rows}

    def _one(self, sql: str, *params: Any) -> Any:
        with self.store._lock:
            return self.store._db.execute(sql, params).fetchone()
