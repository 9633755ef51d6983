"""Schedule tools: ``list_schedules``, ``create_schedule``, ``pause_schedule``,
``resume_schedule``, ``delete_schedule`` and ``get_schedule_history``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from flux.errors import UsageError
from flux.schedules import Schedule, cron, interval, once
from pydantic import Field

from flux_mcp.errors import flux_errors
from flux_mcp.results import (
    ScheduleDeletion,
    ScheduleHistory,
    ScheduleList,
    ScheduleResult,
    ScheduleRunInfo,
)
from flux_mcp.tools._box import READ, Toolbox, changes
from flux_mcp.tools.workflows import WorkflowName

__all__ = ["register"]

ScheduleRef = Annotated[
    str, Field(min_length=1, description="the schedule's name or id (see list_schedules)")
]


def _schedule_of(
    cron_expression: str | None,
    interval_seconds: float | None,
    run_at: datetime | None,
    timezone: str,
) -> Schedule:
    given = [v for v in (cron_expression, interval_seconds, run_at) if v is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of cron, interval_seconds and run_at")
    if cron_expression is not None:
        return cron(cron_expression, timezone=timezone)
    if interval_seconds is not None:
        return interval(seconds=interval_seconds, timezone=timezone)
    assert run_at is not None
    return once(run_at)


def register(box: Toolbox) -> None:
    flux = box.flux

    async def list_schedules(
        workflow_name: Annotated[
            str | None, Field(min_length=1, description="only this workflow's schedules")
        ] = None,
        active_only: Annotated[
            bool, Field(description="leave out paused and completed schedules")
        ] = False,
    ) -> ScheduleList:
        """List the schedules that run workflows, with their next run and counters."""
        with flux_errors():
            found = await flux.list_schedules(workflow_name, active_only=active_only)
        return ScheduleList(schedules=[ScheduleResult.of(s) for s in found])

    async def create_schedule(
        workflow_name: WorkflowName,
        name: Annotated[str, Field(min_length=1, description="a unique name for the schedule")],
        cron: Annotated[
            str | None,
            Field(description="a five-field cron expression, e.g. '0 9 * * MON-FRI'"),
        ] = None,
        interval_seconds: Annotated[
            float | None, Field(gt=0, description="run every this many seconds")
        ] = None,
        run_at: Annotated[
            datetime | None, Field(description="run once at this time (ISO 8601; UTC if naive)")
        ] = None,
        timezone: Annotated[
            str, Field(description="the IANA zone cron and interval times are read in")
        ] = "UTC",
        input: Annotated[Any, Field(description="the input of every run: any JSON value")] = None,
        description: str | None = None,
    ) -> ScheduleResult:
        """Run a workflow on a schedule: give exactly one of cron, interval_seconds or
        run_at."""
        with flux_errors():
            schedule = _schedule_of(cron, interval_seconds, run_at, timezone)
            info = await flux.create_schedule(
                workflow_name, name, schedule, description=description, input=input
            )
        return ScheduleResult.of(info)

    async def pause_schedule(schedule: ScheduleRef) -> ScheduleResult:
        """Stop a schedule from firing until it is resumed."""
        with flux_errors():
            return ScheduleResult.of(await flux.pause_schedule(schedule))

    async def resume_schedule(schedule: ScheduleRef) -> ScheduleResult:
        """Let a paused schedule fire again, from its next time after now."""
        with flux_errors():
            return ScheduleResult.of(await flux.resume_schedule(schedule))

    async def delete_schedule(schedule: ScheduleRef) -> ScheduleDeletion:
        """Delete a schedule and its history; the executions it started are kept."""
        with flux_errors():
            gone = await flux.delete_schedule(schedule)
        return ScheduleDeletion(id=gone.id, name=gone.name, deleted=gone.deleted)

    async def get_schedule_history(
        schedule: ScheduleRef,
        limit: Annotated[int, Field(ge=1, le=200, description="runs to show")] = 20,
    ) -> ScheduleHistory:
        """Show a schedule's latest runs, newest first: when each was due, the execution it
        started and how that ended."""
        with flux_errors():
            runs = await flux.schedule_history(schedule, limit=limit)
        return ScheduleHistory(runs=[ScheduleRunInfo.of(r) for r in runs])

    box.add(list_schedules, title="List schedules", annotations=READ)
    box.add(
        create_schedule,
        title="Create a schedule",
        annotations=changes(destructive=False, idempotent=False, runs_code=True),
    )
    box.add(
        pause_schedule,
        title="Pause a schedule",
        annotations=changes(destructive=False, idempotent=True),
    )
    box.add(
        resume_schedule,
        title="Resume a schedule",
        annotations=changes(destructive=False, idempotent=True),
    )
    box.add(
        delete_schedule,
        title="Delete a schedule",
        annotations=changes(destructive=True, idempotent=True),
    )
    box.add(get_schedule_history, title="Schedule history", annotations=READ)
