"""Bad input of every kind gets a 4xx with the one error shape, never a 500."""

from __future__ import annotations

import pytest
from flux.domain import EventType
from server_support import BOOTSTRAP, record

ERROR_KEYS = {"type", "code", "message", "details"}

# (method, path, body or None, content type, acceptable statuses); ``{e}`` is a real execution id.
CASES = [
    ("POST", "/workflows/hello/run/async", b"{not json", "application/json", {400}),
    ("POST", "/workflows/hello/run/async", b"NaN", "application/json", {400}),
    ("POST", "/workflows/hello/run/async", b'"\\ud800"', "application/json", {400}),
    (
        "POST",
        "/workflows/hello/run/async",
        b"[" * 100_000 + b"]" * 100_000,
        "application/json",
        {400, 413},
    ),
    ("POST", "/workflows/hello/run/async", b'{"a": "\\u0000"}', "application/json", {200}),
    ("POST", "/workflows/hello/run/later", b"1", "application/json", {400}),
    ("POST", "/workflows/nope/run/async", b"1", "application/json", {404}),
    ("POST", "/workflows/hello/resume/{e}/async", b"1", "application/json", {409}),
    ("POST", "/workflows/hello/resume/nope/async", b"1", "application/json", {404}),
    ("POST", "/workflows/hello/resume/{e}/bogus", b"1", "application/json", {400}),
    ("GET", "/workflows/hello/status/{e}?detailed=maybe", None, None, {422}),
    ("GET", "/workflows/hello/status/nope", None, None, {404}),
    ("GET", "/workflows/hello%00x/status/nope", None, None, {400}),
    ("GET", "/workflows/hello/cancel/{e}?mode=whenever", None, None, {400}),
    ("GET", "/workflows/other/cancel/{e}", None, None, {404}),
    ("POST", "/workflows", b'{"file": "x"}', "application/json", {400, 422}),
    ("POST", "/workflows", b"--x\r\ngarbage", "multipart/form-data; boundary=x", {400, 422}),
    ("POST", "/workflows", b"garbage", "multipart/form-data", {400, 422}),
    ("DELETE", "/workflows", None, None, {405}),
    ("GET", "/no/such/route", None, None, {404}),
    ("POST", "/workers/register", b"{", "application/json", {400}),
    ("POST", "/workers/register", b'{"name": "bad name!"}', "application/json", {422}),
    ("POST", "/workers/register", b'{"name": "ok", "capacity": 0}', "application/json", {422}),
    ("POST", "/workers/register", b"[]", "application/json", {422}),
    ("POST", "/workers/w1/heartbeat", b'{"resources": "lots"}', "application/json", {422}),
    ("POST", "/workers/w1/claim/nope", None, None, {404}),
    ("POST", "/workers/w1/checkpoint/{e}", b"{", "application/json", {400}),
    ("POST", "/workers/w1/checkpoint/{e}", b'{"generation": "x"}', "application/json", {422}),
    ("POST", "/workers/w1/checkpoint/{e}", b'{"events": []}', "application/json", {422}),
    ("POST", "/workers/w1/release/{e}", b"{}", "application/json", {422}),
    ("POST", "/workers/w1/release/nope", b'{"generation": 1}', "application/json", {404}),
    ("GET", "/workers/w1/secrets/{e}?names=bad%20name", None, None, {400}),
    ("GET", "/workers/w1/secrets/nope?names=A", None, None, {403}),
    # Before: false was taken where the schema says integer (or number).
    ("POST", "/executions/prune", b'{"older_than": false}', "application/json", {422}),
    ("POST", "/executions/prune", b'{"older_than": 1e300}', "application/json", {422}),
    ("POST", "/workers/w1/release/{e}", b'{"generation": true}', "application/json", {422}),
    ("POST", "/workers/register", b'{"name": "w9", "capacity": true}', "application/json", {422}),
]


@pytest.fixture
async def prepared(server):
    await server.register()
    worker = await server.worker("w1")
    await server.client.run("hello")
    claim = await worker.take()
    return server, worker, claim


async def test_bad_requests_get_a_clean_4xx(prepared) -> None:
    """One server for all cases (starting one per case would dominate the suite's time)."""
    server, worker, claim = prepared
    wrong = []
    for method, path, body, content_type, expected in CASES:
        token = BOOTSTRAP if path == "/workers/register" else worker.ch.session_token
        headers = {"Authorization": f"Bearer {token}"}
        if content_type:
            headers["Content-Type"] = content_type
        url = path.format(e=claim.execution_id)
        response = await server.http.request(method, url, content=body, headers=headers)
        ok = response.status_code in expected
        if ok and response.status_code >= 400:
            ok = set(response.json()) == ERROR_KEYS and bool(response.json()["message"])
        if not ok:
            wrong.append(f"{method} {url[:60]} -> {response.status_code} {response.text[:200]}")
    assert not wrong, "\n".join(wrong)


T = "2025-01-01T00:00:00Z"
BAD_EVENTS = [
    {"id": "", "type": "TASK_STARTED", "source_id": "s", "name": "n", "time": T},
    {"id": "e", "type": "NOT_A_TYPE", "source_id": "s", "name": "n", "time": T},
    {"id": "e", "type": "TASK_STARTED", "source_id": "s", "name": "n", "time": "yesterday"},
    {"id": "e", "type": "TASK_STARTED", "source_id": "s", "name": "n", "time": T, "value": "%%%"},
    {"id": "e\u0000", "type": "TASK_STARTED", "source_id": "s", "name": "n", "time": T},
    {"id": "e2", "type": "TASK_STARTED", "source_id": "s", "name": "n", "time": T,
     "view": {"text": "\u0000 is fine in a view"}},
]  # fmt: skip


async def test_bad_events_are_refused_whole(prepared) -> None:
    server, worker, claim = prepared
    headers = {"Authorization": f"Bearer {worker.ch.session_token}"}
    url = f"/workers/w1/checkpoint/{claim.execution_id}"
    for event in BAD_EVENTS:
        body = {"generation": claim.generation, "events": [event]}
        response = await server.http.post(url, json=body, headers=headers)
        if event["id"] == "e2":
            assert response.status_code == 200, response.text
            continue
        assert response.status_code in (400, 422), (event, response.text)
        assert set(response.json()) == ERROR_KEYS
    ok = await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
    )
    assert ok.acknowledged == 1
    status = await server.client.status("hello", claim.execution_id, detailed=True)
    # Only the good checkpoints were stored: the event with a NUL in its view, then this one.
    assert [e.type for e in status.events] == ["TASK_STARTED", "WORKFLOW_STARTED"]
    assert status.events[0].view == {"text": "\u0000 is fine in a view"}


async def test_unreachable_workflow_names_are_refused(server) -> None:
    # Before: " ", ".." and "a b" were accepted (awkward in URLs and on command lines).
    for name in ["with/slash", "tab\there", "x" * 300, " ", "..", "a b", ".hidden", "-x", ""]:
        source = f"from flux import workflow\n@workflow.with_options(name={name!r})\n"
        source += "async def f(ctx): ...\n"
        response = await server.http.post(
            "/workflows", files={"file": ("f.py", source.encode(), "text/x-python")}
        )
        assert response.status_code == 400
        assert "name=" in response.json()["message"]


async def test_a_function_name_that_is_no_workflow_name_needs_name(server) -> None:
    source = "from flux import workflow\n@workflow\nasync def caf\u00e9(ctx): ...\n"
    response = await server.http.post(
        "/workflows", files={"file": ("f.py", source.encode(), "text/x-python")}
    )
    assert response.status_code == 400
    assert "with_options(name=...)" in response.json()["message"]
