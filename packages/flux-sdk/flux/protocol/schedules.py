"""Schedules: ``/schedules`` and ``/schedules/{schedule_id}/...``.

- ``GET /schedules?workflow_id=&active_only=`` -> list of :class:`ScheduleInfo` (``workflow_id``
  is a workflow's name or the id of any of its versions).
- ``GET /schedules/{schedule_id}`` -> :class:`ScheduleInfo` (the id or the name).
- ``POST /schedules`` with :class:`CreateScheduleRequest` -> :class:`ScheduleInfo` (201); 400 for
  an invalid ``schedule_config`` (the message says why), 404 for an unknown workflow, 409 for a
  name already taken.
- ``POST /schedules/{schedule_id}/pause`` and ``/resume`` -> :class:`ScheduleInfo`.
- ``DELETE /schedules/{schedule_id}`` -> :class:`ScheduleDeleted`.
- ``GET /schedules/{schedule_id}/history?limit=50`` -> list of :class:`ScheduleRun`, newest first.

``schedule_config`` is the JSON shape of :mod:`flux.schedules` (``Schedule.to_config()``)::

    {"type": "cron", "cron_expression": "0 9 * * MON-FRI", "timezone": "UTC"}
    {"type": "interval", "interval_seconds": 3600, "timezone": "UTC", "start_at": None}
    {"type": "once", "run_at": "2030-01-01T09:00:00+00:00"}
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from flux.domain import ExecutionState
from flux.protocol._base import UtcDateTime, WireModel

__all__ = [
    "SCHEDULE_RUN_FAILURES",
    "CreateScheduleRequest",
    "ScheduleDeleted",
    "ScheduleInfo",
    "ScheduleRun",
    "ScheduleRunState",
    "ScheduleState",
]


class ScheduleState(StrEnum):
    ACTIVE = "active"
    """Fires at ``next_run_at``."""
    PAUSED = "paused"
    """Does not fire; resuming continues from the next time after the resume."""
    COMPLETED = "completed"
    """A ``once`` schedule that has had its run (or had it skipped)."""


class ScheduleRunState(StrEnum):
    """What became of one tick of a schedule."""

    STARTED = "started"
    """An execution was created and has not finished yet (see ``execution_state``)."""
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    """Ran longer than ``scheduling.execution_timeout`` and was cancelled (a failure)."""
    SKIPPED = "skipped"
    """Not run: too many executions of the schedule were unfinished, or the tick was missed
    while no server ran and ``scheduling.catch_up`` is ``"skip"`` (``error`` says which)."""
    ERROR = "error"
    """No execution could be created (e.g. the workflow is no longer registered)."""


SCHEDULE_RUN_FAILURES = frozenset(
    {ScheduleRunState.FAILED, ScheduleRunState.TIMED_OUT, ScheduleRunState.ERROR}
)
"""Run states counted in ``ScheduleInfo.failure_count``."""


class CreateScheduleRequest(WireModel):
    """``POST /schedules``: run ``workflow_name`` (its latest version) on ``schedule_config``,
    with ``input`` as the input of every execution."""

    workflow_name: str
    name: str
    schedule_config: dict[str, Any]
    description: str | None = None
    input: Any = None


class ScheduleInfo(WireModel):
    """A schedule. ``auto`` schedules were created from a workflow's ``schedule=`` option and
    follow it when the workflow is registered again."""

    id: str
    name: str
    workflow_name: str
    schedule_config: dict[str, Any]
    description: str | None = None
    input: Any = None
    state: ScheduleState
    auto: bool = False
    next_run_at: UtcDateTime | None = None
    last_run_at: UtcDateTime | None = None
    run_count: int = 0
    """Executions created by this schedule."""
    failure_count: int = 0
    """Runs that failed, timed out or could not start."""
    skip_count: int = 0
    created_at: UtcDateTime
    updated_at: UtcDateTime


class ScheduleRun(WireModel):
    """One tick of a schedule: when it was due, when it fired and what came of it."""

    id: str
    schedule_id: str
    execution_id: str | None = None
    scheduled_for: UtcDateTime
    fired_at: UtcDateTime
    state: ScheduleRunState
    execution_state: ExecutionState | None = None
    """The execution's state now (``None`` when no execution was created)."""
    finished_at: UtcDateTime | None = None
    error: str | None = None


class ScheduleDeleted(WireModel):
    id: str
    name: str
    deleted: bool = True
