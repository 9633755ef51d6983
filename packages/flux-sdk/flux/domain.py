"""The nouns every package shares: execution states, event types and the event record."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "FINISHED_STATES",
    "EventType",
    "ExecutionEvent",
    "ExecutionState",
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


FINISHED_STATES = frozenset(
    {ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.CANCELLED}
)


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
