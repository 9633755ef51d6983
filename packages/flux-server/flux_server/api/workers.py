"""``/workers``: registration, the worker stream, claims, checkpoints, heartbeats, secrets.

Every ``/workers/{name}/...`` call needs ``Authorization: Bearer <session token>`` of that
worker (401 otherwise, 403 with another worker's token).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query, Request
from flux.domain import utcnow
from flux.errors import ApiError
from flux.protocol import (
    PROTOCOL_VERSION,
    CheckpointBatchRequest,
    CheckpointBatchResponse,
    CheckpointRequest,
    CheckpointResponse,
    ClaimBatchRequest,
    ClaimBatchResponse,
    ClaimResponse,
    ConnectedFrame,
    HeartbeatRequest,
    HeartbeatResponse,
    KeepaliveFrame,
    LeaveResponse,
    RegisterWorkerRequest,
    RegisterWorkerResponse,
    ReleaseRequest,
    ReleaseResponse,
    SecretsResponse,
    WorkerInfo,
)
from flux.secrets import validate_secret_name
from starlette.responses import Response

from flux_server.api.deps import FluxRoute, RuntimeDep, WorkerName, json_response, model_response
from flux_server.auth import hash_token, new_token
from flux_server.hub import Connection
from flux_server.runtime import Runtime, draining
from flux_server.sse import event_stream, frame
from flux_server.store.workers import WorkerRecord

__all__ = ["router"]

log = logging.getLogger("flux.server.workers")

router = APIRouter(prefix="/workers", tags=["workers"], route_class=FluxRoute)


async def _bootstrap(request: Request) -> None:
    runtime: Runtime = request.app.state.runtime
    runtime.authenticator.check_bootstrap(request.headers.get("authorization"))
    if runtime.stopping:
        raise draining("registers no worker")


@router.get("", response_model=list[WorkerInfo])
async def list_workers(runtime: RuntimeDep) -> list[WorkerInfo]:
    """Every registered worker, its resources and how many executions it holds."""
    return await runtime.workers.list()


@router.post("/register", response_model=RegisterWorkerResponse, dependencies=[Depends(_bootstrap)])
async def register_worker(body: RegisterWorkerRequest, runtime: RuntimeDep) -> Response:
    """Start a worker session (``Authorization: Bearer <bootstrap token>``).

    Registering a name again ends its previous session: the old token stops working and the
    executions it held go back to the queue.
    """
    token = new_token()
    await runtime.workers.register(body, hash_token(token))
    runtime.hub.close(body.name)
    return model_response(
        RegisterWorkerResponse(
            name=body.name,
            session_token=token,
            heartbeat_interval=runtime.options.heartbeat_interval,
            protocol_version=PROTOCOL_VERSION,
        )
    )


@router.get("/{name}/connect", responses={200: {"content": {"text/event-stream": {}}}})
async def connect(
    name: WorkerName,
    runtime: RuntimeDep,
    push: bool = Query(
        False,
        description="Send claims (``execution.claimed``) instead of offers: the server offers "
        "and claims in one step (protocol 1.3)",
    ),
) -> Response:
    """The worker's Server-Sent Event stream (see ``flux.protocol.frames``). 503 while the
    server drains: the worker opens it on another server."""
    if runtime.stopping:
        raise draining("hands out no work")
    record = await runtime.workers.get(name)
    if record is None:  # deleted between authentication and now
        raise ApiError(f"worker {name!r} is not registered; register it again", 401)
    await runtime.workers.heartbeat(name, None)
    return event_stream(_worker_frames(runtime, record, push))


async def _worker_frames(
    runtime: Runtime, record: WorkerRecord, push: bool
) -> AsyncIterator[bytes]:
    name = record.name
    conn: Connection = runtime.hub.attach(
        name, record.capacity, record.resources, record.packages, push=push
    )
    runtime.dispatcher.wake()
    keepalive = runtime.options.sse_keepalive
    try:
        hello = ConnectedFrame(
            name=name, heartbeat_interval=runtime.options.heartbeat_interval, server_time=utcnow()
        )
        yield frame(ConnectedFrame.EVENT, hello)
        while True:
            try:
                async with asyncio.timeout(keepalive):
                    data = await conn.queue.get()
            except TimeoutError:
                yield frame(KeepaliveFrame.EVENT, KeepaliveFrame(time=utcnow()))
                continue
            if data is None:  # replaced by a newer connection, or declared dead
                return
            yield data
    finally:
        if runtime.hub.detach(conn):
            runtime.chore(runtime.executions.withdraw_offers(name))


@router.post("/{name}/claim/{execution_id}", response_model=ClaimResponse)
async def claim(name: WorkerName, execution_id: str, runtime: RuntimeDep) -> Response:
    """Take an execution; the answer holds everything needed to replay it. 409 when it is not
    claimable (another worker has it, or it finished or was cancelled); 503 while the server
    drains."""
    if runtime.stopping:
        raise draining("hands out no work")
    return json_response(await runtime.executions.claim(name, execution_id))


@router.post("/{name}/claims", response_model=ClaimBatchResponse)
async def claims(name: WorkerName, body: ClaimBatchRequest, runtime: RuntimeDep) -> Response:
    """Take several offered executions in one request and one transaction; each is claimed or
    refused on its own (``error.code`` ``conflict`` or ``not_found``). Sources whose hash is
    in ``known_sources`` come back empty; ``history_format="columns"`` sends each history
    column by column. 503 while the server drains."""
    if runtime.stopping:
        raise draining("hands out no work")
    results = await runtime.executions.claim_many(
        name, body.execution_ids, body.known_sources, body.history_format == "columns"
    )
    return json_response({"results": results})


@router.post("/{name}/checkpoint/{execution_id}", response_model=CheckpointResponse)
async def checkpoint(
    name: WorkerName, execution_id: str, body: CheckpointRequest, runtime: RuntimeDep
) -> Response:
    """Store new events (idempotent by id) and the output; answered after commit. 409 for a
    stale generation: the worker must abandon its copy."""
    return model_response(await runtime.executions.checkpoint(name, execution_id, body))


@router.post("/{name}/checkpoints", response_model=CheckpointBatchResponse)
async def checkpoints(
    name: WorkerName, body: CheckpointBatchRequest, runtime: RuntimeDep
) -> Response:
    """Checkpoints of several held executions in one request and one transaction. Each item
    is fenced on its own: a stale one comes back with an ``error`` (code ``conflict``).

    \f
    Without a query string, :mod:`flux_server.fastpath` answers it before routing and hands
    only what it does not take on to here: change both together.
    """
    results = await runtime.executions.checkpoint_many(name, body.items)
    return model_response(CheckpointBatchResponse(results=results))


@router.post("/{name}/release/{execution_id}", response_model=ReleaseResponse)
async def release(
    name: WorkerName, execution_id: str, body: ReleaseRequest, runtime: RuntimeDep
) -> Response:
    """Give a held execution back to the queue."""
    return model_response(await runtime.executions.release(name, execution_id, body))


@router.post("/{name}/heartbeat", response_model=HeartbeatResponse)
async def heartbeat(
    name: WorkerName, runtime: RuntimeDep, body: HeartbeatRequest | None = None
) -> Response:
    """Liveness; the answer lists what the server believes this worker holds. With ``running``,
    held executions missing from it and idle for the claim timeout are taken back."""
    resources = body.resources if body is not None else None
    await runtime.workers.heartbeat(name, resources)
    if resources is not None:
        runtime.hub.update_resources(name, resources)
    running = body.running if body is not None else None
    held, cancelling = await runtime.executions.held_by(
        name, running, runtime.options.claim_timeout
    )
    return model_response(
        HeartbeatResponse(
            heartbeat_interval=runtime.options.heartbeat_interval,
            held=held,
            cancelling=cancelling,
        )
    )


@router.post("/{name}/leave", response_model=LeaveResponse)
async def leave(name: WorkerName, runtime: RuntimeDep) -> Response:
    """This worker stops (protocol 1.14): it is disconnected at once (not when its heartbeats
    are missed), whatever it still holds goes back to the queue, and its stream closes."""
    released = await runtime.workers.leave(name)
    if released:
        log.warning("worker %r left holding %d execution(s): requeued", name, len(released))
    return model_response(LeaveResponse(released=released))


@router.get("/{name}/secrets/{execution_id}", response_model=SecretsResponse)
async def secrets(
    name: WorkerName,
    execution_id: str,
    runtime: RuntimeDep,
    names: str = Query("", description="Comma-separated secret names"),
) -> Response:
    """Secret values for an execution this worker holds, among those its workflow asked for
    (``secret_requests`` of the workflow and of the tasks in its file); 403 otherwise."""
    allowed = await runtime.workflows.secrets_for(name, execution_id)
    if allowed is None:
        raise ApiError(
            f"worker {name!r} does not hold execution {execution_id!r}; secrets are only given "
            "to the worker running it",
            403,
        )
    wanted = [validate_secret_name(n.strip()) for n in names.split(",") if n.strip()]
    refused = sorted(set(wanted) - set(allowed))
    if refused:
        listed = ", ".join(map(repr, refused))
        raise ApiError(
            f"execution {execution_id!r} did not ask for secret(s) {listed}: a worker is "
            "given only the secrets named by secret_requests of the workflow or of the tasks "
            "in its file (add them there and register it again)",
            403,
            refused=refused,
        )
    return model_response(SecretsResponse(secrets=await runtime.secrets.get_many(wanted)))
