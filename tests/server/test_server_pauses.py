"""Waiting pauses over HTTP: listed in the status, answered one by one with ``?pause=``."""

from __future__ import annotations

import pytest
from flux.domain import EventType, ExecutionState
from flux.errors import ExecutionStateError
from server_support import pause_events, record


async def _two_pauses(server, worker) -> tuple[str, object]:
    run = await server.client.run("hello", "in")
    claim = await worker.take()
    await worker.checkpoint(
        claim.execution_id,
        claim.generation,
        [
            record(EventType.WORKFLOW_STARTED),
            *pause_events("finance", "pause:f:0", {"amount": 120}, "[0]"),
            *pause_events("legal", "pause:l:0", None, "[1]"),
            record(EventType.WORKFLOW_PAUSED, "finance"),
        ],
    )
    return run.execution_id, claim


async def test_status_lists_the_waiting_pauses_and_a_resume_names_one(server) -> None:
    await server.register()
    worker = await server.worker()
    execution_id, _ = await _two_pauses(server, worker)

    status = await server.client.status("hello", execution_id)
    assert status.state == ExecutionState.PAUSED
    assert [(p.name, p.data) for p in status.pauses] == [
        ("finance", {"amount": 120}),
        ("legal", None),
    ]
    assert all(p.paused_at is not None for p in status.pauses)

    # Two wait: the resume must name one; a refused resume changes nothing.
    with pytest.raises(ExecutionStateError, match=r"waits at 2 pauses \(finance, legal\)") as info:
        await server.client.resume("hello", execution_id, "yes")
    assert info.value.status_code == 409
    assert info.value.details["pauses"] == ["finance", "legal"]  # as a local resume has them
    assert info.value.details["execution_id"] == execution_id
    with pytest.raises(ExecutionStateError, match="no waiting pause named 'hr'"):
        await server.client.resume("hello", execution_id, "yes", pause="hr")
    unchanged = await server.client.status("hello", execution_id, detailed=True)
    assert unchanged.state == ExecutionState.PAUSED and unchanged.events is not None
    assert len(unchanged.events) == 6

    resumed = await server.client.resume("hello", execution_id, {"ok": "L"}, pause="legal")
    assert resumed.state == ExecutionState.SCHEDULED
    again = await worker.take()
    answer, wake = again.history()[-2:]
    assert (answer.type, answer.source_id, answer.scope) == (
        EventType.TASK_COMPLETED,
        "pause:l:0",
        "[1]",
    )
    assert answer.value == {"ok": "L"} and wake.type is EventType.WORKFLOW_RESUMED

    # The worker replays: legal is answered, finance still waits, so it pauses again.
    await worker.checkpoint(
        again.execution_id, again.generation, [record(EventType.WORKFLOW_PAUSED, "finance")]
    )
    status = await server.client.status("hello", execution_id)
    assert [p.name for p in status.pauses] == ["finance"]
    # One waits now: the name is optional.
    await server.client.resume("hello", execution_id, "F")
    last = await worker.take()
    assert last.history()[-2].source_id == "pause:f:0"
    await worker.finish(last, "done")
    done = await server.client.status("hello", execution_id)
    assert done.state == ExecutionState.COMPLETED and done.pauses == []


async def test_an_empty_pause_name_is_refused(server) -> None:
    await server.register()
    worker = await server.worker()
    execution_id, _ = await _two_pauses(server, worker)
    response = await server.http.post(
        f"/workflows/hello/resume/{execution_id}/async", params={"pause": ""}, json=1
    )
    assert response.status_code == 422


async def test_pause_events_are_read_through_their_own_index(server) -> None:
    """A paused status and a resume read only the pause events, not the whole history."""
    from flux_server.store._rows import _READ_PAUSE_EVENTS

    db = server.runtime.db
    if not db.is_sqlite:
        pytest.skip("the plan is checked on SQLite (PostgreSQL plans an empty table its own way)")

    def plan(conn) -> str:
        sql = str(_READ_PAUSE_EVENTS.compile(conn, compile_kwargs={"literal_binds": False}))
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", ("x",)).all()
        return " ".join(str(r[-1]) for r in rows)

    assert "ix_events_pause" in await db.run_read(plan)


async def test_a_resume_repeated_with_its_id_resumes_once(server) -> None:
    """A retried resume (the first answer lost) finds the first one's work: it answers no
    later pause, even one that waits by the time the repeat arrives."""
    await server.register()
    worker = await server.worker()
    execution_id, _ = await _two_pauses(server, worker)

    first = await server.client.resume(
        "hello", execution_id, "L", pause="legal", resume_id="answer-1"
    )
    assert first.state == ExecutionState.SCHEDULED
    again = await worker.take()
    await worker.checkpoint(
        again.execution_id, again.generation, [record(EventType.WORKFLOW_PAUSED, "finance")]
    )
    # Only finance waits now: an unnamed resume would answer it, but this one was made.
    repeat = await server.client.resume("hello", execution_id, "L", resume_id="answer-1")
    assert repeat.state == ExecutionState.PAUSED
    assert [p.name for p in repeat.pauses] == ["finance"]
    events = (await server.client.status("hello", execution_id, detailed=True)).events
    assert [e.type for e in events].count(EventType.WORKFLOW_RESUMED) == 1

    # Another id is another resume.
    await server.client.resume("hello", execution_id, "F", resume_id="answer-2")
    last = await worker.take()
    assert last.history()[-2].source_id == "pause:f:0"
    response = await server.http.post(
        f"/workflows/hello/resume/{execution_id}/async",
        params={"resume_id": "has space"},
        json=1,
    )
    assert response.status_code == 422 and "resume_id" in response.text
