"""The nouns every package shares: execution states, event types, the state machine and the
event record."""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "FINISHED_STATES",
    "HELD_STATES",
    "MAX_MEMORY_BYTES",
    "MAX_MEMORY_NAME",
    "MAX_PROGRESS_BYTES",
    "QUEUED_STATES",
    "SETTLED_STATES",
    "TRANSITIONS",
    "WORKFLOW_EVENT_STATE",
    "EventType",
    "ExecutionEvent",
    "ExecutionState",
    "Trigger",
    "move",
    "new_event_id",
    "utcnow",
]


class ExecutionState(StrEnum):
    """Where an execution is in its life. Read from the last workflow-level event."""

    CREATED = "CREATED"  # stored, not yet handed to anyone
    SCHEDULED = "SCHEDULED"  # offered to workers
    CLAIMED = "CLAIMED"  # a worker holds it, not started yet
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    RESUMING = "RESUMING"  # resume requested, waiting for a worker
    CANCELLING = "CANCELLING"  # cancel requested, waiting for the runner to unwind
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class EventType(StrEnum):
    WORKFLOW_STARTED = "WORKFLOW_STARTED"
    WORKFLOW_PAUSED = "WORKFLOW_PAUSED"
    WORKFLOW_RESUMED = "WORKFLOW_RESUMED"
    WORKFLOW_COMPLETED = "WORKFLOW_COMPLETED"
    WORKFLOW_FAILED = "WORKFLOW_FAILED"
    WORKFLOW_CANCELLED = "WORKFLOW_CANCELLED"
    TASK_STARTED = "TASK_STARTED"
    TASK_COMPLETED = "TASK_COMPLETED"
    TASK_FAILED = "TASK_FAILED"
    TASK_RETRY_STARTED = "TASK_RETRY_STARTED"
    TASK_RETRY_COMPLETED = "TASK_RETRY_COMPLETED"
    TASK_RETRY_FAILED = "TASK_RETRY_FAILED"
    TASK_FALLBACK_STARTED = "TASK_FALLBACK_STARTED"
    TASK_FALLBACK_COMPLETED = "TASK_FALLBACK_COMPLETED"
    TASK_FALLBACK_FAILED = "TASK_FALLBACK_FAILED"
    TASK_ROLLBACK_STARTED = "TASK_ROLLBACK_STARTED"
    TASK_ROLLBACK_COMPLETED = "TASK_ROLLBACK_COMPLETED"
    TASK_ROLLBACK_FAILED = "TASK_ROLLBACK_FAILED"
    TASK_PAUSED = "TASK_PAUSED"
    TASK_CANCELLED = "TASK_CANCELLED"

    @property
    def is_workflow(self) -> bool:
        return self in WORKFLOW_EVENTS


EVENT_TYPES: dict[str, EventType] = {t.value: t for t in EventType}
"""Each event type by its name: reading a stored history looks them up here, far cheaper
than ``EventType(name)`` (an enum call costs a few microseconds a time)."""

WORKFLOW_EVENTS = frozenset(t for t in EventType if t.value.startswith("WORKFLOW_"))
"""Workflow-level event types (a set lookup is cheaper than :attr:`EventType.is_workflow`)."""


WORKFLOW_EVENT_STATE: dict[EventType, ExecutionState] = {
    EventType.WORKFLOW_STARTED: ExecutionState.RUNNING,
    EventType.WORKFLOW_RESUMED: ExecutionState.RUNNING,
    EventType.WORKFLOW_PAUSED: ExecutionState.PAUSED,
    EventType.WORKFLOW_COMPLETED: ExecutionState.COMPLETED,
    EventType.WORKFLOW_FAILED: ExecutionState.FAILED,
    EventType.WORKFLOW_CANCELLED: ExecutionState.CANCELLED,
}
"""The state each workflow-level event reports: a run's own account of where it is."""


class Trigger(StrEnum):
    """What moves an execution besides the workflow-level events its run reports."""

    CLAIM = "claim"  # a worker takes it (or its holder takes it again, before it starts)
    PROGRESS = "progress"  # its worker reports events, none of them workflow-level
    RELEASE = "release"  # its worker lets go of it, or is declared dead
    CANCEL = "cancel"  # a client cancels it
    RESUME = "resume"  # a client resumes it (the server queues it again)


_S = ExecutionState
_E = EventType
_REPORTED: dict[Trigger | EventType, ExecutionState] = {
    e: s for e, s in WORKFLOW_EVENT_STATE.items()
}

