"""flux.client's schedule and admin-secret methods against a mock transport: paths, query
parameters, bodies, answers, and the errors raised before anything is sent."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from flux.client import AsyncFluxClient, FluxClient
from flux.errors import NotFoundError, UsageError
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, ScheduleInfo, ScheduleState
from flux.schedules import cron, interval

T0 = datetime(2025, 1, 1, tzinfo=UTC)
INFO = ScheduleInfo(
    id="s1",
    name="nightly",
    workflow_name="my flow",
    schedule_config=cron("0 3 * * *").to_config(),
    state=ScheduleState.ACTIVE,
    next_run_at=T0,
    created_at=T0,
    updated_at=T0,
)

Handler = Callable[[httpx.Request], httpx.Response]


def _json(body: object, status: int = 200) -> httpx.Response:
    return httpx.Response(status, json=body, headers={PROTOCOL_HEADER: PROTOCOL_VERSION})


def _recording(answer: object, seen: list[httpx.Request]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json(answer)

    return handler


def test_schedule_calls_build_the_spec_urls() -> None:
    seen: list[httpx.Request] = []
    info = INFO.model_dump(mode="json")
    with FluxClient("http://flux.test", transport=httpx.MockTransport(_recording(info, seen))) as c:
        assert c.get_schedule("nightly") == INFO
        assert c.pause_schedule("a b/c") == INFO
        assert c.resume_schedule("s1") == INFO
    assert [(r.method, r.url.raw_path) for r in seen] == [
        ("GET", b"/schedules/nightly"),
        ("POST", b"/schedules/a%20b%2Fc/pause"),
        ("POST", b"/schedules/s1/resume"),
    ]

    seen.clear()

    def lists(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return _json([] if request.url.path.endswith("/history") else [info])

    with FluxClient("http://flux.test", transport=httpx.MockTransport(lists)) as c:
        assert c.list_schedules() == [INFO]
        c.list_schedules("my flow", active_only=True)
        assert c.schedule_history("nightly") == []
        c.schedule_history("nightly", limit=5)
    assert [dict(r.url.params) for r in seen[:2]] == [
        {"active_only": "false"},
        {"active_only": "true", "workflow_id": "my flow"},
    ]
    assert seen[2].url.path == "/schedules/nightly/history"
    assert [r.url.params["limit"] for r in seen[2:]] == ["50", "5"]


@pytest.mark.parametrize(
    ("schedule", "config"),
    [
        (interval(minutes=90), {"type": "interval", "interval_seconds": 5400}),
        (
            {"type": "cron", "cron_expression": "@daily"},
            {"type": "cron", "cron_expression": "@daily"},
        ),
    ],
)
def test_create_schedule_sends_the_config(schedule: object, config: dict[str, object]) -> None:
    seen: list[httpx.Request] = []
    handler = _recording(INFO.model_dump(mode="json"), seen)
    with FluxClient("http://flux.test", transport=httpx.MockTransport(handler)) as client:
        client.create_schedule("my flow", "nightly", schedule, description="d", input={"n": 1})  # type: ignore[arg-type]
    body = json.loads(seen[0].content)
    assert (seen[0].method, seen[0].url.path) == ("POST", "/schedules")
    assert body["schedule_config"].items() >= config.items()
    assert (body["workflow_name"], body["name"], body["description"], body["input"]) == (
        "my flow",
        "nightly",
        "d",
        {"n": 1},
    )


def test_bad_arguments_fail_before_sending() -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"sent {request.method} {request.url}")

    with FluxClient("http://flux.test", transport=httpx.MockTransport(unreachable)) as client:
        with pytest.raises(UsageError, match="schedule_config must be a Schedule"):
            client.create_schedule("wf", "s", "0 9 * * *")  # type: ignore[arg-type]
        for limit in (0, -1, True, 2.5):
            with pytest.raises(UsageError, match="limit must be a positive whole number"):
                client.schedule_history("s", limit=limit)  # type: ignore[arg-type]
        with pytest.raises(UsageError, match="non-empty name or id"):
            client.get_schedule("")
        with pytest.raises(UsageError) as caught:
            client.set_secret("API_KEY", {"s3cr3t-a", "s3cr3t-b"})  # a set is not JSON
        assert "secret 'API_KEY' must be a JSON value" in caught.value.message
        assert "s3cr3t" not in caught.value.message


async def test_secret_calls() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        match (request.method, request.url.path):
            case ("GET", "/admin/secrets"):
                return _json([{"name": "API_KEY", "updated_at": "2025-01-01T00:00:00Z"}])
            case ("GET", "/admin/secrets/API_KEY"):
                return _json({"name": "API_KEY", "value": {"token": "t0k"}})
            case ("POST", "/admin/secrets"):
                return _json({"name": "API_KEY", "updated_at": "2025-01-01T00:00:00Z"})
            case ("DELETE", "/admin/secrets/API_KEY"):
                return _json({"name": "API_KEY", "deleted": True})
        body = {"type": "SecretNotFoundError", "code": "secret_not_found", "message": "nope"}
        return _json({**body, "details": {}}, 404)

    async with AsyncFluxClient("http://flux.test", transport=httpx.MockTransport(handler)) as c:
        assert [s.name for s in await c.list_secrets()] == ["API_KEY"]
        assert await c.get_secret("API_KEY") == {"token": "t0k"}
        info = await c.set_secret("API_KEY", {"token": "t0k"})
        assert info.updated_at == T0
        assert (await c.delete_secret("API_KEY")).deleted
        with pytest.raises(NotFoundError, match="nope"):
            await c.get_secret("OTHER")
    assert json.loads(seen[2].content) == {"name": "API_KEY", "value": {"token": "t0k"}}
