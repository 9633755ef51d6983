"""``POST /workers/{name}/checkpoints`` and ``POST /workflows/{name}/run/sync|async`` are
answered by a middleware when all is ordinary (flux_server.fastpath); anything else must get
exactly the route's answer. Its routes are held to the app's, and a fallback is logged."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from flux.domain import EventType
from flux.protocol import (
    PROTOCOL_HEADER,
    PROTOCOL_VERSION,
    CheckpointBatchRequest,
    CheckpointItem,
    ClaimBatchResponse,
    ExecutionStatus,
)
from flux.serialization import b64decode, loads
from flux_server import ServerOptions, create_app
from flux_server.api.deps import JSON_BODY
from flux_server.fastpath import ROUTES, FastRoute
from server_support import JSON, record
from starlette.routing import Match

LOGGER = "flux.server.fastpath"


async def _held(server) -> tuple[Any, Any]:
    await server.register()
    worker = await server.worker("w1", capacity=4)
    run = await server.client.run("hello", 1)
    claim = await worker.claim(run.execution_id)
    return worker, claim


def _body(claim, *records) -> dict[str, Any]:
    item = CheckpointItem(
        execution_id=claim.execution_id, generation=claim.generation, events=list(records)
    )
    return {"items": [item.model_dump(mode="json")]}


async def _events(server, execution_id: str) -> int:
    status = await server.client.status("hello", execution_id, detailed=True)
    return len(status.events or [])


async def test_an_ordinary_batch_is_stored_and_answered(server) -> None:
    worker, claim = await _held(server)
    http = server.http
    auth = {"Authorization": f"Bearer {worker.ch.session_token}"}
    body = _body(claim, record(EventType.WORKFLOW_STARTED), record(EventType.TASK_STARTED))
    response = await http.post("/workers/w1/checkpoints", json=body, headers=auth)
    assert response.status_code == 200
    assert response.headers[PROTOCOL_HEADER] == PROTOCOL_VERSION
    assert response.headers["content-type"] == "application/json"
    [result] = response.json()["results"]
    assert (result["execution_id"], result["acknowledged"], result["state"]) == (
        claim.execution_id,
        2,
        "RUNNING",
    )
    assert await _events(server, claim.execution_id) == 2
    # The same again (a lost answer): acknowledged, nothing stored twice.
    again = await http.post("/workers/w1/checkpoints", json=body, headers=auth)
    assert again.json()["results"] == response.json()["results"]
    assert await _events(server, claim.execution_id) == 2
    # Text that merely spells NaN or Infinity is stored as sent.
    spelled = _body(claim, record(EventType.TASK_COMPLETED, ["NaN", "-Infinity"], name="NaN"))
    stored = await http.post("/workers/w1/checkpoints", json=spelled, headers=auth)
    assert stored.json()["results"][0]["acknowledged"] == 1
    status = await server.client.status("hello", claim.execution_id, detailed=True)
    assert status.events is not None and status.events[-1].name == "NaN"
    assert status.events[-1].view == ["NaN", "-Infinity"]


async def test_refusals_are_the_routes_own(server) -> None:
    worker, claim = await _held(server)
    other = await server.worker("w2", connect=False)
    http = server.http
    mine = {"Authorization": f"Bearer {worker.ch.session_token}"}
    theirs = {"Authorization": f"Bearer {other.ch.session_token}"}
    body = _body(claim, record(EventType.WORKFLOW_STARTED))

    no_token = await http.post("/workers/w1/checkpoints", json=body)
    assert no_token.status_code == 401
    assert no_token.headers["www-authenticate"] == "Bearer"
    foreign = await http.post("/workers/w1/checkpoints", json=body, headers=theirs)
    assert foreign.status_code == 403
    assert "another worker" in foreign.json()["message"]

    # Bodies the route refuses get the same answer as from a route the fast path never serves.
    for content, content_type in [
        (b"{", "application/json"),
        (b'{"items": 5}', "application/json"),
        (b'{"items": []}', "text/plain"),
    ]:
        headers = {**mine, "content-type": content_type}
        fast = await http.post("/workers/w1/checkpoints", content=content, headers=headers)
        plain = await http.post("/workers/w1/claims", content=content, headers=headers)
        assert fast.status_code == plain.status_code, content
        assert fast.status_code in (400, 422), content
        assert fast.json()["code"] == plain.json()["code"]

    # Numbers JSON has no room for, and a lone surrogate: refused, never stored.
    for literal in (b"NaN", b"-Infinity", b'"\\ud800"'):
        raw = json.dumps(body).replace('"view": null', '"view": __V__', 1).encode()
        assert b"__V__" in raw
        headers = {**mine, "content-type": "application/json"}
        sent = raw.replace(b"__V__", literal)
        refused = await http.post("/workers/w1/checkpoints", content=sent, headers=headers)
        assert refused.status_code in (400, 422), literal
    assert await _events(server, claim.execution_id) == 0

    bad = _body(claim, record(EventType.WORKFLOW_STARTED))
    bad["items"][0]["events"][0]["value"] = "not base64!"
    refused = await http.post("/workers/w1/checkpoints", json=bad, headers=mine)
    assert refused.status_code == 400
    assert "base64" in refused.json()["message"]
    assert await _events(server, claim.execution_id) == 0


async def test_a_store_error_reaches_the_route_once_more(server, monkeypatch) -> None:
    """An error from the store (rolled back) hands the request to the route, which stores
    nothing either and answers it; an ordinary batch is stored by one call."""
    worker, claim = await _held(server)
    store = server.runtime.executions
    calls = []
    real = store.checkpoint_many

    async def counted(name, items):
        calls.append(len(items))
        return await real(name, items)

    monkeypatch.setattr(store, "checkpoint_many", counted)
    good = [CheckpointItem(**_body(claim, record(EventType.WORKFLOW_STARTED))["items"][0])]
    assert (await worker.ch.checkpoints(good)).results[0].error is None
    assert calls == [1]
    bad = _body(claim, record(EventType.TASK_STARTED))["items"][0]
    bad["events"][0]["value"] = "not base64!"
    response = await server.http.post(
        "/workers/w1/checkpoints",
        json={"items": [bad]},
        headers={"Authorization": f"Bearer {worker.ch.session_token}"},
    )
    assert response.status_code == 400
    assert calls == [1, 1, 1]
    assert await _events(server, claim.execution_id) == 1


async def _executions(server) -> int:
    async with server.runtime.db.read() as conn:
        return (await conn.execute(sa.text("SELECT count(*) FROM executions"))).scalar_one()


async def test_runs_are_answered_as_the_route_answers_them(server) -> None:
    await server.register()
    worker = await server.worker()
    http = server.http
    started = await http.post("/workflows/hello/run/async", json="World")
    assert started.status_code == 200
    assert started.headers[PROTOCOL_HEADER] == PROTOCOL_VERSION
    status = started.json()
    assert (status["state"], status["input"], status["workflow_name"]) == (
        "SCHEDULED",
        "World",
        "hello",
    )
    read = await http.get(f"/workflows/hello/status/{status['execution_id']}")
    assert read.json() == status

    await worker.finish(await worker.take(), "done")

    async def work() -> None:
        for _ in range(2):
            claim = await worker.take()
            await worker.finish(claim, f"Hello, {loads(b64decode(claim.input))}")

    job = asyncio.create_task(work())
    waited = await http.post("/workflows/hello/run/sync", json="World")
    empty = await http.post("/workflows/hello/run/sync", content=b"  ", headers=JSON)  # null
    await job
    assert (waited.json()["state"], waited.json()["output"]) == ("COMPLETED", "Hello, World")
    assert (empty.json()["state"], empty.json()["output"]) == ("COMPLETED", "Hello, None")
    assert await _executions(server) == 3

    # Refused before anything is created: the route's own answers, nothing stored.
    unknown = await http.post("/workflows/nope/run/sync", json=1)
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    garbled = await http.post("/workflows/hello/run/async", content=b"{nope", headers=JSON)
    assert garbled.status_code == 400
    assert "JSON" in garbled.json()["message"]
    assert await _executions(server) == 3


async def test_a_failure_after_the_run_was_created_is_answered_once(server, monkeypatch) -> None:
    """The execution exists: the answer is the application's error answer, and the request is
    not handed to the route, which would start the workflow a second time."""
    from flux_server import fastpath

    await server.register()

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the answer could not be made")

    monkeypatch.setattr(fastpath, "answer_run", broken)
    response = await server.http.post("/workflows/hello/run/sync", json=1)
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert await _executions(server) == 1


# -- the fast routes are the app's ----------------------------------------------------------------


def _disagreements(app: FastAPI, fast: FastRoute) -> list[str]:
    """How ``fast`` differs from the app's route for its method and template (none: agrees)."""
    contexts = list(iter_route_contexts(app.routes))
    same = [
        c
        for c in contexts
        if isinstance(c.original_route, APIRoute)
        and c.path == fast.template
        and fast.method in (c.methods or ())
    ]
    if len(same) != 1:
        return [f"{len(same)} routes of the app are {fast.method} {fast.template}"]
    [context] = same
    route = context.original_route
    assert isinstance(route, APIRoute)
    problems = []
    # Every path the fast path takes reaches this route, not one declared before it.
    values = [fast.only.get(p, ("x1",)) for p in fast.parameters]
    for chosen in itertools.product(*values):
        path = fast.template.format(**dict(zip(fast.parameters, chosen, strict=True)))
        scope = {"type": "http", "method": fast.method, "path": path, "root_path": ""}
        first = next((c for c in contexts if c.matches(scope)[0] == Match.FULL), None)
        if first is None or first.original_route is not route:
            problems.append(f"{fast.method} {path} is not answered by {fast.template}")
    bodies = [p.field_info.annotation for p in route.dependant.body_params]
    if fast.request_model is None:
        if bodies or (route.openapi_extra or {}).get("requestBody") != JSON_BODY["requestBody"]:
            problems.append(f"the route's body is {bodies}, not any JSON value")
    elif bodies != [fast.request_model]:
        problems.append(f"the route's body is {bodies}, not {fast.request_model.__name__}")
    if route.response_model is not fast.response_model:
        problems.append(f"the route answers {route.response_model}, not {fast.response_model}")
    if "flux_server.fastpath" not in (route.endpoint.__doc__ or ""):
        problems.append(f"{route.endpoint.__qualname__}'s docstring does not name the fast path")
    return problems


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    return create_app(ServerOptions(database_url=f"sqlite:///{tmp_path}/flux.db", home=tmp_path))


