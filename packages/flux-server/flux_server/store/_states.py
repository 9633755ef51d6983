"""The state lists the store's statements spell, read from :data:`flux.domain.TRANSITIONS`.

Statements compare ``executions.state`` with literals, so the planner sees the values (and the
partial index of held executions, whose predicate names the held states, applies). Every such
literal is written here from the transitions table: the state machine has one owner.
"""

from __future__ import annotations

from collections.abc import Iterable

from flux.domain import (
    FINISHED_STATES,
    HELD_STATES,
    QUEUED_STATES,
    SETTLED_STATES,
    TRANSITIONS,
    WORKFLOW_EVENT_STATE,
    ExecutionState,
    Trigger,
)

__all__ = [
    "BUSY",
    "CLAIMED",
    "FINISHED",
    "HELD",
    "PROGRESS_MOVES",
    "PROGRESS_ONLY",
    "QUEUED",
    "RECLAIMABLE",
    "RELEASED_TO",
    "SETTLED",
    "STRAIGHT",
    "one",
    "quoted",
    "values",
]


def values(states: Iterable[ExecutionState]) -> list[str]:
    """The values of ``states`` in declaration order (statements built alike read alike)."""
    wanted = set(states)
    return [s.value for s in ExecutionState if s in wanted]


def quoted(states: Iterable[ExecutionState | str]) -> str:
    """SQL literals for an ``IN (...)`` list."""
    return ", ".join(f"'{ExecutionState(s).value}'" for s in states)


def one(states: Iterable[ExecutionState | str]) -> str:
    """The SQL literal of the only state in ``states``."""
    (state,) = states
    return quoted([state])


HELD = values(HELD_STATES)
"""A worker holds the execution: it counts toward that worker's load."""
QUEUED = values(QUEUED_STATES)
"""The execution waits for a worker: it may be offered and claimed."""
FINISHED = values(FINISHED_STATES)
SETTLED = frozenset(SETTLED_STATES)
"""A run ended here (finished or paused): capacity freed, waiters told."""
BUSY = values(HELD_STATES | QUEUED_STATES)
"""Unfinished and holding a worker or waiting for one (a paused execution waits for a person)."""

(CLAIMED,) = {TRANSITIONS[s][Trigger.CLAIM] for s in QUEUED_STATES}
"""The state a claim leaves an execution in."""
RECLAIMABLE = values(s for s in HELD_STATES if Trigger.CLAIM in TRANSITIONS[s])
"""Held states whose holder may claim the execution again (a retry after a lost answer)."""
RELEASED_TO = {
    target: values(s for s in HELD_STATES if TRANSITIONS[s][Trigger.RELEASE] == target)
    for target in {TRANSITIONS[s][Trigger.RELEASE] for s in HELD_STATES}
}
"""The held states a release (or the holder's death) moves to each state."""

STRAIGHT = values(
    s
    for s in HELD_STATES
    if all(TRANSITIONS[s].get(event) == state for event, state in WORKFLOW_EVENT_STATE.items())
)
"""Held states that each workflow-level event moves to the state it reports: a checkpoint
moves them without looking further (the PostgreSQL checkpoint statement)."""
PROGRESS_ONLY = [s for s in HELD if s not in STRAIGHT]
"""Held states a checkpoint moves alike only when it reports no workflow-level event."""
PROGRESS_MOVES = {
    s: TRANSITIONS[ExecutionState(s)][Trigger.PROGRESS].value
    for s in HELD
    if TRANSITIONS[ExecutionState(s)].get(Trigger.PROGRESS, s) != s
}
"""Held states that events alone move, and where to (a claimed execution starts running)."""
