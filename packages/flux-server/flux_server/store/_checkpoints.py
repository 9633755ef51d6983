"""Checkpoints: a worker's new events, merged idempotently, and the state they move the
execution to (:data:`flux.domain.TRANSITIONS`), each item fenced by its generation.

Two paths store them: this full one (any dialect, any item), and on PostgreSQL a batch of
events of held executions as one statement, built from the same table
(:mod:`flux_server.store._checkpoints_pg`); what the statement does not move goes through the
full path after it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from flux.domain import (
    FINISHED_STATES,
    TRANSITIONS,
    WORKFLOW_EVENTS,
    EventType,
    ExecutionState,
    Trigger,
    utcnow,
)
from flux.errors import ConflictError, FluxError, NotFoundError
from flux.protocol import (
    CheckpointItem,
    CheckpointRequest,
    CheckpointResponse,
    CheckpointResult,
    ErrorBody,
    EventRecord,
    ExecutionStatus,
)

from flux_server.db import Database, Tx
from flux_server.db.raw import Statement
from flux_server.metrics import finished
from flux_server.notes import DISPATCH, exec_note
from flux_server.store._checkpoints_pg import checkpoint_statement, straight
from flux_server.store._common import EventRow, b64, event_rows, merge_events
from flux_server.store._rows import (
    STATUS_COLUMNS,
    continue_parents,
    finish_cancelled,
    not_found,
    parent_candidate,
    stale,
    status,
    stranded_parents,
)
from flux_server.store._states import SETTLED

__all__ = ["checkpoint", "checkpoint_many", "continue_stranded", "next_state"]

Outcome = ExecutionState | ConflictError | NotFoundError
"""An item's new state, or why it was refused."""


def next_state(current: ExecutionState, records: Sequence[EventRecord]) -> ExecutionState:
    """The state after a checkpoint with ``records``: where the last workflow-level event
    moves ``current``, or events alone do (``PROGRESS``), by :data:`flux.domain.TRANSITIONS`;
    a move the table lacks leaves the state as it is."""
    return _state_after(current, _last_workflow_event(records), bool(records))


def _last_workflow_event(records: Sequence[EventRecord]) -> EventType | None:
    return next((r.type for r in reversed(records) if r.type in WORKFLOW_EVENTS), None)


def _state_after(
    current: ExecutionState, last: EventType | None, progressed: bool
) -> ExecutionState:
    if last is not None:
        return TRANSITIONS[current].get(last, current)
    return TRANSITIONS[current].get(Trigger.PROGRESS, current) if progressed else current


async def checkpoint(
    db: Database, worker: str, execution_id: str, request: CheckpointRequest
) -> CheckpointResponse:
    """One execution's checkpoint (see :meth:`ExecutionStore.checkpoint`).

    Raises:
        NotFoundError: unknown execution.  ConflictError: stale generation (fenced).
        UsageError: a value is not base64.
    """
    item = CheckpointItem.model_construct(
        execution_id=execution_id,
        generation=request.generation,
        events=request.events,
        output=request.output,
    )

    def write(tx: Tx[sa.Connection]) -> CheckpointResponse:
        [(_, outcome)] = _checkpoint_batch(tx, worker, [item], utcnow())
        if isinstance(outcome, FluxError):
            raise outcome
        return CheckpointResponse.model_construct(acknowledged=len(request.events), state=outcome)

    return await db.run_write(write)


