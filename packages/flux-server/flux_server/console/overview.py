"""``/console``: what the fleet is doing at a glance: executions per state, the latest ones
and the latest failures, workers and their load, schedules."""

from __future__ import annotations

from fastapi import Request
from flux.domain import ExecutionState
from flux.protocol import ScheduleState
from starlette.responses import Response

from flux_server.console._render import render_page
from flux_server.console._route import console_router, runtime_of
from flux_server.store import listing

__all__ = ["router"]

router = console_router()

RECENT = 10


@router.get("")
async def overview(request: Request) -> Response:
    runtime = runtime_of(request)
    latest = await listing.page(runtime.db, listing.ExecutionFilters(), RECENT)
    failed = await listing.page(
        runtime.db, listing.ExecutionFilters(states=(ExecutionState.FAILED,)), 5
    )
    workers = await runtime.workers.list()
    schedules = await runtime.schedules.list()
    workflows = await runtime.workflows.list()
    return render_page(
        request,
        "overview.html",
        nav="overview",
        counts=latest.counts,
        total=sum(latest.counts.values()),
        latest=latest.items,
        failed=failed.items,
        workers=workers,
        connected=[w for w in workers if w.connected],
        schedules=schedules,
        active=[s for s in schedules if s.state == ScheduleState.ACTIVE],
        workflows=len(workflows),
        states=list(ExecutionState),
    )
