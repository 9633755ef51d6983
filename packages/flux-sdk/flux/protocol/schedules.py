"""Schedules: ``/schedules`` and ``/schedules/{schedule_id}/...``.

- ``GET /schedules?workflow_id=&active_only=`` -> list of :class:`ScheduleInfo` (``workflow_id``
  is a workflow's name or the id of any of its versions).
- ``GET /schedules/{schedule_id}`` -> :class:`ScheduleInfo` (the id or the name).
- ``POST /schedules`` with :class:`CreateScheduleRequest` -> :class:`ScheduleInfo` (201); 400 for
  an invalid ``schedule_config`` (the message says why), 404 for an unknown workflow, 409 for a
  name already taken.
- ``PATCH /schedules/{schedule_id}`` with :class:`UpdateScheduleRequest` -> :class:`ScheduleInfo`
  (protocol 1.6): change the fields given in place, keeping the history; 400 for an invalid
  change or one that changes nothing, 422 for an unknown field.
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
from typing import Any, Literal

from pydantic import ConfigDict, StrictInt

from flux.domain import ExecutionState
from flux.protocol._base import UtcDateTime, WireModel

__all__ = [
    "SCHEDULE_RUN_FAILURES",
    "CatchUpPolicy",
    "CreateScheduleRequest",
    "ScheduleDeleted",
    "ScheduleInfo",
    "ScheduleRun",
    "ScheduleRunState",
    "ScheduleState",
    "UpdateScheduleRequest",
]

CatchUpPolicy = Literal["once", "skip"]
"""What a schedule does with a tick it reaches late (missed while no server ran): ``"once"``
runs it once however many were missed, ``"skip"`` records it as skipped."""


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
    run_count: StrictInt = 0
    """Executions created by this schedule."""
    failure_count: StrictInt = 0
    """Runs that failed, timed out or could not start."""
    skip_count: StrictInt = 0
    catch_up: CatchUpPolicy | None = None
    """This schedule's catch-up policy; ``None``: the server's ``scheduling.catch_up``
    (protocol 1.6)."""
    created_at: UtcDateTime
    updated_at: UtcDateTime


class UpdateScheduleRequest(WireModel):
    """``PATCH /schedules/{schedule_id}``: change the fields given; absent ones stay as they
    are, and the schedule keeps its id, counters and history.

    ``schedule_config`` replaces the schedule (cron, interval or once); without a
    ``timezone`` key it keeps the schedule's current zone. ``timezone`` alone moves the current
    cron or interval schedule to another zone. A changed schedule fires next at its first time
    after now (a paused one stays paused). ``null`` clears ``description`` and ``input``, and
    sets ``catch_up`` back to the server's ``scheduling.catch_up``.

    Unlike other readers, the server refuses a field it does not know (422): a change it would
    drop must not look applied.
    """

    model_config = ConfigDict(extra="forbid")

    schedule_config: dict[str, Any] | None = None
    timezone: str | None = None
    input: Any = None
    description: str | None = None
    catch_up: CatchUpPolicy | None = None


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
