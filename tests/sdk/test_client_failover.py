"""A client of several servers: which calls go to the next server after which failures, with
the ids that make a repeat harmless chosen before the first attempt. Servers here are a mock
transport that routes by host: ``down`` refuses connections, ``lost`` takes a request and
drops the connection before answering, ``busy`` answers 503, ``up`` answers."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from flux.client import AsyncFluxClient, FluxClient
from flux.client._servers import server_urls
from flux.domain import ExecutionState
from flux.errors import ApiError, UsageError
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, ExecutionStatus

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def _status(execution_id: str) -> dict[str, object]:
    return ExecutionStatus(
        execution_id=execution_id,
        workflow_id="w1",
        workflow_name="flow",
        workflow_version=1,
        state=ExecutionState.SCHEDULED,
        created_at=T0,
        updated_at=T0,
    ).model_dump(mode="json")


class Fleet:
    """Hosts ``down``, ``lost``, ``busy`` and ``up``; every request that reached one, in order."""

    def __init__(self) -> None:
        self.seen: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        if host == "down":
            raise httpx.ConnectError("connection refused", request=request)
        self.seen.append(request)
        if host == "lost":
            raise httpx.ReadError("connection reset", request=request)
        headers = {PROTOCOL_HEADER: PROTOCOL_VERSION}
        if host == "busy":
            body = {"type": "ApiError", "code": "api_error", "message": "draining", "details": {}}
            return httpx.Response(503, json=body, headers=headers)
        if request.url.path.endswith("/stream"):
            frame = {
                "execution_id": "e",
                "state": "COMPLETED",
                "output": 1,
                "timestamp": T0.isoformat(),
                "position": 1,
            }
            text = f"event: workflow.execution.completed\ndata: {json.dumps(frame)}\n\n"
            return httpx.Response(
                200, text=text, headers={**headers, "Content-Type": "text/event-stream"}
            )
        if request.url.path == "/schedules":
            return httpx.Response(409, json={"message": "exists"}, headers=headers)
        params = request.url.params
        chosen = params.get("execution_id") or params.get("new_id") or "made-by-the-server"
        return httpx.Response(200, json=_status(chosen), headers=headers)

    def hosts(self) -> list[str]:
        return [r.url.host for r in self.seen]


def _sync(fleet: Fleet, *hosts: str) -> FluxClient:
    return FluxClient([f"http://{h}" for h in hosts], transport=httpx.MockTransport(fleet))


def _async(fleet: Fleet, *hosts: str) -> AsyncFluxClient:
    return AsyncFluxClient([f"http://{h}" for h in hosts], transport=httpx.MockTransport(fleet))


def test_urls_are_split_on_commas_in_order_without_duplicates() -> None:
    assert server_urls("http://a:1/, http://b:2,http://a:1") == ["http://a:1", "http://b:2"]
    assert server_urls(["http://a", "http://b,http://c"]) == ["http://a", "http://b", "http://c"]
    for bad in ("", " , ", "a.example:8000", ["http://a", 3]):
        with pytest.raises(UsageError):
            server_urls(bad)  # type: ignore[arg-type]


def test_the_operations_doc_server_list_is_valid_settings() -> None:
    import re
    import tomllib
    from pathlib import Path

    from flux.config import WorkerSettings

    doc = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
    blocks = re.findall(r"```toml\n(.*?)```", doc.read_text(), flags=re.S)
    (block,) = [b for b in blocks if "[flux.workers]" in b]
    workers = WorkerSettings(**tomllib.loads(block)["flux"]["workers"])
    assert server_urls(workers.server_url) == ["http://server-a:8000", "http://server-b:8000"]


def test_a_call_moves_to_the_next_server_and_stays_there() -> None:
    fleet = Fleet()
    with _sync(fleet, "down", "up") as client:
        client.status("flow", "e1")
        assert client.base_url.startswith("http://up")
        client.status("flow", "e2")
    assert fleet.hosts() == ["up", "up"]  # the second call went to the one that answered


def test_a_run_carries_one_id_chosen_before_its_first_attempt() -> None:
    fleet = Fleet()
    with _sync(fleet, "lost", "up") as client:
        status = client.run("flow", {"x": 1})
    first, second = fleet.seen
    assert first.url.params["execution_id"] == second.url.params["execution_id"]
    assert status.execution_id == first.url.params["execution_id"]
    assert first.content == second.content


def test_a_client_of_one_server_chooses_no_id_and_does_not_repeat() -> None:
    fleet = Fleet()
    with FluxClient("http://lost", transport=httpx.MockTransport(fleet)) as client:
        with pytest.raises(ApiError) as info:
            client.run("flow", 1)
        assert info.value.status_code == 0
    (request,) = fleet.seen
    assert "execution_id" not in request.url.params


def test_a_call_that_may_have_been_done_is_not_repeated_unless_repeating_is_harmless() -> None:
    fleet = Fleet()
    with _sync(fleet, "lost", "up") as client:
        with pytest.raises(ApiError, match=r"cannot reach the Flux server at http://lost") as info:
            client.create_schedule("flow", "nightly", {"type": "interval", "seconds": 60})
        assert info.value.status_code == 0
        assert fleet.hosts() == ["lost"]
        # A connection that was never made took nothing: any call moves on.
    fleet.seen.clear()
    with _sync(fleet, "down", "up") as client:
        with pytest.raises(ApiError) as info:
            client.create_schedule("flow", "nightly", {"type": "interval", "seconds": 60})
        assert info.value.status_code == 409  # answered by "up"
    assert fleet.hosts() == ["up"]


def test_a_503_moves_a_repeatable_call_on_and_is_the_answer_of_any_other() -> None:
    fleet = Fleet()
    with _sync(fleet, "busy", "up") as client:
        client.resume("flow", "e1", "yes", mode="sync")
        assert fleet.hosts() == ["busy", "up"]
        first, second = fleet.seen
        assert first.url.params["resume_id"] == second.url.params["resume_id"]
    fleet.seen.clear()
    with _sync(fleet, "busy", "up") as client:
        with pytest.raises(ApiError) as info:
            client.delete_secret("token")
        assert info.value.status_code == 503
    assert fleet.hosts() == ["busy"]


def test_when_no_server_answers_the_error_names_them_all() -> None:
    fleet = Fleet()
    with _sync(fleet, "down", "lost") as client:
        with pytest.raises(ApiError, match=r"servers at http://down, http://lost") as info:
            client.health()
    assert info.value.status_code == 0


def test_a_stream_opens_on_the_next_server() -> None:
    fleet = Fleet()
    with _sync(fleet, "down", "busy", "up") as client:
        frames = list(client.stream("flow", 1))
    assert [f.state for f in frames] == ["COMPLETED"]
    busy, up = fleet.seen
    assert busy.url.params["execution_id"] == up.url.params["execution_id"]


async def test_the_async_client_moves_on_alike() -> None:
    fleet = Fleet()
    async with _async(fleet, "down", "lost", "busy", "up") as client:
        status = await client.run("flow", 1, mode="sync")
        assert client.base_url.startswith("http://up")
        chosen = {r.url.params["execution_id"] for r in fleet.seen}
        assert chosen == {status.execution_id}
        assert fleet.hosts() == ["lost", "busy", "up"]
        frames = [f async for f in client.stream_execution("e1")]
        assert [f.state for f in frames] == ["COMPLETED"]
        rerun = await client.rerun("e1")
        assert rerun.execution_id == fleet.seen[-1].url.params["new_id"]
    fleet.seen.clear()
    async with _async(fleet, "lost", "up") as client:
        with pytest.raises(ApiError) as info:
            await client.delete_schedule("nightly")
        assert info.value.status_code == 0


def test_the_one_server_client_keeps_its_base_url_and_messages() -> None:
    handler: Callable[[httpx.Request], httpx.Response] = Fleet()
    with FluxClient("http://down:8000/", transport=httpx.MockTransport(handler)) as client:
        assert client.server_urls == ["http://down:8000"]
        with pytest.raises(ApiError, match=r"cannot reach the Flux server at http://down:8000: "):
            client.health()