async def checkpoint_many(
    db: Database,
    worker: str,
    items: Sequence[CheckpointItem],
    wanted: Callable[[str], bool],
    on_settled: Callable[[ExecutionStatus], None],
) -> list[CheckpointResult]:
    """Several executions' checkpoints in one transaction, each fenced on its own (see
    :meth:`ExecutionStore.checkpoint_many`). ``on_settled`` gets, after the commit, the
    status of each execution that settled and is ``wanted``."""
    original = items

    def write(tx: Tx[sa.Connection]) -> tuple[list[CheckpointResult], list[ExecutionStatus]]:
        results = checkpoint_all(tx)
        # Executions that just settled and that a client here waits for: their status
        # read now, in this transaction, saves each waiter a read of its own.
        ids = [
            r.execution_id
            for r in results
            if r.state is not None and r.state in SETTLED and wanted(r.execution_id)
        ]
        if not ids:
            return results, []
        rows = _READ_SETTLED.execute(tx.conn, {"ids": ids})
        return results, [status(row, None) for row in rows]

    def checkpoint_all(tx: Tx[sa.Connection]) -> list[CheckpointResult]:
        now = utcnow()
        if len({item.execution_id for item in items}) == len(items):
            outcomes = _checkpoint_batch(tx, worker, items, now)
        else:  # one execution twice: each item in turn, in order
            outcomes = [o for item in items for o in _checkpoint_batch(tx, worker, [item], now)]
        return [
            CheckpointResult(execution_id=item.execution_id, error=ErrorBody(**o.to_dict()))
            if isinstance(o, FluxError)
            else CheckpointResult.model_construct(
                execution_id=item.execution_id,
                acknowledged=len(item.events),
                state=o,
                error=None,
            )
            for item, o in outcomes
        ]

    moved: dict[str, CheckpointResult] = {}
    if db.dialect == "postgresql" and straight(items):
        moved, settled, parents = await db.run_statement(
            lambda tx: checkpoint_statement(tx, worker, items, utcnow(), wanted)
        )
        for found in settled:  # committed: hand them to the waiters
            on_settled(found)
        if parents:  # the statement is a transaction of its own: the parents in another
            await db.run_write(lambda tx: continue_parents(tx, parents, utcnow()))
        if len(moved) == len(items):
            return [moved[item.execution_id] for item in items]
        items = [item for item in items if item.execution_id not in moved]
    results, settled = await db.run_write(write)
    for found in settled:  # committed: hand them to the waiters
        on_settled(found)
    if moved:  # in request order
        rest = iter(results)
        return [moved.get(i.execution_id) or next(rest) for i in original]
    return results


async def continue_stranded(db: Database, batch: int) -> list[str]:
    """Resume every parent left paused after its last child finished (see
    :func:`~flux_server.store._rows.stranded_parents`), ``batch`` at most per transaction;
    the ids resumed."""
    resumed: list[str] = []
    after = ""
    while True:
        found, done = await db.run_write(functools.partial(_stranded, after=after, batch=batch))
        resumed += done
        if len(found) < batch:
            return resumed
        after = found[-1]


def _stranded(tx: Tx[sa.Connection], after: str, batch: int) -> tuple[list[str], list[str]]:
    """One batch of :func:`continue_stranded`: (the parents found, those resumed)."""
    found = stranded_parents(tx.conn, after, batch)
    return found, continue_parents(tx, found, utcnow())


