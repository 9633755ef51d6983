"""``/workflows/{name}/run|resume|status|cancel``: executions as clients drive them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from flux.domain import FINISHED_STATES, ExecutionState
from flux.errors import UsageError
from flux.observability import TRACEPARENT
from flux.protocol import (
    EXECUTION_FRAME_STATES,
    EXECUTION_ID_PATTERN,
    CancelMode,
    ExecutionFrame,
    ExecutionStatus,
    RunMode,
)
from starlette.responses import Response

from flux_server.api.deps import (
    JSON_BODY,
    CallerDep,
    FluxRoute,
    RuntimeDep,
    json_body,
    model_response,
)
from flux_server.audit import audit
from flux_server.runtime import Runtime, draining
from flux_server.sse import event_stream, frame

__all__ = ["answer_run", "router"]

router = APIRouter(prefix="/workflows", tags=["executions"], route_class=FluxRoute)

_RECHECK = 5.0
"""Seconds between re-reads while waiting, in case a wake-up from a replica was missed."""
_STREAM: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "stream mode: SSE frames"}
}


def _settled(state: ExecutionState) -> bool:
    return state in FINISHED_STATES or state == ExecutionState.PAUSED


def _finished(state: ExecutionState) -> bool:
    return state in FINISHED_STATES


def _run_mode(mode: str) -> RunMode:
    try:
        return RunMode(mode)
    except ValueError:
        raise UsageError(
            f"unknown mode {mode!r}; use one of {', '.join(m.value for m in RunMode)}"
        ) from None


@router.post(
    "/{name}/run/{mode}",
    response_model=ExecutionStatus,
    openapi_extra=JSON_BODY,
    responses=_STREAM,
)
async def run_workflow(
    name: str,
    mode: str,
    request: Request,
    runtime: RuntimeDep,
    detailed: bool = False,
    execution_id: str | None = Query(
        None,
        pattern=EXECUTION_ID_PATTERN,
        description="the new execution's id; when an execution of this workflow already has "
        "it, that execution is answered for instead of starting another",
    ),
    parent: str | None = Query(
        None,
        pattern=EXECUTION_ID_PATTERN,
        description="a worker starting a child of the execution it holds with this id (with "
        "its session token, where authentication is on; see docs/security.md); a parent "
        "paused by this child goes on by itself once the child has finished",
    ),
) -> Response:
    """Start the latest version of ``name``; the JSON body is its input.

    ``async`` answers at once, ``sync`` when it finishes or pauses (or after the sync timeout),
    ``stream`` with a Server-Sent Event per state change. With ``execution_id`` a repeated
    request (a retry, a parent workflow replaying its child call) starts the workflow at most
    once; 409 when another workflow's execution has that id.

    \f
    ``sync`` and ``async`` without a query string (or with ``execution_id`` alone) are
    answered by :mod:`flux_server.fastpath` before routing, which hands only what it does not
    take on to here: change both together.
    """
    run_mode = _run_mode(mode)
    value = await json_body(request)
    workflow = await runtime.workflows.latest(name)
    status = await runtime.executions.create(
        workflow,
        value,
        execution_id,
        caller_trace=request.headers.get(TRACEPARENT),
        parent_id=parent,
    )
    return await answer_run(runtime, status, run_mode, detailed)


@router.post(
    "/{name}/resume/{execution_id}/{mode}",
    response_model=ExecutionStatus,
    openapi_extra=JSON_BODY,
    responses=_STREAM,
)
async def resume_execution(
    name: str,
    execution_id: str,
    mode: str,
    request: Request,
    runtime: RuntimeDep,
    detailed: bool = False,
    pause: str | None = Query(
        None,
        min_length=1,
        description="the waiting pause this answers (the status lists them in `pauses`); "
        "needed only when more than one waits",
    ),
    resume_id: str | None = Query(
        None,
        pattern=EXECUTION_ID_PATTERN,
        description="an id the client chose for this resume: repeating a resume with the "
        "same id changes nothing (its body is ignored) and answers the execution's status",
    ),
) -> Response:
    """Resume a PAUSED execution; the JSON body is what its waiting ``pause()`` returns.

    409 when the execution is not paused, when several pauses wait and ``pause`` does not
    name one, or when no waiting pause has that name (``details.pauses`` lists the waiting
    ones). With ``resume_id`` a repeated request (a retry) resumes at most once, whatever
    the execution did since: a repeat answers its status as it is now.
    """
    run_mode = _run_mode(mode)
    value = await json_body(request)
    status = await runtime.executions.resume(name, execution_id, value, pause, resume_id)
    return await answer_run(runtime, status, run_mode, detailed)


@router.get("/{name}/status/{execution_id}", response_model=ExecutionStatus)
async def execution_status(
    name: str, execution_id: str, runtime: RuntimeDep, detailed: bool = False
) -> Response:
    """The execution's state, input and output; ``detailed=true`` adds its events."""
    return model_response(await runtime.executions.status(execution_id, name, detailed=detailed))


