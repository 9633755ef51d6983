"""The console's pages in process, on SQLite and PostgreSQL: each renders, the timeline reads
a history as the database groups it, forms refuse other origins. (The browser tests in
tests/console drive the same pages through Chromium.)"""

from __future__ import annotations

import re

from flux.domain import EventType
from flux_server.store import history
from server_support import Server, record

E = EventType


async def _history(server: Server, events: list[tuple[EventType, str]]) -> str:
    """An execution of ``hello`` whose log holds ``events`` (type, task source id) after its
    start; left running."""
    await server.register()
    worker = await server.worker()
    started = await server.client.run("hello", "x")
    claim = await worker.take()
    records = [record(E.WORKFLOW_STARTED)]
    records += [
        record(kind, 1, name=source.split(":")[0], source_id=source) for kind, source in events
    ]
    await worker.checkpoint(started.execution_id, claim.generation, records)
    return started.execution_id


async def test_task_calls_are_grouped_and_counted_by_the_database(server: Server) -> None:
    execution_id = await _history(
        server,
        [
            (E.TASK_STARTED, "a:1"),
            (E.TASK_COMPLETED, "a:1"),
            (E.TASK_STARTED, "b:1"),
            (E.TASK_RETRY_STARTED, "b:1"),
            (E.TASK_RETRY_FAILED, "b:1"),
            (E.TASK_RETRY_STARTED, "b:1"),
            (E.TASK_RETRY_COMPLETED, "b:1"),
            (E.TASK_COMPLETED, "b:1"),
            (E.TASK_STARTED, "c:1"),
            (E.TASK_FAILED, "c:1"),
            (E.TASK_STARTED, "pause:1"),
            (E.TASK_PAUSED, "pause:1"),
            (E.TASK_STARTED, "d:1"),
        ],
    )
    calls = await history.task_calls(server.runtime.db, execution_id, edge=10)
    assert [(c.name, c.outcome, c.retries, c.failures) for c in calls.calls] == [
        ("a", "completed", 0, 0),
        ("b", "completed", 2, 1),
        ("c", "failed", 0, 1),
        ("pause", "paused", 0, 0),
        ("d", "pending", 0, 0),
    ]
    assert calls.calls[-1].ended is None and calls.calls[0].ended is not None
    assert (calls.total, calls.failed, calls.retries, calls.pending, calls.hidden) == (
        5,
        1,
        2,
        1,
        0,
    )
    assert calls.start is not None and calls.end is not None and calls.start <= calls.end

    # A long history: the first and the last calls, and how many are left out between.
    edges = await history.task_calls(server.runtime.db, execution_id, edge=2)
    assert [c.name for c in edges.calls] == ["a", "b", "pause", "d"]
    assert edges.hidden == 1 and edges.total == 5

    page = await server.http.get(f"/console/executions/{execution_id}")
    assert page.status_code == 200
    text = page.text
    assert "5 task calls" in text and "1 failed" in text and "2 retries" in text
    assert "1 pending" in text
    assert len(re.findall(r'<li class="bar bar-', text)) == 5


async def test_every_console_page_renders(server: Server) -> None:
    execution_id = await _history(server, [(E.TASK_STARTED, "a:1")])
    await server.client.set_secret("token", "value-never-shown-12345")
    await server.client.create_schedule(
        "hello", "nightly", {"type": "cron", "cron_expression": "0 3 * * *"}
    )
    paths = [
        "/console",
        "/console/executions",
        "/console/executions?state=RUNNING&workflow=hello&created_after=2020-01-01T00:00&worker=w1",
        f"/console/executions?q={execution_id}",
        f"/console/executions/{execution_id}",
        f"/console/executions/{execution_id}?only=failed",
        f"/console/executions/cancel?id={execution_id}",
        "/console/workflows",
        "/console/workflows/hello",
        "/console/schedules",
        "/console/schedules/nightly",
        "/console/schedules/new",
        "/console/schedules/nightly/delete",
        "/console/workers",
        "/console/secrets",
    ]
    for path in paths:
        answer = await server.http.get(path)
        assert answer.status_code == 200, (path, answer.text[:500])
        assert answer.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert "value-never-shown-12345" not in answer.text
    held = await server.http.get("/console/executions?worker=w1")
    assert execution_id in held.text
    assert execution_id not in (await server.http.get("/console/executions?worker=w2")).text
    missing = await server.http.get("/console/executions/nope")
    assert missing.status_code == 404 and "nope" in missing.text
    assert "text/html" in missing.headers["content-type"]
    bad = await server.http.get("/console/executions?state=SLEEPY")
    assert bad.status_code == 400 and "unknown state" in bad.text


async def test_a_form_from_another_origin_changes_nothing(server: Server) -> None:
    await server.register()
    first = await server.http.get("/console/workflows/hello")
    token = first.cookies["flux_csrf"]
    url = "/console/workflows/hello/run"
    # The client keeps the cookie (path /console) and sends it with every form below.
    foreign = await server.http.post(
        url, data={"csrf": token}, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403
    missing = await server.http.post(url, data={"csrf": token})
    assert missing.status_code == 403  # neither Origin nor Referer: not from a page
    wrong = await server.http.post(
        url, data={"csrf": "x" * 40}, headers={"Origin": "http://flux.test"}
    )
    assert wrong.status_code == 403
    assert (await server.client.list_executions()).items == []
    own = await server.http.post(
        url, data={"csrf": token, "input": "1"},
        headers={"Referer": "http://flux.test/console/workflows/hello"},
    )  # fmt: skip
    assert own.status_code == 303 and own.headers["location"].startswith("/console/executions/")
    assert len((await server.client.list_executions()).items) == 1
