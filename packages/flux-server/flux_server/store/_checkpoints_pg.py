"""Checkpoints on PostgreSQL as one statement: a batch of events of executions held by the
worker, moved along as :data:`flux.domain.TRANSITIONS` says for the states the statement
handles (spelled by :mod:`flux_server.store._states`). The full checkpoint
(:mod:`flux_server.store._checkpoints`) stores what it does not move.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from flux.domain import FINISHED_STATES, WORKFLOW_EVENT_STATE, WORKFLOW_EVENTS, ExecutionState
from flux.protocol import CheckpointItem, CheckpointResult, ExecutionStatus
from pydantic_core import to_json

from flux_server.db import Tx
from flux_server.db.raw import Statement
from flux_server.metrics import finished
from flux_server.notes import DISPATCH, exec_note
from flux_server.store._common import b64, check_records
from flux_server.store._rows import parent_candidate, status
from flux_server.store._states import (
    HELD,
    PROGRESS_MOVES,
    PROGRESS_ONLY,
    SETTLED,
    STRAIGHT,
    one,
    quoted,
)

__all__ = ["checkpoint_statement", "straight"]


def straight(items: Sequence[CheckpointItem]) -> bool:
    """Whether every item adds events to a distinct execution without the cases only the full
    checkpoint handles (no events; several items of one execution)."""
    return len({i.execution_id for i in items}) == len(items) and all(i.events for i in items)


# A checkpoint batch on PostgreSQL as one statement (data-modifying CTEs over one JSON
# parameter: the items, with their event records as they came): lock the executions this
# worker holds with the sent generations, move their state and output as the worker's events
# say and stamp updated_at, and insert the events of those (and only those) in the order
# sent. Each level of the JSON is parsed once, by json_to_recordset into typed columns (a
# ``->>`` per field would parse the ``json`` text again each time, a measurable share of
# PostgreSQL's CPU per batch). An item changing the state applies only to an execution in a
# state that each workflow-level event moves to the state it reports (``straight``: claimed
# or running; a cancelling one that pauses must end cancelled instead); events alone also to
# the other held states (cancelling, which stays so). The states are spelled from the
# transitions table (``flux_server.store._states``). What the statement did not move (stale,
# unknown, finished, cancelling) goes through the full checkpoint after it.
_CHECKPOINT_SQL = """
WITH sent AS (
    SELECT * FROM json_to_recordset(CAST(:items AS json)) AS s(
        id text, generation int, state text, finished bool, output text, output_view json)
), held AS (
    SELECT x.id, x.state FROM executions x JOIN sent ON x.id = sent.id
    WHERE x.id = ANY(CAST(:ids AS text[]))
        AND x.generation = sent.generation AND x.worker_name = :worker
        -- implied by the next condition, but in the form that lets the planner use the
        -- partial index of held executions (revision 0003) should it pick that index
        AND x.state IN ({held})
        AND (x.state IN ({straight})
             OR (sent.state IS NULL AND x.state = {progress_only}))
    ORDER BY x.id
    FOR UPDATE OF x
), moved AS (
    UPDATE executions x
    SET updated_at = :now,
        state = COALESCE(
            sent.state, CASE {progress} ELSE held.state END),
        output = CASE WHEN sent.finished THEN decode(sent.output, 'base64') ELSE x.output END,
        output_view = CASE WHEN sent.finished THEN sent.output_view ELSE x.output_view END
    FROM held JOIN sent ON sent.id = held.id
    WHERE x.id = held.id AND x.id = ANY(CAST(:ids AS text[]))
    RETURNING x.id, held.state AS was, x.state, x.workflow_id, x.workflow_name,
        x.workflow_version, x.input_view, x.output_view, x.created_at, x.updated_at,
        x.worker_name, x.parent_id
), added AS (
    INSERT INTO events (id, execution_id, type, source_id, name, scope, time, value, view)
    SELECT e.id, i.id, e.type, e.source_id, e.name, e.scope, e.time,
        decode(e.value, 'base64'), e.view
    FROM ROWS FROM (json_to_recordset(CAST(:items AS json)) AS (id text, events json))
        WITH ORDINALITY AS i(id, events, k)
    CROSS JOIN LATERAL ROWS FROM (json_to_recordset(i.events) AS (
            id text, type text, source_id text, name text, scope text, time timestamptz,
            value text, view json))
        WITH ORDINALITY AS e(id, type, source_id, name, scope, time, value, view, j)
    WHERE i.id IN (SELECT id FROM moved)
    ORDER BY i.k, e.j
    ON CONFLICT (id) DO NOTHING
)
SELECT id, was, state, workflow_id, workflow_name, workflow_version,
    -- the views go into the status of a settled execution only: not parsed for the others
    CASE WHEN state IN ({settled}) THEN input_view END,
    CASE WHEN state IN ({settled}) THEN output_view END,
    created_at, updated_at, worker_name, parent_id,
    -- a paused execution that started children may be theirs to resume (continue_parents);
    -- one without goes through no second transaction
    CASE WHEN state = 'PAUSED' THEN EXISTS (
        SELECT 1 FROM executions c WHERE c.parent_id = moved.id) ELSE false END
