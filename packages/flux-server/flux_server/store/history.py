"""An execution's log as clients read it: pages of events, and the frames of its stream.

An event's position is its ``seq``, the key that orders the log: it grows along an
execution's log (writes to one execution take its row lock, so a later event never gets a
smaller one), but is not contiguous, being shared by every execution.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from flux.domain import (
    EVENT_TYPES,
    FINISHED_STATES,
    WORKFLOW_EVENT_STATE,
    EventType,
    ExecutionState,
)
from flux.protocol import EventEntry, EventPage, ExecutionStreamFrame
from flux.serialization import b64encode

from flux_server.db import Database
from flux_server.db.raw import Statement
from flux_server.db.tables import events, executions
from flux_server.db.types import from_epoch
from flux_server.store._rows import execution_not_found

__all__ = [
    "MAX_EVENTS",
    "Frames",
    "TaskCall",
    "TaskCalls",
    "event_page",
    "frames_after",
    "task_calls",
]

MAX_EVENTS = 1000
"""The most events one page holds."""

_E = events.c
_C = executions.c
_HEAD = (_E.seq, _E.id, _E.type, _E.source_id, _E.name, _E.scope, _E.time)
_FRAMED = [t.value for t in WORKFLOW_EVENT_STATE]
_STATE = sa.select(_C.state, _C.output_view).where(_C.id == sa.bindparam("b_id"))
_FRAME_EVENTS = (
    sa.select(_E.seq, _E.type, _E.time)
    .where(
        _E.execution_id == sa.bindparam("b_id"),
        _E.seq > sa.bindparam("b_after"),
        _E.type.in_(_FRAMED),
    )
    .order_by(_E.seq)
)


async def event_page(
    db: Database,
    execution_id: str,
    *,
    after: int = 0,
    limit: int = 100,
    types: Sequence[EventType] = (),
    payloads: bool = False,
) -> EventPage:
    """Up to ``limit`` events of the execution after position ``after``, oldest first; only
    those of ``types`` when given; values and views only with ``payloads``.

    Raises:
        ExecutionNotFoundError: unknown id.
    """
    columns = [*_HEAD, _E.value, _E.view] if payloads else list(_HEAD)
    query = (
        sa.select(*columns)
        .where(_E.execution_id == execution_id, _E.seq > after)
        .order_by(_E.seq)
        .limit(limit + 1)
    )
    if types:
        query = query.where(_E.type.in_([t.value for t in types]))

    def read(conn: sa.Connection) -> Sequence[Any]:
        if conn.execute(_STATE, {"b_id": execution_id}).first() is None:
            raise execution_not_found(execution_id)
        return conn.execute(query).all()

    rows = await db.run_read(read)
    items = [_entry(row, payloads) for row in rows[:limit]]
    next_after = items[-1].position if len(rows) > limit else None
    return EventPage.model_construct(items=items, next_after=next_after)


class TaskCall(NamedTuple):
    """One task call of an execution (its events grouped by ``source_id``)."""

    source_id: str
    name: str
    started: datetime
    ended: datetime | None
    """When its last settling event was recorded; ``None`` while it is pending."""
    outcome: str
    """completed, fallback, failed, cancelled, paused, or pending."""
    retries: int
    failures: int


class TaskCalls(NamedTuple):
    """An execution's task calls as a timeline draws them: the first and the last ones (all
    of them when there are few), and totals over every call."""

    calls: list[TaskCall]
    hidden: int
    """Calls left out between the first ``edge`` and the last ``edge`` (0: none)."""
    total: int
    failed: int
    retries: int
    pending: int
    start: datetime | None
    """The execution's first event, and its last one."""
    end: datetime | None


_E_T = EventType
_ENDS: dict[EventType, str] = {
    _E_T.TASK_COMPLETED: "completed",
    _E_T.TASK_FALLBACK_COMPLETED: "fallback",
    _E_T.TASK_FAILED: "failed",
    _E_T.TASK_FALLBACK_FAILED: "failed",
    _E_T.TASK_CANCELLED: "cancelled",
    _E_T.TASK_PAUSED: "paused",
}
"""The events that settle a task call, and the outcome each gives it (the last one wins: a
pause answered later completed)."""
_FAILURES = frozenset(
    {_E_T.TASK_FAILED, _E_T.TASK_RETRY_FAILED, _E_T.TASK_FALLBACK_FAILED, _E_T.TASK_ROLLBACK_FAILED}
)
_CALL_EVENTS = Statement(
    "SELECT type, source_id, name, time FROM events WHERE execution_id = :b_id ORDER BY seq",
    columns=("type", "source_id", "name", "time"),
    plain=True,  # the driver's tuples: only the times of the calls shown are converted
)