TRANSITIONS: Mapping[ExecutionState, Mapping[Trigger | EventType, ExecutionState]] = {
    # A local run's new execution (a server queues new executions as SCHEDULED).
    _S.CREATED: {**_REPORTED, Trigger.CANCEL: _S.CANCELLED},
    _S.SCHEDULED: {Trigger.CLAIM: _S.CLAIMED, Trigger.CANCEL: _S.CANCELLED},
    _S.CLAIMED: {
        **_REPORTED,
        Trigger.CLAIM: _S.CLAIMED,
        Trigger.PROGRESS: _S.RUNNING,
        Trigger.RELEASE: _S.SCHEDULED,
        Trigger.CANCEL: _S.CANCELLING,
    },
    _S.RUNNING: {
        **_REPORTED,
        Trigger.RELEASE: _S.SCHEDULED,
        Trigger.CANCEL: _S.CANCELLING,
    },
    # A local run resumes from here, reporting WORKFLOW_RESUMED; a server queues it first.
    _S.PAUSED: {**_REPORTED, Trigger.RESUME: _S.SCHEDULED, Trigger.CANCEL: _S.CANCELLED},
    _S.RESUMING: {**_REPORTED, Trigger.CANCEL: _S.CANCELLED},  # written by no component today
    # The run was asked to unwind: it may still finish on its own, and one that pauses
    # instead ends cancelled; one that reports it runs stays cancelling.
    _S.CANCELLING: {
        _E.WORKFLOW_STARTED: _S.CANCELLING,
        _E.WORKFLOW_RESUMED: _S.CANCELLING,
        _E.WORKFLOW_PAUSED: _S.CANCELLED,
        _E.WORKFLOW_COMPLETED: _S.COMPLETED,
        _E.WORKFLOW_FAILED: _S.FAILED,
        _E.WORKFLOW_CANCELLED: _S.CANCELLED,
        Trigger.RELEASE: _S.CANCELLED,
        Trigger.CANCEL: _S.CANCELLING,
    },
    _S.COMPLETED: {},
    _S.FAILED: {},
    _S.CANCELLED: {},
}
"""The execution state machine: each state, and where each trigger or reported workflow-level
event moves it. What is missing is not allowed in that state (a finished execution never
moves); a checkpoint's events alone leave a state without a ``PROGRESS`` entry as it is. The
server's statements spell their state lists from this table (``flux_server.store._states``)."""


def move(state: ExecutionState, trigger: Trigger | EventType) -> ExecutionState | None:
    """Where ``trigger`` moves an execution in ``state``; ``None`` when it is not allowed."""
    return TRANSITIONS[state].get(trigger)


def _states(
    predicate: Callable[[ExecutionState, Mapping[Trigger | EventType, ExecutionState]], bool],
) -> frozenset[ExecutionState]:
    return frozenset(s for s in ExecutionState if predicate(s, TRANSITIONS[s]))


FINISHED_STATES = _states(lambda s, moves: not moves)
"""States an execution never leaves."""
HELD_STATES = _states(lambda s, moves: Trigger.RELEASE in moves)
"""States in which a worker holds the execution (it counts toward that worker's load)."""
QUEUED_STATES = _states(lambda s, moves: Trigger.CLAIM in moves and s not in HELD_STATES)
"""States in which an execution waits for a worker to claim it."""
SETTLED_STATES = frozenset(
    target
    for held in HELD_STATES
    for trigger, target in TRANSITIONS[held].items()
    if trigger in WORKFLOW_EVENT_STATE and target not in HELD_STATES
)
"""States a run ends in, finished or paused: its worker no longer holds it."""


MAX_MEMORY_BYTES = 64 * 1024
"""The largest value ``flux.memory`` keeps, as JSON text in UTF-8."""
MAX_MEMORY_NAME = 256
"""The longest scope or key of ``flux.memory``, in characters."""
MAX_PROGRESS_BYTES = 64 * 1024
"""The largest value ``flux.tasks.progress`` publishes, as JSON text in UTF-8."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def _new_prefix() -> None:
    global _prefix, _counter
    _prefix = os.urandom(8).hex()
    _counter = itertools.count()


_prefix = ""
_counter = itertools.count()
_new_prefix()
os.register_at_fork(after_in_child=_new_prefix)


def new_event_id() -> str:
    """Unique across processes (a random 64-bit prefix per process, then a counter), so that
    events written by a replacement worker never collide with lost ones; cheaper than
    drawing random bytes for every event."""
    return f"{_prefix}{next(_counter):x}"


@dataclass(slots=True)
class ExecutionEvent:
    """One entry of an execution's append-only log.

    ``source_id`` is the task identity (``name:argshash:occurrence``) or the workflow's execution
    id; ``scope`` is the identity of the task whose body made the call ("" at the workflow's top
    level), which lets replay check call order per scope even when branches interleave.
    """

    type: EventType
    source_id: str
    name: str
    value: Any = None
    time: datetime = field(default_factory=utcnow)
    id: str = field(default_factory=new_event_id)
    scope: str = ""
