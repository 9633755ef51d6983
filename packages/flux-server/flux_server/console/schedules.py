"""``/console/schedules``: every schedule, one with its run history, and forms that create,
edit, pause, resume and delete them through :class:`~flux_server.store.schedules.ScheduleStore`
as the API does. A form the store refuses comes back with its fields as typed and the reason.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import Request
from flux.errors import UsageError
from flux.protocol import CreateScheduleRequest, ScheduleInfo, UpdateScheduleRequest
from flux.schedules import schedule_from_config
from pydantic import ValidationError
from starlette.responses import Response

from flux_server.console._render import render_page, see_other
from flux_server.console._route import console_router, json_field, runtime_of
from flux_server.console.executions import safe_back

__all__ = ["router"]

router = console_router()

HISTORY = 50
"""Runs a schedule's page lists."""
KINDS = ("cron", "interval", "once")
_FIELDS = (
    "name",
    "workflow",
    "kind",
    "cron_expression",
    "interval_seconds",
    "run_at",
    "timezone",
    "input",
    "description",
    "catch_up",
)


def _url(schedule: ScheduleInfo) -> str:
    return f"/console/schedules/{quote(schedule.id, safe='')}"


@router.get("/schedules")
async def schedules_page(request: Request) -> Response:
    schedules = await runtime_of(request).schedules.list()
    return render_page(request, "schedules.html", nav="schedules", schedules=schedules)


def _fields_of(schedule: ScheduleInfo | None) -> dict[str, str]:
    """A schedule as the form's fields (blank for a new one)."""
    fields = dict.fromkeys(_FIELDS, "")
    fields.update(kind="cron", timezone="UTC")
    if schedule is None:
        return fields
    config = schedule.schedule_config
    fields.update(
        name=schedule.name,
        workflow=schedule.workflow_name,
        kind=str(config.get("type", "cron")),
        cron_expression=str(config.get("cron_expression") or ""),
        interval_seconds=str(config.get("interval_seconds") or ""),
        run_at=str(config.get("run_at") or ""),
        timezone=str(config.get("timezone") or "UTC"),
        input="" if schedule.input is None else _json(schedule.input),
        description=schedule.description or "",
        catch_up=schedule.catch_up or "",
    )
    return fields


def _json(value: Any) -> str:
    return json.dumps(value, indent=2)


def _problem(exc: UsageError | ValidationError) -> str:
    if isinstance(exc, UsageError):
        return exc.message
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def _config(fields: dict[str, str]) -> dict[str, Any]:
    """The ``schedule_config`` the form's fields describe.

    Raises:
        UsageError: a kind that is not one, or an interval that is not a number.
    """
    kind = fields["kind"]
    if kind == "cron":
        return {
            "type": "cron",
            "cron_expression": fields["cron_expression"].strip(),
            "timezone": fields["timezone"].strip() or "UTC",
        }
    if kind == "interval":
        seconds = fields["interval_seconds"].strip()
        if not seconds.isdigit():
            raise UsageError(f"the interval must be a whole number of seconds, not {seconds!r}")
        return {
            "type": "interval",
            "interval_seconds": int(seconds),
            "timezone": fields["timezone"].strip() or "UTC",
        }
    if kind == "once":
        return {
            "type": "once",
            "run_at": fields["run_at"].strip(),
            "timezone": fields["timezone"].strip() or "UTC",
        }
    raise UsageError(f"unknown schedule kind {kind!r}; use one of {', '.join(KINDS)}")


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v if isinstance(v := form.get(k), str) else "" for k in _FIELDS}


async def _form_page(
    request: Request,
    fields: dict[str, str],
    schedule: ScheduleInfo | None = None,
    error: str | None = None,
    code: int = 200,
) -> Response:
    runtime = runtime_of(request)
    history = await runtime.schedules.history(schedule.id, HISTORY) if schedule else []
    workflows = [w.name for w in await runtime.workflows.list()] if schedule is None else []
    return render_page(
        request,
        "schedule.html",
        code,
        nav="schedules",
        schedule=schedule,
        history=history,
        fields=fields,
        kinds=KINDS,
        workflows=workflows,
        error=error,
        url=_url(schedule) if schedule else None,
    )


