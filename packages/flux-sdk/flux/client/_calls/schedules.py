"""Calls for schedules: list, read, create, update in place, pause, resume, delete, history."""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import Any

from flux.client._calls._base import (
    JSON,
    Call,
    json_body,
    parse_list,
    parse_model,
    seg,
)
from flux.errors import UsageError
from flux.protocol import (
    CreateScheduleRequest,
    ScheduleDeleted,
    ScheduleInfo,
    ScheduleRun,
    UpdateScheduleRequest,
)
from flux.schedules import Schedule

__all__ = [
    "KEEP",
    "Keep",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "pause_schedule",
    "resume_schedule",
    "schedule_history",
    "update_schedule",
]


# -- schedules -----------------------------------------------------------------------------------


def list_schedules(workflow_id: str | None, active_only: bool) -> Call[list[ScheduleInfo]]:
    params = {"active_only": "true" if active_only else "false"}
    if workflow_id is not None:
        params["workflow_id"] = workflow_id
    return Call("GET", "/schedules", parse_list(ScheduleInfo), params=params)


def get_schedule(schedule_id: str) -> Call[ScheduleInfo]:
    return Call("GET", f"/schedules/{seg(schedule_id)}", parse_model(ScheduleInfo))


def _schedule_config(value: Mapping[str, Any] | Schedule) -> dict[str, Any]:
    if isinstance(value, Schedule):
        return value.to_config()
    if isinstance(value, Mapping):
        return dict(value)
    raise UsageError(
        "schedule_config must be a Schedule (cron(...), interval(...), once(...)) or its "
        f"config mapping, got {value!r}"
    )


def create_schedule(
    workflow_name: str,
    name: str,
    schedule_config: Mapping[str, Any] | Schedule,
    description: str | None,
    input: Any,
) -> Call[ScheduleInfo]:
    body = CreateScheduleRequest(
        workflow_name=workflow_name,
        name=name,
        schedule_config=_schedule_config(schedule_config),
        description=description,
        input=input,
    )
    return Call(
        "POST",
        "/schedules",
        parse_model(ScheduleInfo),
        content=json_body(body.model_dump(mode="json"), "schedule"),
        content_type=JSON,
    )


class Keep(Enum):
    """The default of an update's arguments: leave that field as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


def update_schedule(schedule_id: str, changes: Mapping[str, Any]) -> Call[ScheduleInfo]:
    """``changes``: field name to new value, :data:`KEEP` for a field left as it is."""
    given = {key: value for key, value in changes.items() if value is not KEEP}
    if not given:
        raise UsageError(
            "nothing to change: give one or more of schedule_config, timezone, input, "
            "description, catch_up"
        )
    if "schedule_config" in given:
        given["schedule_config"] = _schedule_config(given["schedule_config"])
    body = UpdateScheduleRequest(**given)
    return Call(
        "PATCH",
        f"/schedules/{seg(schedule_id)}",
        parse_model(ScheduleInfo),
        content=json_body(body.model_dump(mode="json", exclude_unset=True), "schedule update"),
        content_type=JSON,
        idempotent=True,
    )


def pause_schedule(schedule_id: str) -> Call[ScheduleInfo]:
    return Call(
        "POST", f"/schedules/{seg(schedule_id)}/pause", parse_model(ScheduleInfo), idempotent=True
    )


def resume_schedule(schedule_id: str) -> Call[ScheduleInfo]:
    return Call(
        "POST", f"/schedules/{seg(schedule_id)}/resume", parse_model(ScheduleInfo), idempotent=True
    )


def delete_schedule(schedule_id: str) -> Call[ScheduleDeleted]:
    return Call("DELETE", f"/schedules/{seg(schedule_id)}", parse_model(ScheduleDeleted))


def schedule_history(schedule_id: str, limit: int) -> Call[list[ScheduleRun]]:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"limit must be a positive whole number, got {limit!r}")
    return Call(
        "GET",
        f"/schedules/{seg(schedule_id)}/history",
        parse_list(ScheduleRun),
        params={"limit": str(limit)},
    )
