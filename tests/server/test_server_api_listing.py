"""``/executions``: the filtered, cursor-paged listing with counts, one execution by id, its
events by page, its resumable stream, rerun and bulk cancel; on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from flux.domain import EventType, ExecutionState
from flux.errors import ExecutionNotFoundError
from flux.protocol import ExecutionList, ExecutionStreamFrame
from flux_server.db.tables import executions, schedule_runs, schedules
from server_support import HELLO, record

from tests.support.waiting import wait_until_async

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
STATES = [ExecutionState.COMPLETED, ExecutionState.FAILED, ExecutionState.RUNNING]
FLOWS = b"""
from flux import workflow

@workflow
async def hello(ctx):
    return ctx.input

@workflow
async def other(ctx):
    return ctx.input
"""


async def seed(server, count: int = 30) -> list[dict[str, Any]]:
    """``count`` executions inserted straight into the database (as the benchmark seeds
    them): workflows, states, workers and times in a known pattern; three share a creation
    time. The rows, as inserted."""
    await server.register(FLOWS)
    hello = await server.runtime.workflows.latest("hello")
    rows = []
    for i in range(count):
        created = T0 + timedelta(minutes=i if i % 10 != 7 else 6)  # 6, 7, 16, 17, ... tie
        rows.append(
            {
                "id": f"x{i:03d}",
                "workflow_id": hello.id,
                "workflow_name": "hello" if i % 3 else "other",
                "workflow_version": 1,
                "state": STATES[i % 3].value,
                "input_view": {"i": i},
                "worker_name": f"w{i % 2}",
                "generation": 1,
                "created_at": created,
                "updated_at": created + timedelta(hours=i % 4),
            }
        )
    async with server.runtime.db.write() as tx:
        await tx.conn.execute(sa.insert(executions), rows)
    return rows


def newest_first(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True)


async def every_page(server, limit: int, **filters: Any) -> tuple[list[str], list[ExecutionList]]:
    ids: list[str] = []
    pages: list[ExecutionList] = []
    cursor = None
    while True:
        page = await server.client.list_executions(limit=limit, cursor=cursor, **filters)
        pages.append(page)
        ids += [item.execution_id for item in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids, pages


async def test_pages_newest_first_with_ties_by_id_and_counts(server) -> None:
    rows = await seed(server)
    expected = [r["id"] for r in newest_first(rows)]
    ids, pages = await every_page(server, 4)
    assert ids == expected
    assert [len(p.items) for p in pages] == [4] * 7 + [2]
    counts = Counter(ExecutionState(r["state"]) for r in rows)
    assert all(p.counts == counts for p in pages)
    first = pages[0].items[0]
    assert (first.workflow_name, first.input, first.events, first.pauses) == (
        "hello",
        {"i": 29},
        None,
        [],
    )
    # One page exactly: no cursor to a page that would be empty.
    whole = await server.client.list_executions(limit=30)
    assert len(whole.items) == 30 and whole.next_cursor is None


FILTERS: list[dict[str, Any]] = [
    {"workflow": "hello"},
    {"state": "FAILED"},
    {"state": ["RUNNING", "COMPLETED"]},
    {"workflow": "other", "state": "COMPLETED"},
    {"worker": "w1"},
    {"worker": "w0", "state": "RUNNING"},
    {"created_after": T0 + timedelta(minutes=6), "created_before": T0 + timedelta(minutes=20)},
    {"updated_after": T0 + timedelta(minutes=30)},
    {"updated_before": T0 + timedelta(minutes=10, hours=1), "state": "FAILED"},
    {"workflow": "hello", "created_after": T0 + timedelta(minutes=3), "worker": "w0"},
    {"workflow": "nobody"},
]


def matches(row: dict[str, Any], filters: dict[str, Any]) -> bool:
    states = filters.get("state")
    states = [states] if isinstance(states, str) else states
    return (
        filters.get("workflow", row["workflow_name"]) == row["workflow_name"]
        and (not states or row["state"] in states)
        and filters.get("worker", row["worker_name"]) == row["worker_name"]
        and row["created_at"] > filters.get("created_after", datetime.min.replace(tzinfo=UTC))
        and row["created_at"] < filters.get("created_before", datetime.max.replace(tzinfo=UTC))
        and row["updated_at"] > filters.get("updated_after", datetime.min.replace(tzinfo=UTC))
        and row["updated_at"] < filters.get("updated_before", datetime.max.replace(tzinfo=UTC))
    )


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f))
async def test_every_filter_pages_and_counts_what_matches(server, filters) -> None:
    rows = await seed(server)
    kept = [r for r in rows if matches(r, filters)]
    ids, pages = await every_page(server, 3, **filters)
    assert ids == [r["id"] for r in newest_first(kept)]
    assert pages[0].counts == Counter(ExecutionState(r["state"]) for r in kept)


async def test_schedule_filter_by_id_or_name(server) -> None:
    rows = await seed(server)
    async with server.runtime.db.write() as tx:
        await tx.conn.execute(
            sa.insert(schedules),
            [
                {
                    "id": "sched-1",
                    "name": "nightly",
                    "workflow_name": "hello",
                    "schedule": {"type": "interval", "interval_seconds": 60},
                    "state": "ACTIVE",
                    "created_at": T0,
                    "updated_at": T0,
                }
            ],
        )
        await tx.conn.execute(
            sa.insert(schedule_runs),
            [
                {
                    "id": f"run-{i}",
                    "schedule_id": "sched-1",
                    "execution_id": rows[i]["id"] if i < 5 else None,  # a skipped tick has none
                    "scheduled_for": T0 + timedelta(minutes=i),
                    "fired_at": T0 + timedelta(minutes=i),
                    "state": "FIRED",
                }
                for i in (1, 2, 4, 7)
            ],
        )
    for schedule in ("sched-1", "nightly"):
        page = await server.client.list_executions(schedule=schedule)
        assert [i.execution_id for i in page.items] == ["x004", "x002", "x001"]
        assert sum(page.counts.values()) == 3
    failed = await server.client.list_executions(schedule="nightly", state="FAILED")
    assert [i.execution_id for i in failed.items] == ["x004", "x001"]
    assert (await server.client.list_executions(schedule="unknown")).items == []


async def test_counts_follow_every_state_change(server) -> None:
    """The maintained counts (workflow and state filters) equal the rows counted (any other
    filter) through creation, claims, checkpoints, cancels and resumes."""
    await server.register()
    worker = await server.worker()
    ids = [(await server.client.run("hello", i)).execution_id for i in range(6)]
    for _ in range(3):
        claim = await worker.take()
        if claim.execution_id == ids[0]:
            await worker.checkpoint(
                claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
            )
        else:
            await worker.finish(claim, "done")
    await server.client.cancel_executions(ids[3:5])

    async def both() -> tuple[dict, dict]:
        maintained = (await server.client.list_executions(workflow="hello")).counts
        counted = (await server.client.list_executions(created_after=T0)).counts
        return maintained, counted

    maintained, counted = await both()
    assert maintained == counted
    assert sum(maintained.values()) == 6 and maintained[ExecutionState.CANCELLED] >= 1
    assert (await server.client.list_executions(state="COMPLETED")).counts == {
        ExecutionState.COMPLETED: maintained[ExecutionState.COMPLETED]
    }


async def answer(server, path: str, **params: Any) -> httpx.Response:
    return await server.http.get(path, params=params)


def _tampered(cursor: str) -> str:
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    changed = raw.replace(b"x0", b"x9", 1)
    return base64.urlsafe_b64encode(changed).rstrip(b"=").decode()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_bad_filters_and_cursors_are_400_with_the_reason(server) -> None:
    await seed(server, 5)
    cursor = (await server.client.list_executions(limit=1, state="COMPLETED")).next_cursor
    assert cursor is not None
    cases = [
        ({"status": "FAILED"}, "unknown query parameter(s) 'status'"),
        ({"state": "DONE"}, "unknown state 'DONE'"),
        ({"state": "FAILED,nope"}, "unknown state 'nope'"),
        ({"created_after": "yesterday"}, "created_after='yesterday' is not an ISO 8601 time"),
        ({"limit": "0"}, "limit='0' must be a whole number from 1 to 500"),
        ({"limit": "501"}, "limit='501'"),
        ({"limit": "ten"}, "limit='ten'"),
        ({"cursor": "garbage!"}, "is not one this server made"),
        ({"cursor": "e30"}, "is not one this server made"),
        ({"cursor": _tampered(cursor), "state": "COMPLETED"}, "was changed or belongs to"),
        ({"cursor": cursor}, "belongs to other filters"),
        ({"cursor": cursor, "state": "FAILED"}, "belongs to other filters"),
    ]
    for params, reason in cases:
        response = await answer(server, "/executions", **params)
        assert response.status_code == 400, (params, response.text)
        body = response.json()
        assert set(body) == {"type", "code", "message", "details"}
        assert body["code"] == "usage_error" and reason in body["message"], (params, body)
    good = await answer(server, "/executions", cursor=cursor, state="completed")
    assert good.status_code == 200 and len(good.json()["items"]) == 1


async def test_one_execution_by_id(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello", "you")
    await worker.finish(await worker.take(), "Hello, you")
    found = await server.client.get_execution(run.execution_id)
    assert (found.workflow_name, found.state, found.output) == ("hello", "COMPLETED", "Hello, you")
    assert found.events is None
    detailed = await server.client.get_execution(run.execution_id, detailed=True)
    assert [e.type for e in detailed.events or []] == [
        EventType.WORKFLOW_STARTED,
        EventType.WORKFLOW_COMPLETED,
    ]
    with pytest.raises(ExecutionNotFoundError) as info:
        await server.client.get_execution("nope")
    assert info.value.status_code == 404
    bad = await answer(server, f"/executions/{run.execution_id}", detail="true")
    assert bad.status_code == 400 and "'detail'" in bad.json()["message"]


async def test_events_by_page_with_types_and_payloads(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello", "in")
    claim = await worker.take()
    steps = [
        record(EventType.WORKFLOW_STARTED),
        record(EventType.TASK_STARTED, name="a", source_id="a:0"),
        record(EventType.TASK_COMPLETED, {"n": 1}, name="a", source_id="a:0"),
        record(EventType.TASK_STARTED, name="b", source_id="b:0"),
        record(EventType.TASK_COMPLETED, [2], name="b", source_id="b:0"),
    ]
    await worker.checkpoint(claim.execution_id, claim.generation, steps)
    events = server.client.execution_events

    first = await events(run.execution_id, limit=2)
    assert [e.id for e in first.items] == [s.id for s in steps[:2]]
    assert all(e.value is None and e.view is None for e in first.items)
    assert first.next_after == first.items[-1].position
    rest = await events(run.execution_id, after=first.next_after, limit=10)
    assert [e.id for e in rest.items] == [s.id for s in steps[2:]]
    assert rest.next_after is None
    positions = [e.position for e in first.items + rest.items]
    assert positions == sorted(positions) and len(set(positions)) == 5

    done = await events(run.execution_id, types="TASK_COMPLETED", payloads=True)
    assert [(e.name, e.view) for e in done.items] == [("a", {"n": 1}), ("b", [2])]
    assert all(e.value is not None for e in done.items)
    both = await answer(
        server,
        f"/executions/{run.execution_id}/events",
        types=["workflow_started", "TASK_STARTED,TASK_COMPLETED"],
    )
    assert len(both.json()["items"]) == 5
    after_last = await events(run.execution_id, after=positions[-1])
    assert after_last.items == [] and after_last.next_after is None

    for params, reason in [
        ({"types": "TASK_EXPLODED"}, "unknown event type 'TASK_EXPLODED'"),
        ({"after": "-1"}, "after='-1' must be a whole number 0 or more"),
        ({"limit": "1001"}, "limit='1001'"),
        ({"payloads": "maybe"}, "payloads='maybe' must be true or false"),
        ({"since": "1"}, "unknown query parameter(s) 'since'"),
    ]:
        response = await answer(server, f"/executions/{run.execution_id}/events", **params)
        assert response.status_code == 400 and reason in response.json()["message"], params
    with pytest.raises(ExecutionNotFoundError):
        await events("nope")


async def sse(response: httpx.Response) -> AsyncIterator[tuple[str, str, dict[str, Any]]]:
    """(id, event, data) of each frame of an SSE answer; comments are skipped."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "event" in fields:
                yield fields.get("id", ""), fields["event"], json.loads(fields["data"])
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def take_frames(server, execution_id: str, n: int, **headers: str) -> list[tuple]:
    path = f"/executions/{execution_id}/stream"
    async with server.http.stream("GET", path, headers=headers) as response:
        assert response.status_code == 200
        found = []
        async for item in sse(response):
            found.append(item)
            if len(found) == n:
                return found
    return found


