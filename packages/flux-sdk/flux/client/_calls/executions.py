"""Calls for executions by id (protocol 1.5): list, read, events, stream, rerun, cancel, prune."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flux.client._calls._base import (
    JSON,
    Call,
    StreamCall,
    model_body,
    parse_model,
    seg,
)
from flux.errors import UsageError
from flux.protocol import (
    CancelBatchRequest,
    CancelBatchResponse,
    EventPage,
    ExecutionList,
    ExecutionStatus,
    ExecutionStreamFrame,
    PruneRequest,
    PruneResponse,
)

__all__ = [
    "cancel_executions",
    "execution_events",
    "execution_stream",
    "get_execution",
    "list_executions",
    "parse_stream_frame",
    "prune_executions",
    "rerun",
]


# -- executions by id (protocol 1.5) ------------------------------------------------------------


def _time_param(name: str, value: datetime | str | None) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, datetime):
        return {name: value.isoformat()}
    if isinstance(value, str) and value:
        return {name: value}
    raise UsageError(f"{name} must be a datetime or an ISO 8601 string, got {value!r}")


def _names(value: str | Sequence[str] | None, what: str) -> list[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(v, str) and v for v in values):
        raise UsageError(f"{what} must be a name or a list of names, got {value!r}")
    return values


def _positive(name: str, value: int) -> str:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be a positive whole number, got {value!r}")
    return str(value)


def list_executions(
    *,
    workflow: str | None,
    state: str | Sequence[str] | None,
    created_after: datetime | str | None,
    created_before: datetime | str | None,
    updated_after: datetime | str | None,
    updated_before: datetime | str | None,
    worker: str | None,
    schedule: str | None,
    limit: int,
    cursor: str | None,
) -> Call[ExecutionList]:
    params = {"limit": _positive("limit", limit)}
    states = _names(state, "state")
    if states:
        params["state"] = ",".join(states)
    for name, value in (("workflow", workflow), ("worker", worker), ("schedule", schedule)):
        if value is not None:
            params[name] = value
    for name, when in (
        ("created_after", created_after),
        ("created_before", created_before),
        ("updated_after", updated_after),
        ("updated_before", updated_before),
    ):
        params.update(_time_param(name, when))
    if cursor is not None:
        params["cursor"] = cursor
    return Call("GET", "/executions", parse_model(ExecutionList), params=params)


def get_execution(execution_id: str, detailed: bool) -> Call[ExecutionStatus]:
    return Call(
        "GET",
        f"/executions/{seg(execution_id)}",
        parse_model(ExecutionStatus),
        # Not detailed is the server's default: without a query string the request is built
        # from its template (see flux.client._http.RequestTemplates).
        params={"detailed": "true"} if detailed else None,
    )


def execution_events(
    execution_id: str,
    after: int | None,
    limit: int,
    types: str | Sequence[str] | None,
    payloads: bool,
) -> Call[EventPage]:
    params = {
        "limit": _positive("limit", limit),
        "payloads": "true" if payloads else "false",
    }
    if after is not None:
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise UsageError(f"after must be an event's position (a whole number), got {after!r}")
        params["after"] = str(after)
    kinds = _names(types, "types")
    if kinds:
        params["types"] = ",".join(kinds)
    return Call(
        "GET", f"/executions/{seg(execution_id)}/events", parse_model(EventPage), params=params
    )


def execution_stream(execution_id: str, after: int | None) -> StreamCall:
    params = None if after is None else {"after": str(after)}
    return StreamCall("GET", f"/executions/{seg(execution_id)}/stream", params=params)


def parse_stream_frame(event: str, data: str) -> ExecutionStreamFrame | None:
    """A frame of an execution's stream; ``None`` for events that are not frames."""
    if not event.startswith("workflow.execution."):
        return None
    return ExecutionStreamFrame.model_validate_json(data)


def rerun(execution_id: str, new_id: str | None) -> Call[ExecutionStatus]:
    return Call(
        "POST",
        f"/executions/{seg(execution_id)}/rerun",
        parse_model(ExecutionStatus),
        params=None if new_id is None else {"new_id": new_id},
        idempotent=new_id is not None,
    )


def cancel_executions(execution_ids: Sequence[str]) -> Call[CancelBatchResponse]:
    ids = _names(execution_ids, "execution_ids")
    if isinstance(execution_ids, str) or not ids:
        raise UsageError(f"execution_ids must be a non-empty list of ids, got {execution_ids!r}")
    return Call(
        "POST",
        "/executions/cancel",
        parse_model(CancelBatchResponse),
        content=model_body(CancelBatchRequest(execution_ids=ids)),
        content_type=JSON,
        idempotent=True,  # each id says what it did: a repeat says "already finished"
    )


def prune_executions(older_than: float, workflow: str | None = None) -> Call[PruneResponse]:
    if isinstance(older_than, bool) or not isinstance(older_than, int | float) or older_than <= 0:
        raise UsageError(f"older_than={older_than!r}: give a number of seconds > 0")
    return Call(
        "POST",
        "/executions/prune",
        parse_model(PruneResponse),
        content=model_body(PruneRequest(older_than=older_than, workflow=workflow)),
        content_type=JSON,
        idempotent=True,
    )
