"""flux.client against a mock transport: URLs, headers, bodies, error mapping, SSE parsing."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from flux.client import AsyncFluxClient, FluxClient, is_retryable
from flux.domain import EventType, ExecutionState
from flux.errors import ApiError, ConflictError, NotFoundError, ProtocolError, UsageError
from flux.protocol import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    ClaimResponse,
    ConnectedFrame,
    EventRecord,
    ExecutionScheduledFrame,
    ExecutionStatus,
    OutputRecord,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)
STATUS = ExecutionStatus(
    execution_id="e1",
    workflow_id="w1",
    workflow_name="my flow",
    workflow_version=1,
    state=ExecutionState.SCHEDULED,
    created_at=T0,
    updated_at=T0,
)

Handler = Callable[[httpx.Request], httpx.Response]


def _json(body: object, status: int = 200, **headers: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers={PROTOCOL_HEADER: PROTOCOL_VERSION, **headers})


def _client(handler: Handler) -> FluxClient:
    return FluxClient("http://flux.test", transport=httpx.MockTransport(handler))


def test_run_posts_json_input_with_the_protocol_header() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json(STATUS.model_dump(mode="json"))

    with _client(handler) as client:
        status = client.run("my flow", {"x": [1, 2]}, mode="sync")
    assert status == STATUS
    (request,) = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/workflows/my%20flow/run/sync"
    assert request.headers[PROTOCOL_HEADER] == PROTOCOL_VERSION
    assert request.headers["content-type"] == "application/json"
    assert json.loads(request.content) == {"x": [1, 2]}


def test_every_endpoint_builds_its_path() -> None:
    paths: list[tuple[str, str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append((request.method, request.url.path, request.url.query.decode()))
        path = request.url.path
        if path.endswith("/claim/e1"):
            claim = ClaimResponse(
                execution_id="e1", generation=1, workflow_id="w", workflow_name="f",
                workflow_version=1, source="", source_hash="h", input=None, events=[],
                state=ExecutionState.CLAIMED,
            )  # fmt: skip
            return _json(claim.model_dump(mode="json"))
        if "/checkpoint/" in path:
            return _json({"acknowledged": 1, "state": "RUNNING"})
        if "/release/" in path:
            return _json({"state": "SCHEDULED"})
        if path.endswith("/heartbeat"):
            return _json({"heartbeat_interval": 5, "held": ["e1"]})
        if "/secrets/" in path:
            return _json({"secrets": {"A": "1", "B": 2}})
        return _json(STATUS.model_dump(mode="json"))

    with _client(handler) as client:
        client.status("f", "e1", detailed=True)
        client.cancel("f", "e1", mode="sync")
        client.resume("f", "e1", {"ok": True})
        worker = client.worker("w-1", "tok")
        worker.claim("e1")
        event = EventRecord(
            id="ev", type=EventType.WORKFLOW_STARTED, source_id="e1", name="f", time=T0
        )
        assert worker.checkpoint("e1", 1, [event], OutputRecord(view=1)).acknowledged == 1
        assert worker.release("e1", 1, "draining").state == ExecutionState.SCHEDULED
        assert worker.heartbeat().held == ["e1"]
        assert worker.get_secrets("e1", ["A", "B"]) == {"A": "1", "B": 2}
    assert paths == [
        ("GET", "/workflows/f/status/e1", "detailed=true"),
        ("GET", "/workflows/f/cancel/e1", "mode=sync"),
        ("POST", "/workflows/f/resume/e1/async", ""),
        ("POST", "/workers/w-1/claim/e1", ""),
        ("POST", "/workers/w-1/checkpoint/e1", ""),
        ("POST", "/workers/w-1/release/e1", ""),
        ("POST", "/workers/w-1/heartbeat", ""),
        ("GET", "/workers/w-1/secrets/e1", "names=A%2CB"),
    ]


def test_worker_calls_carry_the_session_token_and_registration_the_bootstrap_token() -> None:
    auth: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        auth.append(request.headers.get("authorization"))
        if request.url.path == "/workers/register":
            body = {"name": "w", "session_token": "s3", "heartbeat_interval": 5,
                    "protocol_version": "1.0"}  # fmt: skip
            return _json(body)
        return _json({"heartbeat_interval": 5})

    from flux.protocol import RegisterWorkerRequest

    with _client(handler) as client:
        session = client.register_worker(RegisterWorkerRequest(name="w"), bootstrap_token="boot")
        client.worker(session.name, session.session_token).heartbeat()
    assert auth == ["Bearer boot", "Bearer s3"]


@pytest.mark.parametrize(
    ("status", "error"),
    [(404, NotFoundError), (409, ConflictError), (400, ApiError), (503, ApiError)],
)
def test_error_answers_become_flux_errors_with_the_server_message(status: int, error: type) -> None:
    body = {"type": "X", "code": "x", "message": "the server says no", "details": {"k": 1}}

    with _client(lambda r: _json(body, status)) as client, pytest.raises(error) as info:
        client.status("f", "e")
    assert info.value.message == "the server says no"
    assert info.value.status_code == status
    assert info.value.details["error_details"] == {"k": 1}


def test_426_and_a_foreign_major_version_are_protocol_errors() -> None:
    body = {"type": "ProtocolError", "code": "protocol_version", "message": "speak 2.0",
            "details": {}}  # fmt: skip
    with _client(lambda r: _json(body, 426)) as client, pytest.raises(ProtocolError, match=r"2\.0"):
        client.health()
    ok = {"status": "ok", "version": "9", "protocol_version": "2.0", "database": "sqlite"}
    with (
        _client(lambda r: _json(ok, **{PROTOCOL_HEADER: "2.0"})) as client,
        pytest.raises(ProtocolError, match=r"2\.0"),
    ):
        client.health()


def test_non_json_error_bodies_still_carry_their_text() -> None:
    with (
        _client(lambda r: httpx.Response(502, text="bad gateway")) as client,
        pytest.raises(ApiError, match="bad gateway") as info,
    ):
        client.list_workflows()
    assert is_retryable(info.value)


def test_unreachable_server_is_a_retryable_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with _client(handler) as client, pytest.raises(ApiError, match="cannot reach") as info:
        client.health()
    assert info.value.status_code == 0 and is_retryable(info.value)
    assert not is_retryable(ConflictError("fenced", 409))


def test_bad_arguments_fail_before_any_request() -> None:
    with _client(lambda r: pytest.fail("no request expected")) as client:
        with pytest.raises(UsageError, match="stream"):
            client.run("f", mode="stream")
        with pytest.raises(UsageError, match="unknown mode"):
            client.run("f", mode="fast")
        with pytest.raises(UsageError, match="JSON"):
            client.run("f", {1, 2})
        with pytest.raises(UsageError):
            client.status("", "e")
        with pytest.raises(UsageError, match="list"):
            client.worker("w", "t").get_secrets("e", "A,B")


def test_register_workflows_uploads_a_file(tmp_path) -> None:
    path = tmp_path / "flows.py"
    path.write_text("print('hi')\n")
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        return _json([])

    with _client(handler) as client:
        assert client.register_workflows(path) == []
    assert b'filename="flows.py"' in seen[0] and b"print('hi')" in seen[0]


SSE = (
    b"event: workflow.execution.running\n"
    b'data: {"execution_id": "e1", "state": "RUNNING", "timestamp": "2025-01-01T00:00:00Z"}\n\n'
    b": keepalive\n\n"
    b"event: workflow.execution.completed\n"
    b'data: {"execution_id": "e1", "state": "COMPLETED", "output": "hi", '
    b'"timestamp": "2025-01-01T00:00:01Z"}\n\n'
)


def test_stream_yields_execution_frames() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/workflows/f/run/stream"
        assert request.headers["accept"] == "text/event-stream"
        return httpx.Response(200, content=SSE, headers={"content-type": "text/event-stream"})

    with _client(handler) as client:
        frames = list(client.stream("f", 1))
    assert [f.state for f in frames] == ["RUNNING", "COMPLETED"]
    assert frames[-1].output == "hi"


async def test_async_worker_connect_yields_typed_frames() -> None:
    body = (
        b'event: connected\ndata: {"name": "w", "heartbeat_interval": 5, '
        b'"server_time": "2025-01-01T00:00:00Z"}\n\n'
        b"event: surprise\ndata: {}\n\n"
        b'event: execution.scheduled\ndata: {"execution_id": "e", "workflow_name": "f", '
        b'"workflow_version": 1}\n\n'
    )

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["authorization"] == "Bearer tok"
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    transport = httpx.MockTransport(handler)
    async with AsyncFluxClient("http://flux.test", transport=transport) as client:
        frames = [f async for f in client.worker("w", "tok").connect()]
    assert isinstance(frames[0], ConnectedFrame)
    assert frames[1] == ExecutionScheduledFrame(
        execution_id="e", workflow_name="f", workflow_version=1
    )
    assert len(frames) == 2


async def test_async_stream_error_answer_raises() -> None:
    body = {"type": "X", "code": "not_found", "message": "no workflow named 'f'", "details": {}}
    transport = httpx.MockTransport(lambda r: _json(body, 404))
    async with AsyncFluxClient("http://flux.test", transport=transport) as client:
        with pytest.raises(NotFoundError, match="no workflow"):
            async for _ in client.stream("f"):
                pass


def test_importing_the_client_loads_no_server_libraries() -> None:
    code = (
        "import sys, flux.client, flux.protocol\n"
        "bad = [m for m in ('fastapi', 'sqlalchemy', 'starlette', 'uvicorn') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