FROM moved
"""
_CHECKPOINT_PG = Statement(
    _CHECKPOINT_SQL.format(
        held=quoted(HELD),
        straight=quoted(STRAIGHT),
        progress_only=one(PROGRESS_ONLY),
        progress=" ".join(
            f"WHEN held.state = {one([s])} THEN {one([t])}" for s, t in PROGRESS_MOVES.items()
        ),
        settled=quoted(sorted(SETTLED)),
    ),
    lists=("ids",),
    columns=(
        *("id", "was", "state", "workflow_id", "workflow_name", "workflow_version"),
        *("input_view", "output_view", "created_at", "updated_at", "worker_name"),
        "parent_id",
        "has_children",
    ),
    time_columns=("created_at", "updated_at"),
)


async def checkpoint_statement(
    tx: Tx[Any],
    worker: str,
    items: Sequence[CheckpointItem],
    now: datetime,
    wanted: Callable[[str], bool],
) -> tuple[dict[str, CheckpointResult], list[ExecutionStatus], list[str]]:
    """:data:`_CHECKPOINT_PG` for ``items`` (see :func:`straight`): the results of the items
    it stored, by execution id, the statuses of those that settled and are ``wanted``, and
    the executions :func:`~flux_server.store._rows.continue_parents` has to look at.

    Raises:
        UsageError: a value is not base64, or a text field holds a NUL character.
    """
    sent: list[dict[str, Any]] = []
    for item in items:
        check_records(item.events)
        last = next((r for r in reversed(item.events) if r.type in WORKFLOW_EVENTS), None)
        # The state the event reports: where it moves a straight state (the only ones the
        # statement moves with a workflow-level event).
        state = None if last is None else WORKFLOW_EVENT_STATE[last.type]
        entry = {
            "id": item.execution_id,
            "generation": item.generation,
            "state": state,
            "events": item.events,  # serialized as they came
        }
        if state in FINISHED_STATES:
            output = item.output if item.output is not None else last
            assert output is not None
            b64(output.value, "the output value")  # validation
            entry.update(finished=True, output=output.value, output_view=output.view)
        sent.append(entry)
    params = {
        "items": to_json(sent).decode(),
        "ids": [item.execution_id for item in items],  # the primary key: an index scan
        "worker": worker,
        "now": now,
    }
    counts = {item.execution_id: len(item.events) for item in items}
    results: dict[str, CheckpointResult] = {}
    settled: list[ExecutionStatus] = []
    parents: list[str] = []
    for row in await _CHECKPOINT_PG.execute_async(tx.conn, params):
        state = ExecutionState(row.state)
        if state.value != row.was:
            tx.notify(exec_note(row.id, state))
            candidate = parent_candidate(row.id, row.parent_id, state, row.has_children)
            if candidate is not None:
                parents.append(candidate)
            if state in FINISHED_STATES:
                tx.record(finished(row.workflow_name, state, row.created_at, now))
            if state in SETTLED:
                tx.notify(DISPATCH)
                if wanted(row.id):
                    settled.append(status(row, None))
        results[row.id] = CheckpointResult.model_construct(
            execution_id=row.id, acknowledged=counts[row.id], state=state, error=None
        )
    return results, settled, parents
