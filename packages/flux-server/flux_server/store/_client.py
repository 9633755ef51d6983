"""Executions as clients drive them: create, status, resume, cancel.

Each operation is a synchronous function of one transaction, run by ``Database.run_write`` /
``run_read``; notes tell waiters and the dispatcher after it commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flux.domain import EventType, ExecutionState, Trigger, move, utcnow
from flux.errors import ConflictError, ExecutionNotFoundError, ExecutionStateError
from flux.pauses import PAUSE_TASK, Pause, choose_pause
from flux.protocol import EventRecord, ExecutionStatus, PauseInfo
from flux.serialization import b64encode, dumps

from flux_server.db import Database, Tx
from flux_server.db.raw import Statement
from flux_server.db.tables import events, executions
from flux_server.metrics import Started
from flux_server.notes import DISPATCH, cancel_note, exec_note
from flux_server.store._common import new_id, server_event
from flux_server.store._rows import (
    INSERT_EVENT,
    STATUS_COLUMNS,
    UPDATE,
    execution_not_found,
    finish_cancelled,
    locked,
    requeue_resumed,
    status,
    the_paused_child,
    waiting_pauses_of,
)
from flux_server.store._states import QUEUED
from flux_server.store.workflows import LatestWorkflow

__all__ = [
    "cancel",
    "create",
    "create_in",
    "read_status",
    "resume",
    "resume_event_id",
    "status_of",
]

_C = executions.c
_E = events.c
_NEW_EXECUTION_COLUMNS = (
    "id",
    "workflow_id",
    "workflow_name",
    "workflow_version",
    "state",
    "input",
    "input_view",
    "requests",
    "generation",
    "created_at",
    "updated_at",
    "traceparent",
    "parent_id",
)
"""What :func:`_new_execution` sets."""
_INSERT_EXECUTION = Statement(
    f"INSERT INTO executions ({', '.join(_NEW_EXECUTION_COLUMNS)}) "
    f"VALUES ({', '.join(':' + c for c in _NEW_EXECUTION_COLUMNS)})",
    times=("created_at", "updated_at"),
    json=("input_view", "requests"),
)
_READ_STATUS = sa.select(*STATUS_COLUMNS).where(_C.id == sa.bindparam("b_id"))
_READ_HISTORY_VIEWS = (
    sa.select(_E.id, _E.type, _E.source_id, _E.name, _E.scope, _E.time, _E.value, _E.view)
    .where(_E.execution_id == sa.bindparam("b_id"))
    .order_by(_E.seq)
)
_MADE = sa.select(_E.seq).where(_E.id == sa.bindparam("b_id"))
(_QUEUED,) = QUEUED


async def create(
    db: Database,
    workflow: LatestWorkflow,
    input: Any,
    execution_id: str | None = None,
    traceparent: str | None = None,
    parent_id: str | None = None,
) -> ExecutionStatus:
    """A new execution of ``workflow``, queued for dispatch. ``input`` is JSON;
    ``traceparent`` the trace context its segments continue (stored as it is); ``parent_id``
    the execution that starts it as a subworkflow (see :func:`continue_parents`).

    With ``execution_id`` (chosen by the client) an existing execution of the same workflow
    with that id is returned as it is instead: starting is idempotent.

    Raises:
        ConflictError: an execution of another workflow has ``execution_id``.
    """
    row = _new_execution(workflow, input, execution_id, traceparent, parent_id)

    def write(tx: Tx[sa.Connection]) -> ExecutionStatus | None:
        if execution_id is not None:
            existing = _existing(tx.conn, execution_id, workflow.name)
            if existing is not None:
                return existing
        _INSERT_EXECUTION.execute(tx.conn, row)
        tx.notify(DISPATCH)
        tx.record(Started(workflow.name))
        return None

    try:
        existing = await db.run_write(write, insert_only=execution_id is None)
    except sa.exc.IntegrityError:
        if execution_id is None:
            raise
        # Another request inserted the same id meanwhile (PostgreSQL runs both at once).
        existing = await db.run_read(lambda conn: _existing(conn, execution_id, workflow.name))
        if existing is None:
            raise
    return _created(row, input) if existing is None else existing


async def create_in(
    tx: Tx, workflow: LatestWorkflow, input: Any, traceparent: str | None = None
) -> ExecutionStatus:
    """:func:`create` inside the caller's write transaction (the scheduler claims a tick and
    creates its execution in one transaction, so a tick fires exactly once)."""
    row = _new_execution(workflow, input, None, traceparent)
    await tx.conn.execute(sa.insert(executions).values(row))
    tx.notify(DISPATCH)
    tx.record(Started(workflow.name))
    return _created(row, input)


async def status_of(
    db: Database, execution_id: str, workflow_name: str | None, detailed: bool
) -> ExecutionStatus:
    """Raises ExecutionNotFoundError for an unknown id (or one of another workflow)."""
    return await db.run_read(lambda conn: read_status(conn, execution_id, workflow_name, detailed))


async def resume(
    db: Database,
    workflow_name: str,
    execution_id: str,
    input: Any,
    pause: str | None = None,
    resume_id: str | None = None,
) -> ExecutionStatus:
    """Answer a waiting pause with ``input`` and queue the execution again.

    The pause's completion (carrying ``input``) and WORKFLOW_RESUMED are appended together,
    so each pause of several waiting at once gets its own answer (see :mod:`flux.pauses`).
    With ``resume_id`` (chosen by the client) a resume that was already made with that id
    changes nothing and answers the execution's status as it is now, whatever the execution
    did since (its input is ignored): repeating it is idempotent.

    Raises:
        ExecutionNotFoundError: unknown execution.  ExecutionStateError: it is not PAUSED;
            several pauses wait and ``pause`` is missing, or none of that name waits.
    """
    now = utcnow()
    blob = dumps(input, "json")
    event_id = None if resume_id is None else resume_event_id(execution_id, resume_id)

    def write(tx: Tx[sa.Connection]) -> ExecutionStatus:
        row = locked(tx, execution_id, workflow_name)
        if event_id is not None and tx.conn.execute(_MADE, {"b_id": event_id}).first():
            return read_status(tx.conn, execution_id, None, False)  # a repeat: done already
        target = move(ExecutionState(row.state), Trigger.RESUME)
        if target is None:
            raise ExecutionStateError(
                f"execution {execution_id!r} is {row.state}; only a PAUSED execution can be "
                "resumed",
                state=row.state,
            )
        waiting = waiting_pauses_of(tx.conn, execution_id)
        child = None if waiting else the_paused_child(tx, execution_id)
        if child is not None:
            # Paused by its subworkflow: the answer is the child's (as a local run has it),
            # and the parent replays to wait for the child again.
            child_event = None if resume_id is None else resume_event_id(child.id, resume_id)
            answered = choose_pause(child.id, waiting_pauses_of(tx.conn, child.id), pause)
            _answer(tx, child.id, answered, now, blob, input)
            requeue_resumed(tx, child.id, child.workflow_name, now, blob, input, child_event)
        else:
            _answer(tx, execution_id, choose_pause(execution_id, waiting, pause), now, blob, input)
        requeue_resumed(tx, execution_id, row.workflow_name, now, blob, input, event_id)
        return read_status(tx.conn, execution_id, None, False)

    return await db.run_write(write)


def _answer(
    tx: Tx[sa.Connection],
    execution_id: str,
    answered: Pause | None,
    now: datetime,
    blob: bytes,
    input: Any,
) -> None:
    """Record ``input`` as the answer of the waiting pause ``answered`` (none: nothing)."""
    if answered is None:
        return
    completed = server_event(execution_id, PAUSE_TASK, EventType.TASK_COMPLETED, now, blob, input)
    completed.update(source_id=answered.source_id, scope=answered.scope)
    tx.conn.execute(INSERT_EVENT, completed)


async def cancel(db: Database, workflow_name: str, execution_id: str) -> ExecutionStatus:
    """Cancel at once when no worker holds it, else ask the holder (CANCELLING).

    Raises:
        ExecutionNotFoundError: unknown execution.  ExecutionStateError: it has already
            finished.
    """
    now = utcnow()

    def write(tx: Tx[sa.Connection]) -> ExecutionStatus:
        row = locked(tx, execution_id, workflow_name)
        state = ExecutionState(row.state)
        target = move(state, Trigger.CANCEL)
        if target is None:
            raise ExecutionStateError(
                f"execution {execution_id!r} has already finished ({state}); nothing to cancel",
                state=state,
            )
        if target == ExecutionState.CANCELLED:  # nobody holds it
            finish_cancelled(tx, execution_id, row.workflow_name, now)
        else:  # its holder unwinds it
            if state != target:
                tx.conn.execute(
                    UPDATE, {"b_id": execution_id, "state": target.value, "updated_at": now}
                )
                tx.notify(exec_note(execution_id, target))
            tx.notify(cancel_note(row.worker_name, execution_id))
        return read_status(tx.conn, execution_id, None, False)

    return await db.run_write(write)


def read_status(
    conn: sa.Connection, execution_id: str, workflow_name: str | None, detailed: bool
) -> ExecutionStatus:
    """The execution's status (with its history when ``detailed``).

    Raises:
        ExecutionNotFoundError: unknown id (or one of another workflow).
    """
    row = conn.execute(_READ_STATUS, {"b_id": execution_id}).first()
    if row is None or (workflow_name is not None and row.workflow_name != workflow_name):
        raise execution_not_found(execution_id, workflow_name)
    records = None
    if detailed:
        rows = conn.execute(_READ_HISTORY_VIEWS, {"b_id": execution_id})
        records = [_record(r) for r in rows]
    answer = status(row, records)
    if answer.state is ExecutionState.PAUSED:
        answer.pauses = [
            PauseInfo.model_construct(name=p.name, data=p.data, paused_at=p.paused_at)
            for p in waiting_pauses_of(conn, execution_id)
        ]
    return answer


def resume_event_id(execution_id: str, resume_id: str) -> str:
    """The id of the WORKFLOW_RESUMED event of a resume whose id the client chose: the key
    that makes repeating it a no-op."""
    return f"{execution_id}/resume/{resume_id}"


def _existing(conn: sa.Connection, execution_id: str, workflow_name: str) -> ExecutionStatus | None:
    """The execution with a client-chosen id, if there is one (of ``workflow_name``).

    Raises:
        ConflictError: that id belongs to an execution of another workflow.
    """
    try:
        found = read_status(conn, execution_id, None, False)
    except ExecutionNotFoundError:
        return None
    if found.workflow_name != workflow_name:
        raise ConflictError(
            f"execution id {execution_id!r} is taken by an execution of workflow "
            f"{found.workflow_name!r}",
        )
    return found


def _new_execution(
    workflow: LatestWorkflow,
    input: Any,
    execution_id: str | None = None,
    traceparent: str | None = None,
    parent_id: str | None = None,
) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": execution_id or new_id(),
        "workflow_id": workflow.id,
        "workflow_name": workflow.name,
        "workflow_version": workflow.version,
        "state": _QUEUED,
        "input": dumps(input, "json"),
        "input_view": input,
        "requests": workflow.requests,
        "generation": 0,
        "created_at": now,
        "updated_at": now,
        "traceparent": traceparent,
        "parent_id": parent_id,
    }


def _created(row: dict[str, Any], input: Any) -> ExecutionStatus:
    return ExecutionStatus.model_construct(
        execution_id=row["id"],
        workflow_id=row["workflow_id"],
        workflow_name=row["workflow_name"],
        workflow_version=row["workflow_version"],
        state=ExecutionState(row["state"]),
        input=input,
        output=None,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        worker=None,
        events=None,
    )


def _record(row: Any) -> EventRecord:
    return EventRecord.model_construct(
        id=row.id,
        type=EventType(row.type),
        source_id=row.source_id,
        name=row.name,
        scope=row.scope,
        time=row.time,
        value=b64encode(row.value),
        view=row.view,
    )