@pytest.mark.parametrize("fast", ROUTES, ids=lambda r: f"{r.method} {r.template}")
def test_each_fast_route_is_a_route_of_the_app(app: FastAPI, fast: FastRoute) -> None:
    assert _disagreements(app, fast) == []


@pytest.mark.parametrize(
    "change",
    [
        {"template": "/workers/{worker}/checkpoints"},
        {"template": "/workers/{name}/claims"},
        {"method": "PUT"},
        {"request_model": ExecutionStatus},
        {"request_model": None},
        {"response_model": ClaimBatchResponse},
    ],
    ids=str,
)
def test_a_fast_route_unlike_the_apps_is_found(app: FastAPI, change: dict[str, Any]) -> None:
    [checkpoints] = [r for r in ROUTES if r.request_model is CheckpointBatchRequest]
    assert _disagreements(app, dataclasses.replace(checkpoints, **change)) != []


def test_a_route_declared_first_is_found(app: FastAPI) -> None:
    """A route that would catch a fast route's requests before it, as the app routes them."""

    @app.post("/workflows/{name}/run/sync")
    async def earlier(name: str) -> None:
        """Takes the sync runs (flux_server.fastpath)."""

    app.router.routes.insert(0, app.router.routes.pop())
    [run] = [r for r in ROUTES if r.response_model is ExecutionStatus]
    assert _disagreements(app, run) == [
        "POST /workflows/x1/run/sync is not answered by /workflows/{name}/run/{mode}"
    ]


