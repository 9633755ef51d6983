"""Calls for health and workflows: register, read, run, resume, status, cancel."""

from __future__ import annotations

from typing import Any

from flux.client._calls._base import (
    JSON,
    Call,
    StreamCall,
    chosen_id,
    chosen_params,
    json_body,
    mode_of,
    parse_list,
    parse_model,
    seg,
)
from flux.errors import UsageError
from flux.protocol import (
    CancelMode,
    ExecutionStatus,
    HealthResponse,
    RunMode,
    WorkflowDetail,
    WorkflowSummary,
)

__all__ = [
    "cancel",
    "get_workflow",
    "health",
    "list_workflows",
    "register_workflows",
    "resume",
    "resume_stream",
    "run",
    "run_stream",
    "status",
]


# -- health --------------------------------------------------------------------------------------


def health() -> Call[HealthResponse]:
    return Call("GET", "/health", parse_model(HealthResponse))


# -- workflows -----------------------------------------------------------------------------------


def list_workflows() -> Call[list[WorkflowSummary]]:
    return Call("GET", "/workflows", parse_list(WorkflowSummary))


def get_workflow(name: str) -> Call[WorkflowDetail]:
    return Call("GET", f"/workflows/{seg(name)}", parse_model(WorkflowDetail))


def register_workflows(source: bytes, filename: str) -> Call[list[WorkflowSummary]]:
    return Call(
        "POST",
        "/workflows",
        parse_list(WorkflowSummary),
        files={"file": (filename, source, "text/x-python")},
        idempotent=True,  # the same source again makes no new version
    )


def run(
    name: str,
    input: Any,
    mode: str,
    execution_id: str | None = None,
    *,
    parent: str | None = None,
    token: str | None = None,
    traceparent: str | None = None,
) -> Call[ExecutionStatus]:
    """``parent`` and ``token``: a worker starting a child of the execution ``parent`` it
    holds, with its session token (protocol 1.9); ``traceparent``: the trace the new
    execution's joins (the parent's, for a child)."""
    mode = mode_of(mode, RunMode)
    if mode == RunMode.STREAM:
        raise UsageError("mode 'stream' answers with events: use stream() instead of run()")
    params = chosen_id(execution_id)
    if parent is not None:
        params = {**(params or {}), "parent": parent}
    return Call(
        "POST",
        f"/workflows/{seg(name)}/run/{mode}",
        parse_model(ExecutionStatus),
        content=json_body(input, "workflow input"),
        content_type=JSON,
        wait=mode == RunMode.SYNC,
        params=params,
        token=token,
        traceparent=traceparent,
        idempotent=execution_id is not None,
    )


def resume(
    name: str,
    execution_id: str,
    input: Any,
    mode: str,
    pause: str | None = None,
    resume_id: str | None = None,
) -> Call[ExecutionStatus]:
    mode = mode_of(mode, RunMode)
    if mode == RunMode.STREAM:
        raise UsageError("mode 'stream' answers with events: use stream_resume() instead")
    return Call(
        "POST",
        f"/workflows/{seg(name)}/resume/{seg(execution_id)}/{mode}",
        parse_model(ExecutionStatus),
        content=json_body(input, "resume input"),
        content_type=JSON,
        wait=mode == RunMode.SYNC,
        params=_resume_params(pause, resume_id),
        idempotent=resume_id is not None,
    )


def run_stream(name: str, input: Any, execution_id: str | None = None) -> StreamCall:
    return StreamCall(
        "POST",
        f"/workflows/{seg(name)}/run/stream",
        content=json_body(input, "workflow input"),
        content_type=JSON,
        params=chosen_id(execution_id),
        idempotent=execution_id is not None,
    )


def resume_stream(
    name: str,
    execution_id: str,
    input: Any,
    pause: str | None = None,
    resume_id: str | None = None,
) -> StreamCall:
    return StreamCall(
        "POST",
        f"/workflows/{seg(name)}/resume/{seg(execution_id)}/stream",
        content=json_body(input, "resume input"),
        content_type=JSON,
        params=_resume_params(pause, resume_id),
        idempotent=resume_id is not None,
    )


def _resume_params(pause: str | None, resume_id: str | None) -> dict[str, str] | None:
    """``?pause=<name>``: the waiting pause a resume answers (needed when several wait);
    ``?resume_id=``: the id that makes repeating the resume change nothing."""
    if pause is not None and (not isinstance(pause, str) or not pause):
        raise UsageError(f"pause={pause!r}: name the waiting pause this resume answers")
    if resume_id is not None and (not isinstance(resume_id, str) or not resume_id):
        raise UsageError(f"resume_id={resume_id!r}: give a non-empty id, or none")
    return chosen_params(pause=pause, resume_id=resume_id)


def status(name: str, execution_id: str, detailed: bool) -> Call[ExecutionStatus]:
    return Call(
        "GET",
        f"/workflows/{seg(name)}/status/{seg(execution_id)}",
        parse_model(ExecutionStatus),
        params={"detailed": "true" if detailed else "false"},
    )


def cancel(name: str, execution_id: str, mode: str) -> Call[ExecutionStatus]:
    mode = mode_of(mode, CancelMode)
    return Call(
        "GET",
        f"/workflows/{seg(name)}/cancel/{seg(execution_id)}",
        parse_model(ExecutionStatus),
        params={"mode": mode},
        wait=mode == CancelMode.SYNC,
        # Cancelling twice cancels once: a repeat answers 409 when the first one finished it.
        idempotent=True,
    )