def _checkpoint_batch(
    tx: Tx[sa.Connection], worker: str, items: Sequence[CheckpointItem], now: datetime
) -> list[tuple[CheckpointItem, Outcome]]:
    """Merge the new events of items of distinct executions idempotently and move each state
    along, in a few statements for all of them (one read, one insert, one update per shape of
    change). Per item, in order: the new state, or why it was refused (unknown execution,
    stale generation); a refused item changes nothing.

    Raises:
        UsageError: a value is not base64 (nothing of the batch is stored).
    """
    conn = tx.conn
    ids = [i.execution_id for i in items]
    rows = {r.id: r for r in _HELD_ROWS.execute(conn, {"ids": ids})}
    outcomes: list[tuple[CheckpointItem, Outcome]] = []
    inserts: list[EventRow] = []
    updates: dict[frozenset[str], list[dict[str, Any]]] = {}
    cancelled: list[Any] = []
    parents: list[str] = []
    for item in items:
        execution_id = item.execution_id
        row = rows.get(execution_id)
        if row is None or row.generation != item.generation or row.worker_name != worker:
            refused = (
                not_found(execution_id)
                if row is None
                else stale(execution_id, worker, item.generation, row.generation)
            )
            outcomes.append((item, refused))
            continue
        inserts += event_rows(execution_id, item.events)
        state = ExecutionState(row.state)
        last = _last_workflow_event(item.events)
        new = _state_after(state, last, bool(item.events))
        values: dict[str, Any] = {}
        if new == ExecutionState.CANCELLED and last != EventType.WORKFLOW_CANCELLED:
            cancelled.append(row)  # it paused instead of unwinding: the server cancels it
        elif new != state:
            values["state"] = new.value
            if new in FINISHED_STATES:
                values.update(_output(item))
                tx.record(finished(row.workflow_name, new, row.created_at, now))
        if values or item.events:
            params = {"id": execution_id, "updated_at": now, **values}
            updates.setdefault(frozenset(params), []).append(params)
        if new != state:
            tx.notify(exec_note(execution_id, new))
            if new in SETTLED:
                tx.notify(DISPATCH)
            candidate = parent_candidate(execution_id, row.parent_id, new)
            if candidate is not None:
                parents.append(candidate)
        outcomes.append((item, new))
    merge_events(tx, inserts)
    for row in cancelled:
        finish_cancelled(tx, row.id, row.workflow_name, now)
    for shape, same_shape in updates.items():
        if shape == _PROGRESS:  # events only: one statement for all
            _TOUCH.execute(conn, {"ids": [p["id"] for p in same_shape], "updated_at": now})
        else:
            _moved(shape).executemany(conn, same_shape)
    if parents:
        continue_parents(tx, parents, now)
    return outcomes


def _output(item: CheckpointItem) -> dict[str, Any]:
    if item.output is not None:
        return {
            "output": b64(item.output.value, "the output value"),
            "output_view": item.output.view,
        }
    terminal = next((r for r in reversed(item.events) if r.type in WORKFLOW_EVENTS), None)
    if terminal is None:
        return {}
    return {"output": b64(terminal.value, "the output value"), "output_view": terminal.view}


# A checkpoint's statements (see ``merge_events`` for its events). On PostgreSQL the read
# locks the rows, in one order for every transaction: no deadlock.
_HELD_ROWS = Statement(
    "SELECT id, state, workflow_name, worker_name, generation, created_at, parent_id "
    "FROM executions WHERE id IN (:ids) ORDER BY id",
    postgresql="SELECT id, state, workflow_name, worker_name, generation, created_at, "
    "parent_id FROM executions WHERE id IN (:ids) ORDER BY id FOR UPDATE",
    lists=("ids",),
    columns=(
        *("id", "state", "workflow_name", "worker_name", "generation", "created_at"),
        "parent_id",
    ),
    time_columns=("created_at",),
)
_PROGRESS = frozenset({"id", "updated_at"})
_TOUCH = Statement(
    "UPDATE executions SET updated_at = :updated_at WHERE id IN (:ids)",
    times=("updated_at",),
    lists=("ids",),
)
_STATUS_NAMES = [c.name for c in STATUS_COLUMNS]
_READ_SETTLED = Statement(
    f"SELECT {', '.join(_STATUS_NAMES)} FROM executions WHERE id IN (:ids)",
    lists=("ids",),
    columns=_STATUS_NAMES,
    time_columns=("created_at", "updated_at"),
    json_columns=("input_view", "output_view"),
)


@functools.cache
def _moved(shape: frozenset[str]) -> Statement:
    """The update of an execution whose checkpoint set the columns in ``shape`` (besides
    ``id``: ``updated_at``, and ``state``, ``output``, ``output_view`` as it changed)."""
    columns = sorted(shape - {"id"})
    return Statement(
        f"UPDATE executions SET {', '.join(f'{c} = :{c}' for c in columns)} WHERE id = :id",
        times=("updated_at",),
        json=[c for c in columns if c == "output_view"],
    )
