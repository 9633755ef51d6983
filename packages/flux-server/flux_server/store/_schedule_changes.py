"""When a schedule fires first, and what an update (``PATCH /schedules/{id}``) makes of a stored
schedule: pure functions of the row read; :mod:`flux_server.store.schedules` writes the result.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flux.errors import InvalidScheduleError
from flux.protocol import ScheduleState, UpdateScheduleRequest
from flux.schedules import OnceSchedule, Schedule, schedule_from_config

__all__ = ["SCHEDULE_FIELDS", "due_text", "edited_schedule", "first_run", "update_values"]

SCHEDULE_FIELDS = frozenset({"schedule_config", "timezone"})
"""The fields of an update that change the timing."""


def first_run(schedule: Schedule, now: datetime, once_tolerance: float) -> datetime | None:
    """When a new (resumed, updated) schedule fires first; ``None`` when a ``once`` schedule's
    time is more than ``once_tolerance`` seconds past (one less late than that fires at once)."""
    if isinstance(schedule, OnceSchedule):
        late = now - schedule.run_at
        return schedule.run_at if late <= timedelta(seconds=once_tolerance) else None
    return schedule.next_run_after(now)


def due_text(schedule: Schedule) -> str:
    """When ``schedule`` is due, for a message."""
    return schedule.run_at.isoformat() if isinstance(schedule, OnceSchedule) else str(schedule)


def update_values(
    row: Any, request: UpdateScheduleRequest, now: datetime, once_tolerance: float
) -> dict[str, Any]:
    """The columns ``request`` changes in the schedule ``row``. A changed timing fires next at
    its first time after ``now``, not after the last run (a paused schedule stays paused, a
    completed one is active again); the same timing again changes nothing.

    Raises:
        InvalidScheduleError: see :func:`edited_schedule`; or a ``once`` time more than
            ``once_tolerance`` seconds past.
    """
    given = request.model_fields_set
    values: dict[str, Any] = {key: getattr(request, key) for key in given - SCHEDULE_FIELDS}
    if not given & SCHEDULE_FIELDS:
        return values
    schedule = edited_schedule(row.schedule, request)
    if schedule.to_config() == row.schedule:
        return values
    next_run_at = first_run(schedule, now, once_tolerance)
    if next_run_at is None:
        raise InvalidScheduleError(
            f"run_at {due_text(schedule)} is in the past; give a future time"
        )
    values["schedule"] = schedule.to_config()
    if row.state != ScheduleState.PAUSED:
        values.update(state=ScheduleState.ACTIVE.value, next_run_at=next_run_at)
    return values


def edited_schedule(stored: dict[str, Any], request: UpdateScheduleRequest) -> Schedule:
    """The schedule ``request`` makes of the ``stored`` config: its ``schedule_config`` (else
    the stored one) in its ``timezone`` (else the config's own, else the zone the schedule has
    now).

    Raises:
        InvalidScheduleError: the result is invalid, or two different zones are given, or a
            zone alone for a ``once`` schedule (it runs at one instant, whatever the zone).
    """
    given = request.model_fields_set
    zone = request.timezone if "timezone" in given else None
    if "schedule_config" in given:
        assert request.schedule_config is not None
        config = dict(request.schedule_config)
        own = config.get("timezone")
        if zone is not None and own is not None and own != zone:
            raise InvalidScheduleError(
                f"timezone {zone!r} and schedule_config's timezone {own!r} differ; give one"
            )
        zone = zone or own or stored.get("timezone")
    else:
        config = dict(stored)
        if stored.get("type") == "once":
            raise InvalidScheduleError(
                "a once schedule runs at one instant and has no time zone to change; give "
                "schedule_config with the new run_at (a time without an offset is read in "
                "timezone)"
            )
    if zone is not None:
        config["timezone"] = zone
    return schedule_from_config(config)