def _time(value: Any) -> datetime:
    """A ``time`` as the driver gave it (epoch seconds on SQLite) as an aware datetime."""
    if isinstance(value, int | float):
        return from_epoch(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Call:
    __slots__ = ("ended", "failures", "name", "outcome", "retries", "source_id", "started")

    def __init__(self, source_id: str, name: str, started: Any) -> None:
        self.source_id, self.name, self.started = source_id, name, started
        self.ended: Any = None
        self.outcome = "pending"
        self.retries = self.failures = 0

    def frozen(self) -> TaskCall:
        return TaskCall(
            self.source_id,
            self.name,
            _time(self.started),
            None if self.ended is None else _time(self.ended),
            self.outcome,
            self.retries,
            self.failures,
        )


async def task_calls(db: Database, execution_id: str, edge: int) -> TaskCalls:
    """The execution's task calls in the order they started: every one when there are at
    most ``2 * edge``, else the first and the last ``edge``, with totals over all of them.

    One pass over the log's heads (no values): cheaper than grouping in SQL, which sorts
    every event by its task on either database.

    Raises:
        ExecutionNotFoundError: unknown id.
    """
    params = {"b_id": execution_id}

    def read(conn: sa.Connection) -> Sequence[Any]:
        if conn.execute(_STATE, params).first() is None:
            raise execution_not_found(execution_id)
        return _CALL_EVENTS.execute(conn, params)

    rows = await db.run_read(read)
    calls: dict[str, _Call] = {}
    types = EVENT_TYPES
    for type_name, source_id, name, time in rows:
        kind = types[type_name]
        call = calls.get(source_id)
        if call is None:
            if kind is _E_T.TASK_STARTED:
                calls[source_id] = _Call(source_id, name, time)
            continue
        outcome = _ENDS.get(kind)
        if outcome is not None:
            call.outcome, call.ended = outcome, time
        elif kind is _E_T.TASK_RETRY_STARTED:
            call.retries += 1
        if kind in _FAILURES:
            call.failures += 1
    every = list(calls.values())
    shown = every if len(every) <= 2 * edge else every[:edge] + every[-edge:]
    return TaskCalls(
        calls=[c.frozen() for c in shown],
        hidden=len(every) - len(shown),
        total=len(every),
        failed=sum(c.outcome == "failed" for c in every),
        retries=sum(c.retries for c in every),
        pending=sum(c.ended is None for c in every),
        start=_time(rows[0][3]) if rows else None,
        end=_time(rows[-1][3]) if rows else None,
    )


def _entry(row: Any, payloads: bool) -> EventEntry:
    return EventEntry.model_construct(
        position=row.seq,
        id=row.id,
        type=EventType(row.type),
        source_id=row.source_id,
        name=row.name,
        scope=row.scope,
        time=row.time,
        value=b64encode(row.value) if payloads else None,
        view=row.view if payloads else None,
    )


class Frames(NamedTuple):
    """The stream frames after a position, and the execution's state, read after them."""

    frames: list[ExecutionStreamFrame]
    state: ExecutionState


async def frames_after(db: Database, execution_id: str, after: int) -> Frames:
    """One frame per workflow-level event after position ``after`` (the state it reports; a
    finished one carries the execution's output), and the state the execution is in.

    Raises:
        ExecutionNotFoundError: unknown id.
    """
    params = {"b_id": execution_id, "b_after": after}

    def read(conn: sa.Connection) -> tuple[Any, Sequence[Any]]:
        # The log first: a frame read here never reports more than the state read next.
        found = conn.execute(_FRAME_EVENTS, params).all()
        return conn.execute(_STATE, params).first(), found

    row, found = await db.run_read(read)
    if row is None:
        raise execution_not_found(execution_id)
    frames = []
    for seq, type, time in found:
        state = WORKFLOW_EVENT_STATE[EventType(type)]
        frames.append(
            ExecutionStreamFrame.model_construct(
                execution_id=execution_id,
                state=state,
                output=row.output_view if state in FINISHED_STATES else None,
                timestamp=time,
                position=seq,
            )
        )
    return Frames(frames, ExecutionState(row.state))
