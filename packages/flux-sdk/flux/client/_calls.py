"""Every Flux HTTP endpoint as a :class:`Call`: the one place that builds URLs.

A call is plain data (method, path, query, body, bearer token, how to read the answer); the sync
and async clients only send it. Adding an endpoint (schedules, admin secrets, ...) means adding a
builder here and one method to each client that sends it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any, Generic, Literal, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter
from pydantic_core import from_json

from flux.errors import UsageError
from flux.protocol import (
    CancelBatchRequest,
    CancelBatchResponse,
    CancelMode,
    CheckpointBatchRequest,
    CheckpointBatchResponse,
    CheckpointItem,
    CheckpointRequest,
    CheckpointResponse,
    ClaimBatchRequest,
    ClaimBatchResponse,
    ClaimResponse,
    CreateScheduleRequest,
    EventPage,
    EventRecord,
    ExecutionList,
    ExecutionStatus,
    ExecutionStreamFrame,
    HealthResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    OutputRecord,
    PruneRequest,
    PruneResponse,
    RegisterWorkerRequest,
    RegisterWorkerResponse,
    ReleaseRequest,
    ReleaseResponse,
    RunMode,
    ScheduleDeleted,
    ScheduleInfo,
    ScheduleRun,
    SecretDeleted,
    SecretInfo,
    SecretsResponse,
    SecretValue,
    UpdateScheduleRequest,
    WorkerFrame,
    WorkerInfo,
    WorkerResources,
    WorkflowDetail,
    WorkflowSummary,
    parse_worker_frame,
)
from flux.protocol.claims import HISTORY_STRINGS
from flux.schedules import Schedule

__all__ = ["Call", "StreamCall"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

_JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the reader of its answer's body."""

    method: str
    path: str
    parse: Callable[[bytes], T]
    params: Mapping[str, str] | None = None
    content: bytes | None = None
    content_type: str | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    token: str | None = None
    """Sent as ``Authorization: Bearer <token>``."""
    wait: bool = False
    """The server may hold the answer back (sync modes): no read timeout."""


@dataclass(frozen=True, slots=True)
class StreamCall:
    """A request answered with Server-Sent Events."""

    method: str
    path: str
    content: bytes | None = None
    content_type: str | None = None
    token: str | None = None
    params: Mapping[str, str] | None = None


def _chosen_id(execution_id: str | None) -> dict[str, str] | None:
    """Query parameters of a run whose execution id the caller chose."""
    return None if execution_id is None else {"execution_id": execution_id}


def _seg(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"expected a non-empty name or id, got {value!r}")
    return quote(value, safe="")


def _json_body(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"the {what} must be JSON (dicts, lists, strings, numbers, booleans, None) to go "
            f"over HTTP: {exc}"
        ) from None


