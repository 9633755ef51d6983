"""What the execution operations share: prebuilt statements, row reads and the errors and
state changes several of them make.

Statements are built once: constructing a SQLAlchemy statement costs several times more than
executing a prebuilt one. Updates without ``.values()`` take their SET columns from the
parameters (typed by the columns); ``b_``-prefixed parameters are the WHERE clause's.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flux.domain import FINISHED_STATES, EventType, ExecutionState, Trigger, move
from flux.errors import ConflictError, ExecutionNotFoundError, ExecutionStateError, NotFoundError
from flux.pauses import PAUSE_TASK, Pause, PauseRecord, waiting_pauses
from flux.protocol import EventRecord, ExecutionStatus
from flux.serialization import dumps

from flux_server.db import Tx
from flux_server.db.tables import events, executions
from flux_server.metrics import finished
from flux_server.notes import DISPATCH, exec_note
from flux_server.store._common import server_event
from flux_server.store._states import FINISHED, QUEUED

__all__ = [
    "BUMP",
    "INSERT_EVENT",
    "REQUEUED",
    "STATUS_COLUMNS",
    "UPDATE",
    "continue_parents",
    "execution_not_found",
    "fenced",
    "finish_cancelled",
    "locked",
    "not_found",
    "parent_candidate",
    "requeue_resumed",
    "stale",
    "status",
    "stranded_parents",
    "the_paused_child",
    "waiting_pauses_of",
]

_C = executions.c
_E = events.c

STATUS_COLUMNS = (
    _C.id,
    _C.workflow_id,
    _C.workflow_name,
    _C.workflow_version,
    _C.state,
    _C.input_view,
    _C.output_view,
    _C.created_at,
    _C.updated_at,
    _C.worker_name,
)
"""The columns of an :class:`ExecutionStatus` (see :func:`status`)."""
(_QUEUED,) = QUEUED
REQUEUED = {
    "state": _QUEUED,
    "worker_name": None,
    "offered_to": None,
    "offered_at": None,
    "claimed_at": None,
}
"""The columns of an execution put back in the queue (with a new generation)."""

INSERT_EVENT = sa.insert(events)
UPDATE = sa.update(executions).where(_C.id == sa.bindparam("b_id"))
BUMP = UPDATE.values(generation=_C.generation + 1)
"""An update that also fences the holder: its generation no longer matches."""
_READ_ROW = sa.select(_C.state, _C.workflow_name, _C.worker_name, _C.generation).where(
    _C.id == sa.bindparam("b_id")
)
_READ_ROW_LOCKED = _READ_ROW.with_for_update()
_READ_ROW_SKIP_LOCKED = _READ_ROW.with_for_update(skip_locked=True)
_CANCEL = BUMP.returning(_C.created_at, _C.parent_id)
# The name as a literal: both planners use the partial index ``ix_events_pause`` (revision
# 0007) only for a query that repeats its condition word for word.
_READ_PAUSE_EVENTS = (
    sa.select(_E.type, _E.source_id, _E.scope, _E.time, _E.view)
    .where(_E.execution_id == sa.bindparam("b_id"), sa.text(f"name = '{PAUSE_TASK}'"))
    .order_by(_E.seq)
)
_PAUSED_PARENT = sa.select(_C.workflow_name).where(
    _C.id == sa.bindparam("b_id"), _C.state == ExecutionState.PAUSED.value
)
_PAUSED_PARENT_LOCKED = _PAUSED_PARENT.with_for_update()
_A_CHILD = sa.select(_C.id).where(_C.parent_id == sa.bindparam("b_id")).limit(1)
_PAUSED_CHILDREN = (
    sa.select(_C.id, _C.workflow_name)
    .where(_C.parent_id == sa.bindparam("b_id"), _C.state == ExecutionState.PAUSED.value)
    .order_by(_C.id)
    .limit(20)
)
_CHILD = executions.alias("child")
_STRANDED = (
    sa.select(_C.id)
    .where(
        _C.state == ExecutionState.PAUSED.value,
        _C.id > sa.bindparam("b_after"),
        sa.exists().where(_CHILD.c.parent_id == _C.id),
        ~sa.exists().where(
            _CHILD.c.parent_id == _C.id,
            _CHILD.c.state.not_in(FINISHED),
        ),
    )
    .order_by(_C.id)
    .limit(sa.bindparam("b_limit"))
)
_NOTHING = dumps(None, "json")


def status(row: Any, records: list[EventRecord] | None) -> ExecutionStatus:
    """The status of a row with :data:`STATUS_COLUMNS` (``records``: its history, if read)."""
    return ExecutionStatus.model_construct(
        execution_id=row.id,
        workflow_id=row.workflow_id,
        workflow_name=row.workflow_name,
        workflow_version=row.workflow_version,
        state=ExecutionState(row.state),
        input=row.input_view,
        output=row.output_view,
        created_at=row.created_at,
        updated_at=row.updated_at,
        worker=row.worker_name,
        events=records,
    )


def locked(tx: Tx[sa.Connection], execution_id: str, workflow_name: str | None = None) -> Any:
    """The execution's state, workflow, holder and generation, locked for this transaction.

    Raises:
        ExecutionNotFoundError: unknown id (or one of another workflow).
    """
    row = _read_locked(tx, execution_id)
    if row is None or (workflow_name is not None and row.workflow_name != workflow_name):
        raise execution_not_found(execution_id, workflow_name)
    return row


def fenced(tx: Tx[sa.Connection], worker: str, execution_id: str, generation: int) -> Any:
    """The execution's row (see :func:`locked`), held by ``worker`` with ``generation``.

    Raises:
        NotFoundError: unknown id.  ConflictError: another holder or generation (fenced).
    """
    row = _read_locked(tx, execution_id)
    if row is None:
        raise not_found(execution_id)
    if row.generation != generation or row.worker_name != worker:
        raise stale(execution_id, worker, generation, row.generation)
    return row


def _read_locked(tx: Tx[sa.Connection], execution_id: str) -> Any:
    query = _READ_ROW if tx.conn.dialect.name == "sqlite" else _READ_ROW_LOCKED
    return tx.conn.execute(query, {"b_id": execution_id}).first()


def finish_cancelled(
    tx: Tx[sa.Connection], execution_id: str, workflow_name: str, now: datetime
) -> None:
    """Record WORKFLOW_CANCELLED and end the execution CANCELLED, fencing any holder."""
    tx.conn.execute(
        INSERT_EVENT,
        server_event(execution_id, workflow_name, EventType.WORKFLOW_CANCELLED, now, None, None),
    )
    row = tx.conn.execute(
        _CANCEL,
        {
            "b_id": execution_id,
            "state": ExecutionState.CANCELLED.value,
            "offered_to": None,
            "offered_at": None,
            "updated_at": now,
        },
    ).one()
    tx.notify(exec_note(execution_id, ExecutionState.CANCELLED))
    tx.notify(DISPATCH)
    tx.record(finished(workflow_name, ExecutionState.CANCELLED, row.created_at, now))
    if row.parent_id is not None:
        continue_parents(tx, [row.parent_id], now)


def requeue_resumed(
    tx: Tx[sa.Connection],
    execution_id: str,
    workflow_name: str,
    now: datetime,
    blob: bytes,
    input: Any,
    event_id: str | None = None,
) -> None:
    """Append the PAUSED execution's WORKFLOW_RESUMED (carrying ``input``; with ``event_id``
    when the resume's id was chosen) and queue it again, fencing nothing: no one holds it."""
    resumed = server_event(
        execution_id, workflow_name, EventType.WORKFLOW_RESUMED, now, blob, input
    )
    if event_id is not None:
        resumed["id"] = event_id
    tx.conn.execute(INSERT_EVENT, resumed)
    tx.conn.execute(BUMP, {"b_id": execution_id, **REQUEUED, "updated_at": now})
    tx.notify(DISPATCH)
    target = move(ExecutionState.PAUSED, Trigger.RESUME)
    assert target is not None  # the transitions table lets a paused execution resume
    tx.notify(exec_note(execution_id, target))