async def test_the_stream_reports_every_state_change_and_resumes_after_last_event_id(
    server,
) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello", "in")
    frames: list[ExecutionStreamFrame] = []

    async def follow() -> None:
        async for frame in server.client.stream_execution(run.execution_id):
            frames.append(frame)

    following = asyncio.create_task(follow())
    claim = await worker.take()
    await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
    )
    await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_PAUSED, "ask")]
    )

    await wait_until_async(lambda: len(frames) >= 2, what="the running and paused frames")
    assert not following.done()  # a pause does not end it
    await server.client.resume("hello", run.execution_id, "yes")
    claim = await worker.take()
    await worker.finish(claim, "Hello, in")
    await asyncio.wait_for(following, 10)

    assert [f.state for f in frames] == ["RUNNING", "PAUSED", "RUNNING", "RUNNING", "COMPLETED"]
    assert frames[-1].output == "Hello, in" and frames[0].output is None
    positions = [f.position for f in frames]
    assert positions == sorted(positions)

    # Raw SSE: the frame names of a run's stream, the position as the id.
    raw = await take_frames(server, run.execution_id, 5)
    assert [event for _, event, _ in raw] == [
        "workflow.execution.running",
        "workflow.execution.paused",
        "workflow.execution.running",
        "workflow.execution.running",
        "workflow.execution.completed",
    ]
    assert [int(i) for i, _, _ in raw] == positions
    assert [d["position"] for _, _, d in raw] == positions

    # Reconnecting after the pause gets only what followed it, then the stream ends.
    rest = await take_frames(server, run.execution_id, 99, **{"Last-Event-ID": str(positions[1])})
    assert [int(i) for i, _, _ in rest] == positions[2:]
    resumed = [
        f async for f in server.client.stream_execution(run.execution_id, after=positions[3])
    ]
    assert [f.position for f in resumed] == positions[4:]
    assert [
        f async for f in server.client.stream_execution(run.execution_id, after=positions[4])
    ] == []
    # Every stream, ended by the server or left by its client, stopped watching.
    await wait_until_async(lambda: len(server.runtime.watchers) == 0, what="no watch left")