@router.get("/{name}/cancel/{execution_id}", response_model=ExecutionStatus)
async def cancel_execution(
    name: str,
    execution_id: str,
    caller: CallerDep,
    runtime: RuntimeDep,
    mode: str = Query("async", description="sync waits until the execution has finished"),
) -> Response:
    """Cancel: at once when no worker runs it, else by asking its worker (CANCELLING).

    409 when it has already finished.
    """
    try:
        cancel_mode = CancelMode(mode)
    except ValueError:
        raise UsageError(f"unknown mode {mode!r}; use 'sync' or 'async'") from None
    status = await runtime.executions.cancel(name, execution_id)
    audit(caller, "execution.cancel", execution_id, workflow=name)
    if cancel_mode == CancelMode.SYNC:
        status = await _wait(runtime, status, _finished)
    return model_response(status)


async def answer_run(
    runtime: Runtime, status: ExecutionStatus, mode: RunMode, detailed: bool
) -> Response:
    """The answer to a run or resume request in ``mode``, from the status it just wrote."""
    if mode == RunMode.STREAM:
        frames = _frames(runtime, status.execution_id, status.workflow_name)
        return event_stream(
            runtime.progress.merged(status.execution_id, frames),
            headers={"X-Flux-Execution-Id": status.execution_id},
        )
    if mode == RunMode.SYNC:
        status = await _wait(runtime, status, _settled)
    if detailed or status.state is ExecutionState.PAUSED:
        # A checkpoint that settled the execution answers without the waiting pauses; they
        # are read with the status (only paused answers pay for it).
        status = await runtime.executions.status(status.execution_id, detailed=detailed)
    return model_response(status)


async def _wait(
    runtime: Runtime, status: ExecutionStatus, done: Callable[[ExecutionState], bool]
) -> ExecutionStatus:
    """Wait from ``status`` (just read or written, with no await since) until ``done(state)``
    or the sync timeout; the status at that moment. Announced states that are not done are not
    read from the database.

    Raises:
        ApiError: 503 when the server drains before that (the execution goes on: the client
            asks another server, with the execution's id).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + runtime.options.sync_timeout
    execution_id, name = status.execution_id, status.workflow_name
    with runtime.watchers.watch(execution_id) as watch:
        while not done(status.state):
            if runtime.stopping:
                raise draining(
                    f"waits no longer for execution {execution_id!r} (it goes on)",
                    execution_id=execution_id,
                )
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            watch.event.clear()
            try:
                async with asyncio.timeout(min(remaining, _RECHECK)):
                    await watch.event.wait()
            except TimeoutError:
                watch.state = None  # a wake-up from a replica may have been missed: look
            if watch.status is not None and done(watch.status.state):
                status = watch.status  # read by the checkpoint that settled it
            elif watch.state is None or done(ExecutionState(watch.state)):
                status = await runtime.executions.status(execution_id, name)
    return status


async def _frames(runtime: Runtime, execution_id: str, name: str) -> AsyncIterator[bytes]:
    """One frame per state change until the execution finishes or pauses, or the server
    drains (the stream then just ends).

    A state passed through between two looks is not reported, except that a completed or
    paused execution is always preceded by ``running``. Closing the stream only stops it.
    """
    sent: ExecutionState | None = None
    ran = False
    keepalive = runtime.options.sse_keepalive
    with runtime.watchers.watch(execution_id) as watch:
        while True:
            watch.event.clear()
            status = await runtime.executions.status(execution_id, name)
            state = status.state
            if state in (ExecutionState.PAUSED, ExecutionState.COMPLETED) and not ran:
                state_ = ExecutionState.RUNNING
                yield _frame(status, state_)
                sent, ran = state_, True
            if state != sent and state in EXECUTION_FRAME_STATES:
                yield _frame(status, state)
                sent = state
                ran = ran or state == ExecutionState.RUNNING
            if _settled(state) or runtime.stopping:
                return
            try:
                async with asyncio.timeout(min(keepalive, _RECHECK)):
                    await watch.event.wait()
            except TimeoutError:
                yield b": keepalive\n\n"


def _frame(status: ExecutionStatus, state: ExecutionState) -> bytes:
    data = ExecutionFrame(
        execution_id=status.execution_id,
        state=state,
        output=status.output if state in FINISHED_STATES else None,
        timestamp=status.updated_at,
    )
    return frame(EXECUTION_FRAME_STATES[state], data)
