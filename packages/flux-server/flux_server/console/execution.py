"""``/console/executions/{id}``: one execution, its timeline and its events a page at a time,
live while it runs; cancel, rerun and a resume form for each waiting pause.

Live updates come over one Server-Sent Events stream per open page (``.../live``), each frame
the page's live part rendered again. The server sends one only when the execution changed
(its state, or its ``updated_at``, which every checkpoint moves), at most once a second; it
re-reads once a second while a worker runs the execution and otherwise waits for a state
change without reading. A finished execution's stream sends its last frame and ends; the page's
script closes the stream while its tab is hidden.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from flux.domain import FINISHED_STATES, EventType, ExecutionState, utcnow
from flux.errors import UsageError
from flux.protocol import ExecutionStatus
from starlette.responses import Response

from flux_server.console import timeline
from flux_server.console._render import render, render_page, see_other
from flux_server.console._route import console_router, form_text, json_field, runtime_of
from flux_server.console.executions import RERUNNABLE
from flux_server.runtime import Runtime
from flux_server.sse import event_stream
from flux_server.store import history

__all__ = ["EVENTS_PAGE", "router"]

router = console_router()

EVENTS_PAGE = 100
"""Events per page of the event list."""
LIVE_INTERVAL = 1.0
"""Seconds between two live frames at least, and between two reads while it runs."""
LIVE_KEEPALIVE = 15.0
"""Seconds between comments that keep an idle stream open through proxies."""

_E = EventType
ONLY: dict[str, tuple[EventType, ...]] = {
    "failed": (
        _E.TASK_FAILED,
        _E.TASK_RETRY_FAILED,
        _E.TASK_FALLBACK_FAILED,
        _E.TASK_ROLLBACK_FAILED,
        _E.WORKFLOW_FAILED,
    ),
    "paused": (_E.TASK_PAUSED, _E.WORKFLOW_PAUSED, _E.WORKFLOW_RESUMED),
}
"""The event list's filters: the events of failures, and of pauses and resumes."""
_ACTIVE = frozenset({ExecutionState.CLAIMED, ExecutionState.RUNNING, ExecutionState.CANCELLING})
"""States in which a worker writes to the execution: the live stream re-reads each second."""


def _stamp(status: ExecutionStatus) -> str:
    """What a live frame is sent for: a change of state or of ``updated_at``."""
    return f"{status.state.value}|{status.updated_at.isoformat()}"


async def _live_context(runtime: Runtime, status: ExecutionStatus) -> dict[str, Any]:
    calls = await history.task_calls(runtime.db, status.execution_id, timeline.EDGE)
    running = status.state not in FINISHED_STATES and status.state != ExecutionState.PAUSED
    return {
        "status": status,
        "timeline": timeline.build(calls, utcnow(), running),
        "finished": status.state in FINISHED_STATES,
        "rerunnable": status.state in RERUNNABLE,
        "cancellable": status.state not in FINISHED_STATES,
        "stamp": _stamp(status),
    }


async def _page(
    request: Request,
    execution_id: str,
    errors: dict[str, tuple[str, str]] | None = None,
    status_code: int = 200,
) -> Response:
    runtime = runtime_of(request)
    params = request.query_params
    only = params.get("only", "")
    if only not in ONLY:
        only = ""
    after_text = params.get("after", "")
    after = int(after_text) if after_text.isascii() and after_text.isdigit() else 0
    status = await runtime.executions.status(execution_id)
    events = await history.event_page(
        runtime.db,
        execution_id,
        after=after,
        limit=EVENTS_PAGE,
        types=ONLY.get(only, ()),
        payloads=True,
    )
    base = f"/console/executions/{execution_id}"
    query = f"only={only}&" if only else ""
    return render_page(
        request,
        "execution.html",
        status_code,
        nav="executions",
        events=events.items,
        only=only,
        after=after,
        next_url=f"{base}?{query}after={events.next_after}" if events.next_after else None,
        first_url=f"{base}?{query}".rstrip("?&") if after else None,
        base=base,
        errors=errors or {},
        **await _live_context(runtime, status),
    )


@router.get("/executions/{execution_id}")
async def execution_page(execution_id: str, request: Request) -> Response:
    return await _page(request, execution_id)


@router.get("/executions/{execution_id}/live")
async def live(execution_id: str, request: Request) -> Response:
    """The live part of the page, again each time the execution changes after ``seen`` (the
    stamp of what the page shows: its first frame is not sent again, which would also wipe
    what was typed into its forms)."""
    runtime = runtime_of(request)
    await runtime.executions.status(execution_id)  # 404 before the stream starts
    seen = request.query_params.get("seen")
    return event_stream(_frames(request, runtime, execution_id, seen))


async def _frames(
    request: Request, runtime: Runtime, execution_id: str, seen: str | None
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    sent_at = -LIVE_INTERVAL
    with runtime.watchers.watch(execution_id) as watch:
        while True:
            watch.event.clear()
            status = await runtime.executions.status(execution_id)
            if _stamp(status) != seen:
                seen = _stamp(status)
                context = await _live_context(runtime, status)
                html = render(request, "_live.html", errors={}, **context)
                yield _sse("update", html)
                sent_at = loop.time()
            if status.state in FINISHED_STATES:
                yield _sse("done", status.state.value)
                return
            active = status.state in _ACTIVE
            try:
                async with asyncio.timeout(LIVE_INTERVAL if active else LIVE_KEEPALIVE):
                    await watch.event.wait()
            except TimeoutError:
                if not active:
                    yield b": keepalive\n\n"
            await asyncio.sleep(max(0.0, sent_at + LIVE_INTERVAL - loop.time()))


def _sse(event: str, text: str) -> bytes:
    data = "".join(f"data: {line}\n" for line in text.splitlines() or [""])
    return f"event: {event}\n{data}\n".encode()


@router.post("/executions/{execution_id}/resume")
async def resume(execution_id: str, request: Request) -> Response:
    runtime = runtime_of(request)
    pause = await form_text(request, "pause")
    text = await form_text(request, "input")
    status = await runtime.executions.status(execution_id)
    try:
        value = json_field(text, "the input")
    except UsageError as exc:  # shown next to the field it is about, with what was typed
        return await _page(request, execution_id, {pause: (text, exc.message)}, 400)
    await runtime.executions.resume(status.workflow_name, execution_id, value, pause or None)
    where = f" at pause {pause!r}" if pause else ""
    return see_other(request, f"/console/executions/{execution_id}", f"resumed{where}")