@router.get("/schedules/new")
async def new_schedule(request: Request) -> Response:
    fields = _fields_of(None)
    fields["workflow"] = request.query_params.get("workflow", "")
    return await _form_page(request, fields)


@router.post("/schedules/new")
async def create(request: Request) -> Response:
    fields = await _form(request)
    try:
        body = CreateScheduleRequest(
            workflow_name=fields["workflow"],
            name=fields["name"].strip(),
            schedule_config=_config(fields),
            description=fields["description"] or None,
            input=json_field(fields["input"], "the input"),
        )
        catch_up = UpdateScheduleRequest.model_validate({"catch_up": fields["catch_up"] or None})
        created = await runtime_of(request).schedules.create(body)
        if catch_up.catch_up is not None:  # a policy of its own: the create takes none
            created = await runtime_of(request).schedules.update(created.id, catch_up)
    except (UsageError, ValidationError) as exc:
        return await _form_page(request, fields, error=_problem(exc), code=400)
    return see_other(request, _url(created), f"created schedule {created.name!r}")


@router.get("/schedules/{schedule_id}")
async def schedule_page(schedule_id: str, request: Request) -> Response:
    schedule = await runtime_of(request).schedules.get(schedule_id)
    return await _form_page(request, _fields_of(schedule), schedule)


@router.post("/schedules/{schedule_id}")
async def edit(schedule_id: str, request: Request) -> Response:
    runtime = runtime_of(request)
    schedule = await runtime.schedules.get(schedule_id)
    fields = await _form(request)
    fields.update(name=schedule.name, workflow=schedule.workflow_name)
    try:
        changes: dict[str, Any] = {}
        config = schedule_from_config(_config(fields)).to_config()
        if config != schedule_from_config(schedule.schedule_config).to_config():
            changes["schedule_config"] = config
        value = json_field(fields["input"], "the input")
        if value != schedule.input:
            changes["input"] = value
        if (fields["description"] or None) != schedule.description:
            changes["description"] = fields["description"] or None
        if (fields["catch_up"] or None) != schedule.catch_up:
            changes["catch_up"] = fields["catch_up"] or None
        if not changes:
            return see_other(request, _url(schedule), "nothing changed")
        await runtime.schedules.update(schedule.id, UpdateScheduleRequest.model_validate(changes))
    except (UsageError, ValidationError) as exc:
        return await _form_page(request, fields, schedule, _problem(exc), 400)
    return see_other(request, _url(schedule), f"saved schedule {schedule.name!r}")


async def _back(request: Request, schedule: ScheduleInfo) -> str:
    """Where a pause or resume form goes back to: the list it was sent from, or the
    schedule's page."""
    back = (await request.form()).get("back")
    return safe_back(back if isinstance(back, str) else None, _url(schedule))


@router.post("/schedules/{schedule_id}/pause")
async def pause(schedule_id: str, request: Request) -> Response:
    schedule = await runtime_of(request).schedules.pause(schedule_id)
    return see_other(request, await _back(request, schedule), f"paused schedule {schedule.name!r}")


@router.post("/schedules/{schedule_id}/resume")
async def resume(schedule_id: str, request: Request) -> Response:
    schedule = await runtime_of(request).schedules.resume(schedule_id)
    back = await _back(request, schedule)
    return see_other(request, back, f"resumed schedule {schedule.name!r}")


@router.get("/schedules/{schedule_id}/delete")
async def confirm_delete(schedule_id: str, request: Request) -> Response:
    schedule = await runtime_of(request).schedules.get(schedule_id)
    return render_page(
        request, "delete_schedule.html", nav="schedules", schedule=schedule, url=_url(schedule)
    )


@router.post("/schedules/{schedule_id}/delete")
async def delete(schedule_id: str, request: Request) -> Response:
    deleted = await runtime_of(request).schedules.delete(schedule_id)
    return see_other(request, "/console/schedules", f"deleted schedule {deleted.name!r}")