async def test_stream_refusals(server) -> None:
    await server.register()
    run = await server.client.run("hello", "in")
    path = f"/executions/{run.execution_id}/stream"
    for headers, params, reason in [
        ({"Last-Event-ID": "abc"}, {}, "Last-Event-ID='abc'"),
        ({}, {"after": "-3"}, "after='-3'"),
        ({}, {"from": "1"}, "unknown query parameter(s) 'from'"),
    ]:
        response = await server.http.get(path, headers=headers, params=params)
        assert response.status_code == 400 and reason in response.json()["message"]
    missing = await server.http.get("/executions/nope/stream")
    assert missing.status_code == 404 and missing.json()["code"] == "execution_not_found"
    assert len(server.runtime.watchers) == 0  # the refused stream's watch ended with it
    # A queued execution's stream stays open: cancelling it sends the last frame.
    frames = asyncio.create_task(take_frames(server, run.execution_id, 1))
    await server.client.cancel_executions([run.execution_id])
    [(_, event, data)] = await asyncio.wait_for(frames, 10)
    assert (event, data["state"]) == ("workflow.execution.cancelled", "CANCELLED")


async def test_rerun_starts_the_latest_version_with_the_same_input(server) -> None:
    await server.register()
    first = await server.client.run("hello", {"who": "you"})
    await server.register(HELLO.replace(b"Hello,", b"Hi,"))  # version 2
    again = await server.client.rerun(first.execution_id)
    assert again.execution_id != first.execution_id
    assert (again.workflow_name, again.workflow_version, again.input, again.state) == (
        "hello",
        2,
        {"who": "you"},
        "SCHEDULED",
    )
    chosen = await server.client.rerun(first.execution_id, new_id="retry-1")
    repeated = await server.client.rerun(first.execution_id, new_id="retry-1")
    assert chosen.execution_id == repeated.execution_id == "retry-1"
    assert sum((await server.client.list_executions(workflow="hello")).counts.values()) == 3
    with pytest.raises(ExecutionNotFoundError):
        await server.client.rerun("nope")


