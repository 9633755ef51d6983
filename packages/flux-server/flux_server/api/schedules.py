"""``/schedules``: create, list, show, update, pause, resume and delete schedules, and their
history.

``{schedule_id}`` is a schedule's id or its name.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from flux.protocol import (
    CreateScheduleRequest,
    ScheduleDeleted,
    ScheduleInfo,
    ScheduleRun,
    UpdateScheduleRequest,
)
from starlette.responses import Response

from flux_server.api.deps import FluxRoute, RuntimeDep, model_response

__all__ = ["router"]

router = APIRouter(prefix="/schedules", tags=["schedules"], route_class=FluxRoute)


@router.get("", response_model=list[ScheduleInfo])
async def list_schedules(
    runtime: RuntimeDep,
    workflow_id: str | None = Query(
        None, description="Only this workflow's: its name or the id of one of its versions"
    ),
    active_only: bool = Query(False, description="Leave out paused and completed schedules"),
) -> list[ScheduleInfo]:
    """Every schedule, by name."""
    return await runtime.schedules.list(workflow_id, active_only)


@router.post("", response_model=ScheduleInfo, status_code=201)
async def create_schedule(body: CreateScheduleRequest, runtime: RuntimeDep) -> Response:
    """Run a workflow on a cron, interval or once schedule.

    400 when ``schedule_config`` is invalid (the message says why), 404 when the workflow is
    not registered, 409 when the name is taken.
    """
    return model_response(await runtime.schedules.create(body), 201)


@router.get("/{schedule_id}", response_model=ScheduleInfo)
async def get_schedule(schedule_id: str, runtime: RuntimeDep) -> ScheduleInfo:
    """A schedule with its next run time and counters."""
    return await runtime.schedules.get(schedule_id)


@router.patch("/{schedule_id}", response_model=ScheduleInfo)
async def update_schedule(
    schedule_id: str, body: UpdateScheduleRequest, runtime: RuntimeDep
) -> ScheduleInfo:
    """Change the fields given (schedule, time zone, input, description, catch-up policy) in
    place; the others, the counters and the history stay.

    A changed schedule fires next at its first time after now. 400 for an invalid change (the
    message says why) or an empty one, 422 for an unknown field, 404 for an unknown schedule.
    """
    return await runtime.schedules.update(schedule_id, body)


@router.post("/{schedule_id}/pause", response_model=ScheduleInfo)
async def pause_schedule(schedule_id: str, runtime: RuntimeDep) -> ScheduleInfo:
    """Stop firing until resumed (pausing a paused schedule changes nothing)."""
    return await runtime.schedules.pause(schedule_id)


@router.post("/{schedule_id}/resume", response_model=ScheduleInfo)
async def resume_schedule(schedule_id: str, runtime: RuntimeDep) -> ScheduleInfo:
    """Fire again from the next time after now; ticks missed while paused do not run."""
    return await runtime.schedules.resume(schedule_id)


@router.delete("/{schedule_id}", response_model=ScheduleDeleted)
async def delete_schedule(schedule_id: str, runtime: RuntimeDep) -> ScheduleDeleted:
    """Delete the schedule and its history; executions it started are kept."""
    return await runtime.schedules.delete(schedule_id)


@router.get("/{schedule_id}/history", response_model=list[ScheduleRun])
async def schedule_history(
    schedule_id: str,
    runtime: RuntimeDep,
    limit: int = Query(50, ge=1, le=1000, description="How many runs, newest first"),
) -> list[ScheduleRun]:
    """The schedule's latest runs: when each was due and fired, its execution and outcome."""
    return await runtime.schedules.history(schedule_id, limit)
