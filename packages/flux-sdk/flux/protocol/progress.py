"""Progress (protocol 1.10): ephemeral values a running task publishes (``flux.tasks.progress``).

- ``POST /workers/{name}/progress/{execution_id}`` with :class:`ProgressBatch` ->
  :class:`ProgressResponse`: a worker hands over what the tasks of an execution it holds
  published, in order. Nothing is stored; the server sends each item to every open stream of
  that execution (on any replica) and drops it when there is none. 403 when the worker does
  not hold the execution, 413 when a value is over :data:`MAX_PROGRESS_BYTES` as JSON.
- Execution streams (``.../run/stream``, ``.../resume/{id}/stream``,
  ``GET /executions/{id}/stream``) carry each as a ``task.progress`` frame,
  :class:`TaskProgressFrame`, between their state frames. Clients that do not know the event
  skip it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from flux.domain import MAX_PROGRESS_BYTES
from flux.protocol._base import UtcDateTime, WireModel

__all__ = [
    "MAX_PROGRESS_BYTES",
    "PROGRESS_EVENT",
    "ProgressBatch",
    "ProgressItem",
    "ProgressResponse",
    "TaskProgressFrame",
    "parse_progress_frame",
]

PROGRESS_EVENT = "task.progress"


class ProgressItem(WireModel):
    """One published value."""

    task: str
    """The name of the task that published it (the workflow's name for the body)."""
    value: Any = None
    timestamp: UtcDateTime


class ProgressBatch(WireModel):
    """What the tasks of one execution published since the worker last sent, oldest first."""

    items: list[ProgressItem] = Field(min_length=1)


class ProgressResponse(WireModel):
    listening: bool
    """Whether anyone may be watching the execution: while not, a worker may hold back."""


class TaskProgressFrame(WireModel):
    """A ``task.progress`` frame on an execution stream."""

    EVENT: ClassVar[str] = PROGRESS_EVENT
    execution_id: str
    task: str
    value: Any = None
    timestamp: UtcDateTime


def parse_progress_frame(event: str, data: str) -> TaskProgressFrame | None:
    """The frame for a ``task.progress`` event; ``None`` for any other event."""
    if event != PROGRESS_EVENT:
        return None
    return TaskProgressFrame.model_validate_json(data)