def continue_parents(tx: Tx[sa.Connection], candidates: Iterable[str], now: datetime) -> list[str]:
    """Resume each of ``candidates`` that waits for its subworkflows only: PAUSED, with a
    child, none of its children PAUSED, and no pause of its own waiting (that one is a
    person's to answer). Its replay then gets each finished child's result (and waits for a
    running one). Called when a child finishes (with its parent) and when an execution pauses
    (with itself: a child may have finished before the pause was recorded). Returns the ids
    resumed.
    """
    resumed = []
    locked_read = _PAUSED_PARENT if tx.conn.dialect.name == "sqlite" else _PAUSED_PARENT_LOCKED
    for parent_id in sorted(set(candidates)):  # one order of locks for every transaction
        params = {"b_id": parent_id}
        if tx.conn.execute(_A_CHILD, params).first() is None:
            continue  # no subworkflow: a pause of its own, which a person answers
        name = tx.conn.execute(locked_read, params).scalar_one_or_none()
        if name is None or tx.conn.execute(_PAUSED_CHILDREN, params).first() is not None:
            continue
        if waiting_pauses_of(tx.conn, parent_id):
            continue
        requeue_resumed(tx, parent_id, name, now, _NOTHING, None)
        resumed.append(parent_id)
    return resumed


def stranded_parents(conn: sa.Connection, after: str, limit: int) -> list[str]:
    """Up to ``limit`` PAUSED executions (ids above ``after``, in order) with children, all
    of them finished: what :func:`continue_parents` resumes unless a pause of its own waits.
    Normally none; one is left when the transaction that was to continue it after a child
    finished was lost (PostgreSQL's one-statement checkpoint, then the server's end)."""
    params = {"b_after": after, "b_limit": limit}
    return list(conn.execute(_STRANDED, params).scalars())