def _model_body(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def _model(cls: type[M]) -> Callable[[bytes], M]:
    return cls.model_validate_json


def _list(cls: type[M]) -> Callable[[bytes], list[M]]:
    return TypeAdapter(list[cls]).validate_json  # type: ignore[valid-type]


def _mode(mode: str, allowed: type[RunMode] | type[CancelMode]) -> str:
    try:
        return allowed(mode).value
    except ValueError:
        choices = ", ".join(repr(m.value) for m in allowed)
        raise UsageError(f"unknown mode {mode!r}; use one of {choices}") from None


# -- health --------------------------------------------------------------------------------------


def health() -> Call[HealthResponse]:
    return Call("GET", "/health", _model(HealthResponse))


# -- workflows -----------------------------------------------------------------------------------


def list_workflows() -> Call[list[WorkflowSummary]]:
    return Call("GET", "/workflows", _list(WorkflowSummary))


def get_workflow(name: str) -> Call[WorkflowDetail]:
    return Call("GET", f"/workflows/{_seg(name)}", _model(WorkflowDetail))


def register_workflows(source: bytes, filename: str) -> Call[list[WorkflowSummary]]:
    return Call(
        "POST",
        "/workflows",
        _list(WorkflowSummary),
        files={"file": (filename, source, "text/x-python")},
    )


def run(name: str, input: Any, mode: str, execution_id: str | None = None) -> Call[ExecutionStatus]:
    mode = _mode(mode, RunMode)
    if mode == RunMode.STREAM:
        raise UsageError("mode 'stream' answers with events: use stream() instead of run()")
    return Call(
        "POST",
        f"/workflows/{_seg(name)}/run/{mode}",
        _model(ExecutionStatus),
        content=_json_body(input, "workflow input"),
        content_type=_JSON,
        wait=mode == RunMode.SYNC,
        params=_chosen_id(execution_id),
    )


def resume(
    name: str, execution_id: str, input: Any, mode: str, pause: str | None = None
) -> Call[ExecutionStatus]:
    mode = _mode(mode, RunMode)
    if mode == RunMode.STREAM:
        raise UsageError("mode 'stream' answers with events: use stream_resume() instead")
    return Call(
        "POST",
        f"/workflows/{_seg(name)}/resume/{_seg(execution_id)}/{mode}",
        _model(ExecutionStatus),
        content=_json_body(input, "resume input"),
        content_type=_JSON,
        wait=mode == RunMode.SYNC,
        params=_pause_param(pause),
    )


def run_stream(name: str, input: Any, execution_id: str | None = None) -> StreamCall:
    return StreamCall(
        "POST",
        f"/workflows/{_seg(name)}/run/stream",
        content=_json_body(input, "workflow input"),
        content_type=_JSON,
        params=_chosen_id(execution_id),
    )


def resume_stream(name: str, execution_id: str, input: Any, pause: str | None = None) -> StreamCall:
    return StreamCall(
        "POST",
        f"/workflows/{_seg(name)}/resume/{_seg(execution_id)}/stream",
        content=_json_body(input, "resume input"),
        content_type=_JSON,
        params=_pause_param(pause),
    )


def _pause_param(pause: str | None) -> dict[str, str] | None:
    """``?pause=<name>``: the waiting pause a resume answers (needed when several wait)."""
    if pause is None:
        return None
    if not isinstance(pause, str) or not pause:
        raise UsageError(f"pause={pause!r}: name the waiting pause this resume answers")
    return {"pause": pause}


def status(name: str, execution_id: str, detailed: bool) -> Call[ExecutionStatus]:
    return Call(
        "GET",
        f"/workflows/{_seg(name)}/status/{_seg(execution_id)}",
        _model(ExecutionStatus),
        params={"detailed": "true" if detailed else "false"},
    )


def cancel(name: str, execution_id: str, mode: str) -> Call[ExecutionStatus]:
    mode = _mode(mode, CancelMode)
    return Call(
        "GET",
        f"/workflows/{_seg(name)}/cancel/{_seg(execution_id)}",
        _model(ExecutionStatus),
        params={"mode": mode},
        wait=mode == CancelMode.SYNC,
    )


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
    return Call("GET", "/executions", _model(ExecutionList), params=params)


def get_execution(execution_id: str, detailed: bool) -> Call[ExecutionStatus]:
    return Call(
        "GET",
        f"/executions/{_seg(execution_id)}",
        _model(ExecutionStatus),
        params={"detailed": "true" if detailed else "false"},
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
    return Call("GET", f"/executions/{_seg(execution_id)}/events", _model(EventPage), params=params)


def execution_stream(execution_id: str, after: int | None) -> StreamCall:
    params = None if after is None else {"after": str(after)}
    return StreamCall("GET", f"/executions/{_seg(execution_id)}/stream", params=params)


def parse_stream_frame(event: str, data: str) -> ExecutionStreamFrame | None:
    """A frame of an execution's stream; ``None`` for events that are not frames."""
    if not event.startswith("workflow.execution."):
        return None
    return ExecutionStreamFrame.model_validate_json(data)


def rerun(execution_id: str, new_id: str | None) -> Call[ExecutionStatus]:
    return Call(
        "POST",
        f"/executions/{_seg(execution_id)}/rerun",
        _model(ExecutionStatus),
        params=None if new_id is None else {"new_id": new_id},
    )


def cancel_executions(execution_ids: Sequence[str]) -> Call[CancelBatchResponse]:
    ids = _names(execution_ids, "execution_ids")
    if isinstance(execution_ids, str) or not ids:
        raise UsageError(f"execution_ids must be a non-empty list of ids, got {execution_ids!r}")
    return Call(
        "POST",
        "/executions/cancel",
        _model(CancelBatchResponse),
        content=_model_body(CancelBatchRequest(execution_ids=ids)),
        content_type=_JSON,
    )


def prune_executions(older_than: float, workflow: str | None = None) -> Call[PruneResponse]:
    if isinstance(older_than, bool) or not isinstance(older_than, int | float) or older_than <= 0:
        raise UsageError(f"older_than={older_than!r}: give a number of seconds > 0")
    return Call(
        "POST",
        "/executions/prune",
        _model(PruneResponse),
        content=_model_body(PruneRequest(older_than=older_than, workflow=workflow)),
        content_type=_JSON,
    )


# -- workers -------------------------------------------------------------------------------------


def list_workers() -> Call[list[WorkerInfo]]:
    return Call("GET", "/workers", _list(WorkerInfo))


def register_worker(
    request: RegisterWorkerRequest, bootstrap_token: str
) -> Call[RegisterWorkerResponse]:
    return Call(
        "POST",
        "/workers/register",
        _model(RegisterWorkerResponse),
        content=_model_body(request),
        content_type=_JSON,
        token=bootstrap_token,
    )


def connect(name: str, token: str, push: bool = False) -> StreamCall:
    params = {"push": "true"} if push else None
    return StreamCall("GET", f"/workers/{_seg(name)}/connect", token=token, params=params)


def worker_frame_parser(decode_history: bool) -> Callable[[str, str], WorkerFrame | None]:
    if not decode_history:
        return parse_worker_frame
    return lambda event, data: parse_worker_frame(event, data, decode_history=True)


def claim(
    name: str, token: str, execution_id: str, decode_history: bool = False
) -> Call[ClaimResponse]:
    return Call(
        "POST",
        f"/workers/{_seg(name)}/claim/{_seg(execution_id)}",
        _claim_parser(decode_history),
        token=token,
    )


def _claim_parser(decode_history: bool) -> Callable[[bytes], ClaimResponse]:
    if not decode_history:
        return _model(ClaimResponse)
    return lambda raw: ClaimResponse.from_wire(
        from_json(raw, cache_strings=HISTORY_STRINGS), decode_history=True
    )


def _claims_parser(decode_history: bool) -> Callable[[bytes], ClaimBatchResponse]:
    if not decode_history:
        return _model(ClaimBatchResponse)

    def parse(raw: bytes) -> ClaimBatchResponse:
        data = from_json(raw, cache_strings=HISTORY_STRINGS)
        for result in data.get("results") or ():
            if isinstance(result, dict) and isinstance(result.get("claim"), dict):
                result["claim"] = ClaimResponse.from_wire(result["claim"], decode_history=True)
        return ClaimBatchResponse.model_validate(data)

    return parse


def claims(
    name: str,
    token: str,
    execution_ids: Sequence[str],
    known_sources: Sequence[str],
    decode_history: bool = False,
    *,
    history_format: Literal["events", "columns"] = "columns",
) -> Call[ClaimBatchResponse]:
    body = ClaimBatchRequest(
        execution_ids=list(execution_ids),
        known_sources=list(known_sources),
        history_format=history_format,
    )
    return Call(
        "POST",
        f"/workers/{_seg(name)}/claims",
        _claims_parser(decode_history),
        content=_model_body(body),
        content_type=_JSON,
        token=token,
    )


def checkpoint(
    name: str,
    token: str,
    execution_id: str,
    generation: int,
    events: Sequence[EventRecord],
    output: OutputRecord | None,
) -> Call[CheckpointResponse]:
    body = CheckpointRequest(generation=generation, events=list(events), output=output)
    return Call(
        "POST",
        f"/workers/{_seg(name)}/checkpoint/{_seg(execution_id)}",
        _model(CheckpointResponse),
        content=_model_body(body),
        content_type=_JSON,
        token=token,
    )


def checkpoints(
    name: str, token: str, items: Sequence[CheckpointItem]
) -> Call[CheckpointBatchResponse]:
    body = CheckpointBatchRequest(items=list(items))
    return Call(
        "POST",
        f"/workers/{_seg(name)}/checkpoints",
        _model(CheckpointBatchResponse),
        content=_model_body(body),
        content_type=_JSON,
        token=token,
    )


def release(
    name: str, token: str, execution_id: str, generation: int, reason: str | None
) -> Call[ReleaseResponse]:
    body = ReleaseRequest(generation=generation, reason=reason)
    return Call(
        "POST",
        f"/workers/{_seg(name)}/release/{_seg(execution_id)}",
        _model(ReleaseResponse),
        content=_model_body(body),
        content_type=_JSON,
        token=token,
    )


def heartbeat(
    name: str,
    token: str,
    resources: WorkerResources | None,
    running: Sequence[str] | None = None,
) -> Call[HeartbeatResponse]:
    body = HeartbeatRequest(resources=resources, running=None if running is None else list(running))
    return Call(
        "POST",
        f"/workers/{_seg(name)}/heartbeat",
        _model(HeartbeatResponse),
        content=_model_body(body),
        content_type=_JSON,
        token=token,
    )


def get_secrets(
    name: str, token: str, execution_id: str, names: Sequence[str]
) -> Call[SecretsResponse]:
    if isinstance(names, str):
        raise UsageError(f"names must be a list of secret names, got the string {names!r}")
    return Call(
        "GET",
        f"/workers/{_seg(name)}/secrets/{_seg(execution_id)}",
        _model(SecretsResponse),
        params={"names": ",".join(names)},
        token=token,
    )


# -- schedules -----------------------------------------------------------------------------------


def list_schedules(workflow_id: str | None, active_only: bool) -> Call[list[ScheduleInfo]]:
    params = {"active_only": "true" if active_only else "false"}
    if workflow_id is not None:
        params["workflow_id"] = workflow_id
    return Call("GET", "/schedules", _list(ScheduleInfo), params=params)


def get_schedule(schedule_id: str) -> Call[ScheduleInfo]:
    return Call("GET", f"/schedules/{_seg(schedule_id)}", _model(ScheduleInfo))


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
        _model(ScheduleInfo),
        content=_json_body(body.model_dump(mode="json"), "schedule"),
        content_type=_JSON,
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
        f"/schedules/{_seg(schedule_id)}",
        _model(ScheduleInfo),
        content=_json_body(body.model_dump(mode="json", exclude_unset=True), "schedule update"),
        content_type=_JSON,
    )


def pause_schedule(schedule_id: str) -> Call[ScheduleInfo]:
    return Call("POST", f"/schedules/{_seg(schedule_id)}/pause", _model(ScheduleInfo))


def resume_schedule(schedule_id: str) -> Call[ScheduleInfo]:
    return Call("POST", f"/schedules/{_seg(schedule_id)}/resume", _model(ScheduleInfo))


def delete_schedule(schedule_id: str) -> Call[ScheduleDeleted]:
    return Call("DELETE", f"/schedules/{_seg(schedule_id)}", _model(ScheduleDeleted))


def schedule_history(schedule_id: str, limit: int) -> Call[list[ScheduleRun]]:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise UsageError(f"limit must be a positive whole number, got {limit!r}")
    return Call(
        "GET",
        f"/schedules/{_seg(schedule_id)}/history",
        _list(ScheduleRun),
        params={"limit": str(limit)},
    )


# -- admin: secrets ------------------------------------------------------------------------------


def list_secrets() -> Call[list[SecretInfo]]:
    return Call("GET", "/admin/secrets", _list(SecretInfo))


def get_secret(name: str) -> Call[SecretValue]:
    return Call("GET", f"/admin/secrets/{_seg(name)}", _model(SecretValue))


def set_secret(name: str, value: Any) -> Call[SecretInfo]:
    if not isinstance(name, str):
        raise UsageError(f"a secret name must be a string, got a {type(name).__name__}")
    try:
        content = json.dumps(
            {"name": name, "value": value}, separators=(",", ":"), allow_nan=False
        ).encode()
    except (TypeError, ValueError):
        # The message must not echo the value.
        raise UsageError(
            f"secret {name!r} must be a JSON value (str, number, bool, None, list or dict of "
            f"those), got a {type(value).__name__}"
        ) from None
    return Call("POST", "/admin/secrets", _model(SecretInfo), content=content, content_type=_JSON)


def delete_secret(name: str) -> Call[SecretDeleted]:
    return Call("DELETE", f"/admin/secrets/{_seg(name)}", _model(SecretDeleted))