# -- fallbacks: logged, and answered as the route answers ----------------------------------------


def _fallbacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    records = [r for r in caplog.records if r.name == LOGGER]
    assert all(r.levelno == logging.DEBUG for r in records)
    messages = [r.getMessage() for r in records]
    caplog.clear()
    return messages


async def test_the_guard_and_the_gate_answer_fast_routes_too(server, caplog) -> None:
    """The fast path asks the guard's and the gate's checks itself: their refusals, each with
    the server's version header, and nothing created."""
    await server.register()
    http = server.http
    run = "/workflows/hello/run/async"
    refusals = [
        ({PROTOCOL_HEADER: "99.0"}, 426),
        ({"Origin": "https://evil.example"}, 403),
        ({"Sec-Fetch-Site": "cross-site"}, 403),
        ({"Host": "rebound.example"}, 403),
        ({"Content-Type": "text/plain"}, 415),
    ]
    for headers, status in refusals:
        refused = await http.post(run, content=b"1", headers={**JSON, **headers})
        assert refused.status_code == status, headers
        assert refused.headers[PROTOCOL_HEADER] == PROTOCOL_VERSION, headers
        assert refused.json()["message"], headers
    assert await _executions(server) == 0

    # A body of unannounced length goes the long way, where the guard watches it.
    caplog.set_level(logging.DEBUG, logger=LOGGER)

    async def chunks() -> Any:
        yield b'"Wor'
        yield b'ld"'

    streamed = await http.post(run, content=chunks(), headers=JSON)
    assert streamed.status_code == 200 and streamed.json()["input"] == "World"
    assert streamed.headers[PROTOCOL_HEADER] == PROTOCOL_VERSION
    assert _fallbacks(caplog) == [
        f"POST {run!r} goes on to the route: a body of unannounced length (the guard watches it)"
    ]
    assert await _executions(server) == 1