def the_paused_child(tx: Tx[sa.Connection], parent_id: str) -> Any:
    """The one PAUSED child of ``parent_id`` (id and workflow name), locked for this
    transaction; ``None`` when none is paused.

    Raises:
        ExecutionStateError: several are paused (which one a resume answers is not known);
            ``details["children"]`` lists their ids (up to 20).
    """
    children = tx.conn.execute(_PAUSED_CHILDREN, {"b_id": parent_id}).all()
    if not children:
        return None
    if len(children) > 1:
        ids = [c.id for c in children]
        raise ExecutionStateError(
            f"execution {parent_id!r} waits for {len(ids)} paused subworkflows "
            f"({', '.join(ids)}); resume each of them (it goes on by itself once they have "
            "finished)",
            execution_id=parent_id,
            children=ids,
        )
    (child,) = children
    if tx.conn.dialect.name != "sqlite":
        # Lock it, unless a transaction that finishes it holds it: that one locks the parent
        # next (the other order), so waiting could deadlock; the resume then answers no one.
        now = tx.conn.execute(_READ_ROW_SKIP_LOCKED, {"b_id": child.id}).first()
        if now is None or now.state != ExecutionState.PAUSED.value:
            return None
    return child


def parent_candidate(
    execution_id: str, parent_id: str | None, state: ExecutionState, has_children: bool = True
) -> str | None:
    """The execution :func:`continue_parents` has to look at after this one moved to ``state``:
    its parent when it finished, itself when it paused and may have children (a child it
    waits for may have finished before); ``None`` otherwise."""
    if state in FINISHED_STATES:
        return parent_id
    return execution_id if state is ExecutionState.PAUSED and has_children else None


def waiting_pauses_of(conn: sa.Connection, execution_id: str) -> list[Pause]:
    """The execution's pauses that wait for a resume, from its pause events' JSON views."""
    rows = conn.execute(_READ_PAUSE_EVENTS, {"b_id": execution_id})
    return waiting_pauses(
        PauseRecord(EventType(r.type), r.source_id, r.scope, r.time, r.view) for r in rows
    )


def _no_execution(execution_id: str, workflow_name: str | None) -> str:
    of = f" of workflow {workflow_name!r}" if workflow_name is not None else ""
    return f"no execution {execution_id!r}{of}; check the id (see `flux workflow status`)"


def execution_not_found(
    execution_id: str, workflow_name: str | None = None
) -> ExecutionNotFoundError:
    """An unknown execution, as a client asking for it learns (a local run raises it too)."""
    return ExecutionNotFoundError(
        _no_execution(execution_id, workflow_name), execution_id=execution_id
    )


def not_found(execution_id: str) -> NotFoundError:
    """An unknown execution, as a worker claiming, checkpointing or releasing it learns (code
    ``not_found`` in the worker protocol)."""
    return NotFoundError(_no_execution(execution_id, None), execution_id=execution_id)


def stale(execution_id: str, worker: str, generation: int, current: int) -> ConflictError:
    """The worker's claim was taken away (requeued, cancelled, claimed by another)."""
    return ConflictError(
        f"execution {execution_id!r} is no longer held by worker {worker!r} with generation "
        f"{generation} (current generation {current}); abandon it",
        generation=current,
    )