async def test_bulk_cancel_says_what_each_id_did(server) -> None:
    await server.register()
    worker = await server.worker()
    held = await server.client.run("hello", 1)
    assert (await worker.take()).execution_id == held.execution_id
    done = await server.client.run("hello", 2)
    await worker.finish(await worker.take(), "x")
    queued = await server.client.run("hello", 3)  # offered, never claimed
    finished_id, waiting_id = done.execution_id, queued.execution_id

    answered = await server.client.cancel_executions(
        [held.execution_id, waiting_id, finished_id, "nope", waiting_id]
    )
    results = {r.execution_id: r for r in answered.results}
    assert [r.execution_id for r in answered.results] == [
        held.execution_id,
        waiting_id,
        finished_id,
        "nope",
    ]
    assert results[held.execution_id].state == ExecutionState.CANCELLING
    assert results[waiting_id].state == ExecutionState.CANCELLED
    assert results[finished_id].state is None
    assert results[finished_id].error is not None
    assert results[finished_id].error.code == "execution_state"
    assert results["nope"].error is not None and results["nope"].error.code == "execution_not_found"
    assert (await worker.next_cancel()).execution_id == held.execution_id
    for body in ({"execution_ids": []}, {"execution_ids": ["x"] * 1001}, {}):
        response = await server.http.post("/executions/cancel", json=body)
        assert response.status_code == 422, body
