"""An execution's log as clients read it: pages of events, and the frames of its stream.

An event's position is its ``seq``, the key that orders the log: it grows along an
execution's log (writes to one execution take its row lock, so a later event never gets a
smaller one), but is not contiguous, being shared by every execution.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import sqlalchemy as sa
from flux.domain import FINISHED_STATES, WORKFLOW_EVENT_STATE, EventType, ExecutionState
from flux.protocol import EventEntry, EventPage, ExecutionStreamFrame
from flux.serialization import b64encode

from flux_server.db import Database
from flux_server.db.tables import events, executions
from flux_server.store._rows import execution_not_found

__all__ = ["MAX_EVENTS", "Frames", "event_page", "frames_after", "heads"]

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


async def heads(db: Database, execution_id: str, limit: int) -> tuple[Sequence[Any], bool]:
    """The first ``limit`` events of the execution without their values, oldest first, as rows
    of ``seq, id, type, source_id, name, scope, time``, and whether there are more: what a
    timeline of its tasks is drawn from, without building a model per event.

    Raises:
        ExecutionNotFoundError: unknown id.
    """
    query = (
        sa.select(*_HEAD).where(_E.execution_id == execution_id).order_by(_E.seq).limit(limit + 1)
    )

    def read(conn: sa.Connection) -> Sequence[Any]:
        if conn.execute(_STATE, {"b_id": execution_id}).first() is None:
            raise execution_not_found(execution_id)
        return conn.execute(query).all()

    rows = await db.run_read(read)
    return rows[:limit], len(rows) > limit


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
