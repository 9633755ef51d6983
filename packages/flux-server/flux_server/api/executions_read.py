"""``/executions``: executions by id, without their workflow's name. A filtered, cursor-paged
listing with counts per state, one execution, its events by page, its resumable stream, a
rerun, and a bulk cancel.

Query strings are read here, not by FastAPI's validation, so that every bad filter is a 400
that says which and why (an unknown parameter included), as a bad cursor is.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Header, Query, Request
from flux.domain import FINISHED_STATES, EventType, ExecutionState
from flux.errors import UsageError
from flux.observability import TRACEPARENT
from flux.protocol import (
    EXECUTION_FRAME_STATES,
    EXECUTION_ID_PATTERN,
    CancelBatchRequest,
    CancelBatchResponse,
    EventPage,
    ExecutionList,
    ExecutionStatus,
    ExecutionStreamFrame,
)
from starlette.background import BackgroundTask
from starlette.responses import Response

from flux_server.api.deps import CallerDep, FluxRoute, RuntimeDep, model_response
from flux_server.audit import audit
from flux_server.runtime import Runtime
from flux_server.sse import event_stream, frame
from flux_server.store import by_id, history, listing
from flux_server.watchers import Watch

__all__ = ["router"]

router = APIRouter(prefix="/executions", tags=["executions"], route_class=FluxRoute)

_RECHECK = 5.0
"""Seconds between re-reads while a stream waits, in case a wake-up from a replica was missed."""
_LIST_PARAMETERS = frozenset(
    {
        "workflow",
        "state",
        "created_after",
        "created_before",
        "updated_after",
        "updated_before",
        "worker",
        "schedule",
        "limit",
        "cursor",
    }
)
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "SSE frames (ExecutionStreamFrame), each with its position as `id`",
    }
}
_TIME = "an ISO 8601 time, e.g. 2025-01-31T12:00:00Z (without an offset: UTC); exclusive"


@router.get("", response_model=ExecutionList)
async def list_executions(
    request: Request,
    runtime: RuntimeDep,
    workflow: str | None = Query(None, description="a workflow's name"),
    state: list[str] = Query([], description="a state; repeat it or separate with commas"),
    created_after: str | None = Query(None, description=_TIME),
    created_before: str | None = Query(None, description=_TIME),
    updated_after: str | None = Query(None, description=_TIME),
    updated_before: str | None = Query(None, description=_TIME),
    worker: str | None = Query(None, description="the worker that holds or ran it"),
    schedule: str | None = Query(None, description="the schedule (id or name) that started it"),
    limit: str | None = Query(None, description=f"1 to {listing.MAX_LIMIT}; default 50"),
    cursor: str | None = Query(None, description="the `next_cursor` of the previous page"),
) -> Response:
    """Executions newest first (by creation, ties by id), filtered, with ``counts`` per state
    of all that match. Page with ``cursor``: the previous page's ``next_cursor`` with the same
    filters. 400 for an unknown parameter, a bad value or a cursor that is not the server's.
    """
    _only(request, _LIST_PARAMETERS)
    filters = listing.ExecutionFilters(
        workflow=workflow or None,
        states=_states(state),
        created_after=_time("created_after", created_after),
        created_before=_time("created_before", created_before),
        updated_after=_time("updated_after", updated_after),
        updated_before=_time("updated_before", updated_before),
        worker=worker or None,
        schedule=schedule or None,
    )
    size = _count("limit", limit, 50, listing.MAX_LIMIT)
    after = listing.decode_cursor(cursor, filters) if cursor else None
    return model_response(await listing.page(runtime.db, filters, size, after))


@router.post("/cancel", response_model=CancelBatchResponse)
async def cancel_executions(
    body: CancelBatchRequest, caller: CallerDep, runtime: RuntimeDep
) -> Response:
    """Cancel each execution listed: at once when no worker holds it, else by asking its
    worker (CANCELLING). Each result says what its id did: the state it is in now, or why it
    was left as it was (unknown, already finished)."""
    answer = await by_id.cancel_many(runtime.db, body.execution_ids)
    for result in answer.results:
        if result.state is not None:
            audit(caller, "execution.cancel", result.execution_id)
    return model_response(answer)


@router.get("/{execution_id}", response_model=ExecutionStatus)
async def get_execution(
    execution_id: str,
    request: Request,
    runtime: RuntimeDep,
    detailed: str | None = Query(None, description="true: include the execution's events"),
) -> Response:
    """The execution's state, input, output and waiting pauses; ``detailed=true`` adds its
    events."""
    _only(request, {"detailed"})
    status = await runtime.executions.status(execution_id, detailed=_flag("detailed", detailed))
    return model_response(status)


@router.get("/{execution_id}/events", response_model=EventPage)
async def execution_events(
    execution_id: str,
    request: Request,
    runtime: RuntimeDep,
    after: str | None = Query(
        None, description="a position: the events after it (default: from the start)"
    ),
    limit: str | None = Query(None, description=f"1 to {history.MAX_EVENTS}; default 100"),
    types: list[str] = Query([], description="event types; repeat it or separate with commas"),
    payloads: str | None = Query(None, description="true: include each event's value and view"),
) -> Response:
    """The execution's events oldest first, a page at a time: each with its ``position``,
    which ``after`` takes to read on. Values and views only with ``payloads=true``."""
    _only(request, {"after", "limit", "types", "payloads"})
    page = await history.event_page(
        runtime.db,
        execution_id,
        after=_count("after", after, 0, None, least=0),
        limit=_count("limit", limit, 100, history.MAX_EVENTS),
        types=_types(types),
        payloads=_flag("payloads", payloads),
    )
    return model_response(page)


@router.get("/{execution_id}/stream", response_model=None, responses=_STREAM)
async def stream_execution(
    execution_id: str,
    request: Request,
    runtime: RuntimeDep,
    after: str | None = Query(
        None, description="a frame's position: the frames after it (as Last-Event-ID)"
    ),
    last_event_id: str | None = Header(None, description="resume after this frame"),
) -> Response:
    """Server-Sent Events, one per workflow-level event of the execution's log, from the
    first (or after ``Last-Event-ID``) until it finishes: ``workflow.execution.<state>`` as
    on a run's stream, with the event's position as the SSE ``id``. A pause does not end it.
    ``task.progress`` frames (no ``id``: they are not replayed) come in between.
    """
    _only(request, {"after"})
    start = (
        _count("Last-Event-ID", last_event_id, 0, None, least=0)
        if last_event_id is not None
        else _count("after", after, 0, None, least=0)
    )
    watch = runtime.watchers.open(execution_id)  # before the first read: no change is missed
    try:
        found = await history.frames_after(runtime.db, execution_id, start)  # 404 here
    except BaseException:
        runtime.watchers.close(execution_id, watch)
        raise
    frames = _frames(runtime, execution_id, start, found, watch)
    return event_stream(
        runtime.progress.merged(execution_id, frames),
        # Also when the stream never starts (the client left first).
        background=BackgroundTask(runtime.watchers.close, execution_id, watch),
    )


@router.post("/{execution_id}/rerun", response_model=ExecutionStatus)
async def rerun_execution(
    execution_id: str,
    request: Request,
    runtime: RuntimeDep,
    new_id: str | None = Query(
        None,
        pattern=EXECUTION_ID_PATTERN,
        description="the new execution's id; when an execution of the workflow already has "
        "it, that execution is answered for instead of starting another",
    ),
) -> Response:
    """Start a new execution of the same workflow (its latest version) with the same input.
    The execution run again may be in any state."""
    name, input = await by_id.run_of(runtime.db, execution_id)
    workflow = await runtime.workflows.latest(name)
    caller = request.headers.get(TRACEPARENT)
    return model_response(
        await runtime.executions.create(workflow, input, new_id, caller_trace=caller)
    )


async def _frames(
    runtime: Runtime,
    execution_id: str,
    after: int,
    found: history.Frames,
    watch: Watch,
) -> AsyncIterator[bytes]:
    """The stream's frames, from those ``found`` by the request (read after ``watch`` began),
    until a finished one, or until the server drains (the client resumes the stream elsewhere
    from its last ``position``)."""
    keepalive = runtime.options.sse_keepalive
    finished_before = False
    try:
        while True:
            for data in found.frames:
                yield _frame(data)
                after = data.position
                if data.state in FINISHED_STATES:
                    return
            if found.state in FINISHED_STATES:
                # Its last event committed with that state: one more read has it, unless the
                # client has had it already.
                if finished_before:
                    return
                finished_before = True
            elif runtime.stopping:
                return
            else:
                try:
                    async with asyncio.timeout(min(keepalive, _RECHECK)):
                        await watch.event.wait()
                except TimeoutError:
                    yield b": keepalive\n\n"
            watch.event.clear()
            found = await history.frames_after(runtime.db, execution_id, after)
    finally:
        runtime.watchers.close(execution_id, watch)


def _frame(data: ExecutionStreamFrame) -> bytes:
    return b"id: %d\n" % data.position + frame(EXECUTION_FRAME_STATES[data.state], data)


# -- reading query strings -----------------------------------------------------------------------


def _only(request: Request, allowed: Collection[str]) -> None:
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise UsageError(
            f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
            f"{request.url.path} takes {', '.join(sorted(allowed))}",
            unknown=unknown,
        )


def _split(values: list[str]) -> list[str]:
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _states(values: list[str]) -> tuple[ExecutionState, ...]:
    chosen: list[ExecutionState] = []
    for value in _split(values):
        try:
            state = ExecutionState(value.upper())
        except ValueError:
            raise UsageError(
                f"unknown state {value!r}; use one of {', '.join(s.value for s in ExecutionState)}"
            ) from None
        if state not in chosen:
            chosen.append(state)
    return tuple(chosen)


def _types(values: list[str]) -> tuple[EventType, ...]:
    chosen: list[EventType] = []
    for value in _split(values):
        try:
            kind = EventType(value.upper())
        except ValueError:
            raise UsageError(
                f"unknown event type {value!r}; use one of {', '.join(t.value for t in EventType)}"
            ) from None
        if kind not in chosen:
            chosen.append(kind)
    return tuple(chosen)


def _time(name: str, value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{name}={value!r} is not {_TIME.removesuffix('; exclusive')}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _flag(name: str, value: str | None) -> bool:
    if value is None or value == "":
        return False
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise UsageError(f"{name}={value!r} must be true or false")


def _count(name: str, value: str | None, default: int, most: int | None, least: int = 1) -> int:
    if value is None or value == "":
        return default
    number = int(value) if value.isascii() and value.isdigit() else -1
    if number < least or (most is not None and number > most):
        bounds = f"from {least} to {most}" if most is not None else f"{least} or more"
        raise UsageError(f"{name}={value!r} must be a whole number {bounds}")
    return number
