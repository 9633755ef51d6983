"""Helpers shared by the stores: ids, wire values, event rows, taking work from workers."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flux.domain import EventType, ExecutionState, new_event_id
from flux.errors import UsageError
from flux.protocol import EventRecord

from flux_server.db import Tx
from flux_server.db.raw import driver, json_text, translated
from flux_server.db.tables import events, executions
from flux_server.db.types import epoch
from flux_server.metrics import finished
from flux_server.notes import DISPATCH, exec_note
from flux_server.store._states import QUEUED, RELEASED_TO

__all__ = [
    "EVENT_COLUMNS",
    "EventRow",
    "b64",
    "check_records",
    "event_rows",
    "merge_events",
    "new_id",
    "requeue_held",
    "server_event",
]


def new_id() -> str:
    return uuid.uuid4().hex


def b64(text: str | None, what: str) -> bytes | None:
    """Strict base64 decoding of a wire value.

    Raises:
        UsageError: not base64.
    """
    if text is None:
        return None
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise UsageError(f"{what} is not base64 of serialized bytes") from None


EVENT_COLUMNS = (
    "id",
    "execution_id",
    "type",
    "source_id",
    "name",
    "scope",
    "time",
    "value",
    "view",
)
"""The columns of an events row, in the order of :func:`event_rows`' tuples."""
EventRow = tuple[str, str, str, str, str, str, datetime, bytes | None, Any]

# On SQLite the hot writes go to the driver's cursor with their SQL written out: SQLAlchemy's
# compile-cache lookup, parameter processing and result wrapping cost more than SQLite's own
# work for these small statements (see docs/benchmarks.md). The values are converted as the
# column types would (epoch seconds, JSON text).
_MERGE_EVENTS_SQLITE = (
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({', '.join('?' * 9)}) "
    "ON CONFLICT (id) DO NOTHING"
)
# On PostgreSQL, many rows as one statement with one array per column: the driver's
# executemany sends a statement per row (pipelined, but each costs Python time in the driver
# and SQLAlchemy). WITH ORDINALITY keeps the rows' order, so ``seq`` follows the history.
_MERGE_EVENTS_PG = sa.text(
    f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) "
    "SELECT i, e, t, s, n, sc, tm, v, vw::json FROM unnest("
    "CAST(:id AS text[]), CAST(:execution_id AS text[]), CAST(:type AS text[]), "
    "CAST(:source_id AS text[]), CAST(:name AS text[]), CAST(:scope AS text[]), "
    "CAST(:time AS timestamptz[]), CAST(:value AS bytea[]), CAST(:view AS text[])"
    ") WITH ORDINALITY AS u(i, e, t, s, n, sc, tm, v, vw, k) ORDER BY k "
    "ON CONFLICT (id) DO NOTHING"
)


def merge_events(tx: Tx[sa.Connection], rows: list[EventRow]) -> None:
    """Insert :func:`event_rows` (of any executions) in one statement, skipping stored ids."""
    if not rows:
        return
    if tx.conn.dialect.name == "sqlite":
        values = [(*r[:6], epoch(r[6]), r[7], json_text(r[8])) for r in rows]
        with translated(tx.conn, _MERGE_EVENTS_SQLITE, values):
            driver(tx.conn).executemany(_MERGE_EVENTS_SQLITE, values)
        return
    columns = dict(zip(EVENT_COLUMNS, map(list, zip(*rows, strict=True)), strict=True))
    columns["view"] = [None if v is None else json.dumps(v) for v in columns["view"]]
    tx.conn.execute(_MERGE_EVENTS_PG, columns)


def _no_nul(record: EventRecord) -> None:
    if "\x00" in record.id + record.source_id + record.name + record.scope:
        raise UsageError(
            f"event {record.id!r} has a NUL character in its id, source, name or scope"
        )


def check_records(records: Sequence[EventRecord]) -> None:
    """What :func:`event_rows` refuses, without building the rows (for a writer that sends
    the records as they came).

    Raises:
        UsageError: a value is not base64, or a text field holds a NUL character.
    """
    for r in records:
        _no_nul(r)
        b64(r.value, f"the value of event {r.id!r}")


def event_rows(execution_id: str, records: Sequence[EventRecord]) -> list[EventRow]:
    """The rows of ``records`` (values in :data:`EVENT_COLUMNS` order).

    Raises:
        UsageError: a value is not base64, or a text field holds a NUL character.
    """
    for r in records:
        _no_nul(r)
    return [
        (
            r.id,
            execution_id,
            r.type.value,
            r.source_id,
            r.name,
            r.scope,
            r.time,
            b64(r.value, f"the value of event {r.id!r}"),
            r.view,
        )
        for r in records
    ]


def server_event(
    execution_id: str,
    workflow_name: str,
    type: EventType,
    now: datetime,
    value: bytes | None,
    view: Any,
) -> dict[str, Any]:
    """A row for an event the server itself appends (resume, cancel)."""
    return {
        "id": new_event_id(),
        "execution_id": execution_id,
        "type": type.value,
        "source_id": execution_id,
        "name": workflow_name,
        "scope": "",
        "time": now,
        "value": value,
        "view": view,
    }


def requeue_held(tx: Tx[sa.Connection], names: Iterable[str], now: datetime) -> None:
    """Take executions away from workers ``names`` (dead or re-registered).

    Claimed and running ones go back to the queue with a new generation, so the old holder is
    fenced; cancelling ones become CANCELLED (nobody is left to unwind them); unclaimed offers
    are withdrawn.
    """
    names = list(names)
    if not names:
        return
    c = executions.c
    (queued,) = QUEUED
    tx.conn.execute(
        sa.update(executions)
        .where(c.worker_name.in_(names), c.state.in_(RELEASED_TO[ExecutionState(queued)]))
        .values(
            state=queued,
            worker_name=None,
            generation=c.generation + 1,
            offered_to=None,
            offered_at=None,
            claimed_at=None,
            updated_at=now,
        )
    )
    (cancelling,) = RELEASED_TO[ExecutionState.CANCELLED]
    cancelled = (
        tx.conn.execute(
            sa.update(executions)
            .where(c.worker_name.in_(names), c.state == cancelling)
            .values(
                state=ExecutionState.CANCELLED.value, generation=c.generation + 1, updated_at=now
            )
            .returning(c.id, c.workflow_name, c.created_at)
        )
    ).all()
    if cancelled:
        tx.conn.execute(
            sa.insert(events),
            [
                server_event(eid, wf, EventType.WORKFLOW_CANCELLED, now, None, None)
                for eid, wf, _ in cancelled
            ],
        )
        for eid, wf, created_at in cancelled:
            tx.notify(exec_note(eid, ExecutionState.CANCELLED))
            tx.record(finished(wf, ExecutionState.CANCELLED, created_at, now))
    tx.conn.execute(
        sa.update(executions)
        .where(c.offered_to.in_(names), c.state == queued)
        .values(offered_to=None, offered_at=None)
    )
    tx.notify(DISPATCH)
