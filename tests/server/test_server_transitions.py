"""The state machine: one table in ``flux.domain``, read by the checkpoint's Python path and
spelled into the statements; both paths move an execution alike on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from flux.domain import (
    FINISHED_STATES,
    HELD_STATES,
    QUEUED_STATES,
    SETTLED_STATES,
    TRANSITIONS,
    WORKFLOW_EVENT_STATE,
    EventType,
    ExecutionState,
    Trigger,
    move,
    utcnow,
)
from flux.protocol import CheckpointItem, CheckpointRequest
from flux_server.db.tables import executions
from flux_server.store import next_state
from flux_server.store._checkpoints_pg import checkpoint_statement
from flux_server.store._states import HELD, PROGRESS_ONLY, STRAIGHT, quoted
from server_support import record

S = ExecutionState
E = EventType


def test_the_state_lists_are_read_from_the_table() -> None:
    assert FINISHED_STATES == {S.COMPLETED, S.FAILED, S.CANCELLED}
    assert HELD_STATES == {S.CLAIMED, S.RUNNING, S.CANCELLING}
    assert QUEUED_STATES == {S.SCHEDULED}
    assert SETTLED_STATES == FINISHED_STATES | {S.PAUSED}
    assert (STRAIGHT, PROGRESS_ONLY) == (["CLAIMED", "RUNNING"], ["CANCELLING"])
    assert set(TRANSITIONS) == set(ExecutionState)
    assert all(not TRANSITIONS[s] for s in FINISHED_STATES)


def test_the_partial_index_of_held_executions_names_the_held_states() -> None:
    """The index (revision 0003) is only used by statements whose state list implies its
    predicate: a change of the held states must come with a new index."""
    (index,) = [i for i in executions.indexes if i.name == "ix_executions_worker_name_state"]
    predicate = str(index.dialect_options["postgresql"]["where"])
    assert predicate == f"state IN ({quoted(HELD)})"


def test_clients_and_workers_move_executions_as_the_table_says() -> None:
    assert move(S.SCHEDULED, Trigger.CLAIM) == S.CLAIMED
    assert move(S.CLAIMED, Trigger.CLAIM) == S.CLAIMED  # its holder, again
    assert move(S.RUNNING, Trigger.CLAIM) is None
    assert move(S.PAUSED, Trigger.RESUME) == S.SCHEDULED
    assert move(S.RUNNING, Trigger.RESUME) is None
    assert move(S.RUNNING, Trigger.CANCEL) == S.CANCELLING
    assert move(S.PAUSED, Trigger.CANCEL) == S.CANCELLED
    assert all(move(s, Trigger.CANCEL) is None for s in FINISHED_STATES)
    assert move(S.RUNNING, Trigger.RELEASE) == S.SCHEDULED
    assert move(S.CANCELLING, Trigger.RELEASE) == S.CANCELLED


def test_a_checkpoint_moves_to_the_last_workflow_level_event_reported() -> None:
    started, paused = record(E.WORKFLOW_STARTED), record(E.WORKFLOW_PAUSED)
    task, done = record(E.TASK_COMPLETED), record(E.WORKFLOW_COMPLETED)
    assert next_state(S.CLAIMED, []) == S.CLAIMED
    assert next_state(S.CLAIMED, [task]) == S.RUNNING
    assert next_state(S.RUNNING, [task]) == S.RUNNING
    assert next_state(S.CLAIMED, [started, task, paused, task]) == S.PAUSED
    assert next_state(S.RUNNING, [done]) == S.COMPLETED
    assert next_state(S.PAUSED, [paused]) == S.PAUSED  # a retried checkpoint
    # A cancelling run stays so until it ends; one that pauses instead ends cancelled.
    assert next_state(S.CANCELLING, [task, started]) == S.CANCELLING
    assert next_state(S.CANCELLING, [paused]) == S.CANCELLED
    assert next_state(S.CANCELLING, [done]) == S.COMPLETED
    for finished in FINISHED_STATES:
        assert next_state(finished, [started, done]) == finished


# -- the Python path and the SQL path, on the database -------------------------------------------

CASES = [
    (s, e) for s in (S.CLAIMED, S.RUNNING, S.CANCELLING) for e in (None, *WORKFLOW_EVENT_STATE)
]


async def _held(store: Any, latest: Any, state: ExecutionState) -> tuple[str, int]:
    """A new execution held by ``w1`` in ``state``: (its id, its generation)."""
    created = await store.create(latest, None)
    execution_id = created.execution_id
    generation = (await store.claim("w1", execution_id))["generation"]
    if state != S.CLAIMED:
        started = CheckpointRequest(generation=generation, events=[record(E.WORKFLOW_STARTED)])
        await store.checkpoint("w1", execution_id, started)
    if state == S.CANCELLING:
        await store.cancel("hello", execution_id)
    assert (await store.status(execution_id)).state == state
    return execution_id, generation


def _events(event: EventType | None) -> list[Any]:
    return [record(E.TASK_STARTED), *([record(event)] if event is not None else [])]


async def test_both_checkpoint_paths_move_executions_as_the_table_says(server, db_url) -> None:
    """On each database the full (Python) path stores every case; on PostgreSQL the one
    statement stores the same cases, for another execution each, and must end alike (the
    cases it leaves to the full path are those the table says it cannot move alone)."""
    await server.register()
    store, db = server.runtime.executions, server.runtime.db
    latest = await server.runtime.workflows.latest("hello")
    expected = {
        case: TRANSITIONS[case[0]].get(case[1] or Trigger.PROGRESS, case[0]) for case in CASES
    }

    python_path = {}
    for state, event in CASES:
        execution_id, generation = await _held(store, latest, state)
        request = CheckpointRequest(generation=generation, events=_events(event))
        answered = (await store.checkpoint("w1", execution_id, request)).state
        python_path[state, event] = (await store.status(execution_id)).state
        assert answered == python_path[state, event]
    assert python_path == expected

    if db.dialect != "postgresql":
        return
    items = {}
    for state, event in CASES:
        execution_id, generation = await _held(store, latest, state)
        items[state, event] = CheckpointItem(
            execution_id=execution_id, generation=generation, events=_events(event)
        )
    moved, _, _ = await db.run_statement(
        lambda tx: checkpoint_statement(tx, "w1", list(items.values()), utcnow(), lambda i: False)
    )
    for (state, event), item in items.items():
        by_statement = state.value in STRAIGHT or (event is None and state.value in PROGRESS_ONLY)
        assert (item.execution_id in moved) == by_statement, (state, event)
        if by_statement:
            stored = (await store.status(item.execution_id)).state
            assert moved[item.execution_id].state == stored == python_path[state, event]
