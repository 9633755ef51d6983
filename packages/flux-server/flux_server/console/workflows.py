"""``/console/workflows``: registered workflows, one with its versions, options, schedules,
latest executions and source (shown as text, never run or interpreted), and a form that runs
it with a JSON input."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from flux.errors import UsageError
from flux.observability import TRACEPARENT
from starlette.responses import Response

from flux_server.console._render import render_page, see_other
from flux_server.console._route import console_router, form_text, json_field, runtime_of
from flux_server.store import listing

__all__ = ["router"]

router = console_router()

RECENT = 10
"""Executions a workflow's page lists (a link opens all of them)."""


@router.get("/workflows")
async def workflows_page(request: Request) -> Response:
    runtime = runtime_of(request)
    workflows = await runtime.workflows.list()
    return render_page(request, "workflows.html", nav="workflows", workflows=workflows)


async def _page(
    request: Request, name: str, input_text: str = "", error: str | None = None, code: int = 200
) -> Response:
    runtime = runtime_of(request)
    workflow = await runtime.workflows.get(name)
    recent = await listing.page(runtime.db, listing.ExecutionFilters(workflow=name), RECENT)
    schedules = await runtime.schedules.list(name)
    return render_page(
        request,
        "workflow.html",
        code,
        nav="workflows",
        workflow=workflow,
        recent=recent.items,
        counts=recent.counts,
        schedules=schedules,
        input_text=input_text,
        error=error,
    )


@router.get("/workflows/{name}")
async def workflow_page(name: str, request: Request) -> Response:
    return await _page(request, name)


@router.post("/workflows/{name}/run")
async def run(name: str, request: Request) -> Any:
    runtime = runtime_of(request)
    text = await form_text(request, "input")
    try:
        value = json_field(text, "the input")
    except UsageError as exc:
        return await _page(request, name, text, exc.message, 400)
    workflow = await runtime.workflows.latest(name)
    status = await runtime.executions.create(
        workflow, value, caller_trace=request.headers.get(TRACEPARENT)
    )
    return see_other(
        request,
        f"/console/executions/{status.execution_id}",
        f"started {name} as {status.execution_id}",
    )