async def test_a_fallback_is_logged_with_its_reason(server, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    worker, claim = await _held(server)
    http = server.http
    body = _body(claim, record(EventType.WORKFLOW_STARTED))
    caplog.clear()

    stranger = {"Authorization": "Bearer not-a-token"}
    refused = await http.post("/workers/w1/checkpoints", json=body, headers=stranger)
    assert refused.status_code == 401
    [message] = _fallbacks(caplog)
    assert message == (
        "POST '/workers/w1/checkpoints' goes on to the route: ApiError: "
        "unknown or expired session token; register the worker again"
    )

    # One line for an error of many lines too.
    mine = {"Authorization": f"Bearer {worker.ch.session_token}"}
    shapeless = {"items": [{"execution_id": 1}, {"generation": "x"}]}
    invalid = await http.post("/workers/w1/checkpoints", json=shapeless, headers=mine)
    assert invalid.status_code == 422
    [message] = _fallbacks(caplog)
    assert message.startswith("POST '/workers/w1/checkpoints' goes on to the route: ")
    assert "ValidationError" in message and "\n" not in message

    stored = await http.post("/workers/w1/checkpoints", json=body, headers=mine)
    assert stored.status_code == 200
    assert _fallbacks(caplog) == []


async def test_the_fast_answer_is_the_routes(server, caplog) -> None:
    """The same requests answered by the fast path and, with a query string it ignores, by the
    route: the same status and body."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    worker, claim = await _held(server)
    http = server.http
    mine = {"Authorization": f"Bearer {worker.ch.session_token}"}
    body = _body(claim, record(EventType.WORKFLOW_STARTED), record(EventType.TASK_STARTED))
    caplog.clear()

    async def both(path: str, **request: Any) -> tuple[Any, Any]:
        routed = await http.post(path, params={"via": "route"}, **request)
        assert _fallbacks(caplog)[-1].endswith("a query string (the route parses it)")
        fast = await http.post(path, **request)
        return routed, fast

    # Stored by the route, then acknowledged by either with the same results.
    routed, fast = await both("/workers/w1/checkpoints", json=body, headers=mine)
    assert _fallbacks(caplog) == []
    assert (routed.status_code, routed.json()) == (fast.status_code, fast.json())
    assert routed.json()["results"][0]["acknowledged"] == 2
    again = await http.post("/workers/w1/checkpoints", json=body, headers=mine, params={"a": 1})
    assert again.json() == fast.json()
    assert await _events(server, claim.execution_id) == 2

    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        routed, fast = await both("/workers/w1/checkpoints", json=body, headers=headers)
        assert (routed.status_code, routed.json()) == (fast.status_code, fast.json())
        assert fast.status_code == 401

    await server.register()
    for request in ({"json": "World"}, {"content": b""}, {"content": b"{nope", "headers": JSON}):
        routed, fast = await both("/workflows/hello/run/async", **request)
        assert routed.status_code == fast.status_code, request
        assert _comparable(routed.json()) == _comparable(fast.json()), request
    routed, fast = await both("/workflows/nope/run/async", json=1)
    assert (routed.status_code, routed.json()) == (fast.status_code, fast.json())
    assert fast.status_code == 404


async def test_a_run_with_a_chosen_id_takes_the_fast_path(server, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    await server.register()
    caplog.clear()
    first = await server.http.post(
        "/workflows/hello/run/async", params={"execution_id": "order-7"}, json="a"
    )
    again = await server.http.post(
        "/workflows/hello/run/async", params={"execution_id": "order-7"}, json="b"
    )
    assert _fallbacks(caplog) == []
    assert first.status_code == again.status_code == 200
    assert first.json()["execution_id"] == again.json()["execution_id"] == "order-7"
    assert again.json()["input"] == "a"  # the existing execution
    # Anything else in the query string, or an id a client may not choose: the route's.
    for params in ({"execution_id": "order-8", "detailed": "true"}, {"execution_id": "a b"}):
        answer = await server.http.post("/workflows/hello/run/async", params=params, json=1)
        assert _fallbacks(caplog)[-1].endswith("a query string (the route parses it)")
        assert answer.status_code == (200 if "detailed" in params else 422)


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    """An answer without what differs between two new executions."""
    return {
        k: v for k, v in answer.items() if k not in ("execution_id", "created_at", "updated_at")
    }
