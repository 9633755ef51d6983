"""Calls a worker makes: register, connect, claim, checkpoint, release, heartbeat, secrets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

from pydantic_core import from_json

from flux.client._calls._base import (
    JSON,
    Call,
    StreamCall,
    model_body,
    parse_list,
    parse_model,
    seg,
)
from flux.errors import UsageError
from flux.protocol import (
    CheckpointBatchRequest,
    CheckpointBatchResponse,
    CheckpointItem,
    CheckpointRequest,
    CheckpointResponse,
    ClaimBatchRequest,
    ClaimBatchResponse,
    ClaimResponse,
    EventRecord,
    HeartbeatRequest,
    HeartbeatResponse,
    LeaveResponse,
    OutputRecord,
    RegisterWorkerRequest,
    RegisterWorkerResponse,
    ReleaseRequest,
    ReleaseResponse,
    SecretsResponse,
    WorkerFrame,
    WorkerInfo,
    WorkerResources,
    parse_worker_frame,
)
from flux.protocol.claims import HISTORY_STRINGS

__all__ = [
    "checkpoint",
    "checkpoints",
    "claim",
    "claims",
    "connect",
    "get_secrets",
    "heartbeat",
    "list_workers",
    "register_worker",
    "release",
    "worker_frame_parser",
]


# -- workers -------------------------------------------------------------------------------------


def list_workers() -> Call[list[WorkerInfo]]:
    return Call("GET", "/workers", parse_list(WorkerInfo))


def register_worker(
    request: RegisterWorkerRequest, bootstrap_token: str
) -> Call[RegisterWorkerResponse]:
    return Call(
        "POST",
        "/workers/register",
        parse_model(RegisterWorkerResponse),
        content=model_body(request),
        content_type=JSON,
        token=bootstrap_token,
    )


def connect(name: str, token: str, push: bool = False) -> StreamCall:
    params = {"push": "true"} if push else None
    return StreamCall("GET", f"/workers/{seg(name)}/connect", token=token, params=params)


def worker_frame_parser(decode_history: bool) -> Callable[[str, str], WorkerFrame | None]:
    if not decode_history:
        return parse_worker_frame
    return lambda event, data: parse_worker_frame(event, data, decode_history=True)


def claim(
    name: str, token: str, execution_id: str, decode_history: bool = False
) -> Call[ClaimResponse]:
    return Call(
        "POST",
        f"/workers/{seg(name)}/claim/{seg(execution_id)}",
        _claim_parser(decode_history),
        token=token,
    )


def _claim_parser(decode_history: bool) -> Callable[[bytes], ClaimResponse]:
    if not decode_history:
        return parse_model(ClaimResponse)
    return lambda raw: ClaimResponse.from_wire(
        from_json(raw, cache_strings=HISTORY_STRINGS), decode_history=True
    )


def _claims_parser(decode_history: bool) -> Callable[[bytes], ClaimBatchResponse]:
    if not decode_history:
        return parse_model(ClaimBatchResponse)

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
        f"/workers/{seg(name)}/claims",
        _claims_parser(decode_history),
        content=model_body(body),
        content_type=JSON,
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
        f"/workers/{seg(name)}/checkpoint/{seg(execution_id)}",
        parse_model(CheckpointResponse),
        content=model_body(body),
        content_type=JSON,
        token=token,
    )


def checkpoints(
    name: str, token: str, items: Sequence[CheckpointItem]
) -> Call[CheckpointBatchResponse]:
    body = CheckpointBatchRequest(items=list(items))
    return Call(
        "POST",
        f"/workers/{seg(name)}/checkpoints",
        parse_model(CheckpointBatchResponse),
        content=model_body(body),
        content_type=JSON,
        token=token,
    )


def release(
    name: str, token: str, execution_id: str, generation: int, reason: str | None
) -> Call[ReleaseResponse]:
    body = ReleaseRequest(generation=generation, reason=reason)
    return Call(
        "POST",
        f"/workers/{seg(name)}/release/{seg(execution_id)}",
        parse_model(ReleaseResponse),
        content=model_body(body),
        content_type=JSON,
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
        f"/workers/{seg(name)}/heartbeat",
        parse_model(HeartbeatResponse),
        content=model_body(body),
        content_type=JSON,
        token=token,
    )


def leave(name: str, token: str) -> Call[LeaveResponse]:
    return Call(
        "POST",
        f"/workers/{seg(name)}/leave",
        parse_model(LeaveResponse),
        token=token,
        idempotent=True,
    )


def get_secrets(
    name: str, token: str, execution_id: str, names: Sequence[str]
) -> Call[SecretsResponse]:
    if isinstance(names, str):
        raise UsageError(f"names must be a list of secret names, got the string {names!r}")
    return Call(
        "GET",
        f"/workers/{seg(name)}/secrets/{seg(execution_id)}",
        parse_model(SecretsResponse),
        params={"names": ",".join(names)},
        token=token,
    )
