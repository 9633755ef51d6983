"""Running, streaming, resuming, inspecting and cancelling executions, with a fake worker."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from flux.domain import EventType, ExecutionState
from flux.errors import ConflictError, NotFoundError
from flux.protocol import PROTOCOL_VERSION, OutputRecord
from flux.serialization import b64decode, loads
from server_support import JSON, record

from tests.support.waiting import wait_until_async


async def test_run_async_then_complete(server) -> None:
    await server.register()
    worker = await server.worker()
    status = await server.client.run("hello", "World", mode="async")
    assert (status.state, status.input, status.worker) == ("SCHEDULED", "World", None)

    claim = await worker.take()
    assert claim.execution_id == status.execution_id
    assert loads(b64decode(claim.input)) == "World"
    assert "async def hello" in claim.source and claim.history() == []
    await worker.finish(claim, "Hello, World")

    final = await server.client.status("hello", status.execution_id)
    assert (final.state, final.output, final.worker) == ("COMPLETED", "Hello, World", "w1")
    assert final.events is None


async def test_run_sync_waits_for_the_result(server) -> None:
    await server.register()
    worker = await server.worker()

    async def work() -> None:
        await worker.finish(await worker.take(), {"greeting": "hi"})

    job = asyncio.create_task(work())
    status = await server.client.run("hello", {"name": "x"}, mode="sync")
    await job
    assert status.state == ExecutionState.COMPLETED
    assert status.output == {"greeting": "hi"}


async def test_a_chosen_execution_id_starts_the_workflow_at_most_once(server) -> None:
    from server_support import GPU_FLOW

    await server.register()
    await server.register(GPU_FLOW)
    first = await server.client.run("hello", "a", mode="async", execution_id="order-42")
    again = await server.client.run("hello", "ignored", mode="async", execution_id="order-42")
    assert first.execution_id == again.execution_id == "order-42"
    assert (again.state, again.input) == ("SCHEDULED", "a")  # the existing execution

    worker = await server.worker()
    claim = await worker.take()
    assert claim.execution_id == "order-42"
    assert worker.frames.empty()  # one execution, offered once

    async def work() -> None:
        await worker.finish(claim, "done")

    job = asyncio.create_task(work())
    waited = await server.client.run("hello", None, mode="sync", execution_id="order-42")
    await job
    assert (waited.state, waited.output) == ("COMPLETED", "done")  # waited for the same one
    frames = [f async for f in server.client.stream("hello", execution_id="order-42")]
    assert [f.state for f in frames][-1] == "COMPLETED" and frames[-1].output == "done"

    with pytest.raises(ConflictError, match="taken by an execution of workflow 'hello'"):
        await server.client.run("train", None, execution_id="order-42")
    for bad in ("", "has space", "x" * 37, "-leading-dash"):
        answer = await server.http.post(
            "/workflows/hello/run/async", params={"execution_id": bad}, json=None
        )
        assert answer.status_code == 422, (bad, answer.text)
        assert "execution_id" in answer.text


async def test_concurrent_runs_with_one_execution_id_create_one_execution(server) -> None:
    await server.register()
    runs = await asyncio.gather(
        *(server.client.run("hello", i, execution_id="same-id") for i in range(8))
    )
    assert {r.execution_id for r in runs} == {"same-id"}
    assert len({r.input for r in runs}) == 1


async def test_run_sync_answers_with_the_current_state_after_the_sync_timeout(
    start_server,
) -> None:
    server = await start_server(sync_timeout=0.3)
    await server.register()
    status = await server.client.run("hello", mode="sync")  # no worker: it stays queued
    assert status.state == ExecutionState.SCHEDULED


async def test_detailed_status_lists_events_in_order(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello", None)
    claim = await worker.take()
    events = [
        record(EventType.WORKFLOW_STARTED),
        record(EventType.TASK_STARTED, name="say", source_id="say:1"),
        record(EventType.TASK_COMPLETED, "hi", name="say", source_id="say:1"),
        record(EventType.WORKFLOW_COMPLETED, "hi"),
    ]
    await worker.checkpoint(claim.execution_id, claim.generation, events[:2])
    await worker.checkpoint(claim.execution_id, claim.generation, events[2:])
    detail = await server.client.status("hello", run.execution_id, detailed=True)
    assert detail.events is not None
    assert [e.id for e in detail.events] == [e.id for e in events]
    assert detail.events[2].view == "hi"
    assert detail.events[2].to_event().value == "hi"
    # Without an explicit output, the terminal event's value is the output.
    assert detail.output == "hi"


async def test_stream_reports_state_changes(server) -> None:
    await server.register()
    worker = await server.worker()
    frames = []

    async def watch() -> None:
        async for frame in server.client.stream("hello", "S"):
            frames.append(frame)

    watcher = asyncio.create_task(watch())
    claim = await worker.take()
    await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
    )
    await worker.checkpoint(
        claim.execution_id,
        claim.generation,
        [record(EventType.WORKFLOW_COMPLETED, "Hello, S")],
        OutputRecord.from_value("Hello, S"),
    )
    await asyncio.wait_for(watcher, 10)
    assert [f.state for f in frames] == ["RUNNING", "COMPLETED"]
    assert frames[-1].output == "Hello, S" and frames[0].output is None
    assert {f.execution_id for f in frames} == {claim.execution_id}


async def test_stream_frame_names_and_disconnect_changes_nothing(server) -> None:
    await server.register()
    worker = await server.worker()
    names = []
    async with server.http.stream(
        "POST", "/workflows/hello/run/stream", content=b'"x"', headers=JSON
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        execution_id = response.headers["x-flux-execution-id"]
        claim = await worker.take()
        await worker.checkpoint(
            claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
        )
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                names.append(line.split(":", 1)[1].strip())
                break
    # The client went away; the execution carries on and can still finish.
    await worker.finish(claim, "done")
    assert names == ["workflow.execution.running"]
    status = await server.client.status("hello", execution_id)
    assert status.state == ExecutionState.COMPLETED
    await wait_until_async(_no_watchers(server))


async def _pause(server, worker, claim) -> None:
    await worker.checkpoint(
        claim.execution_id,
        claim.generation,
        [
            record(EventType.WORKFLOW_STARTED),
            record(EventType.TASK_PAUSED, "approval", name="pause", source_id="pause:1"),
            record(EventType.WORKFLOW_PAUSED, "approval"),
        ],
    )


async def test_pause_resume_with_input_replays_from_history(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello", "in")
    claim = await worker.take()
    await _pause(server, worker, claim)
    paused = await server.client.status("hello", run.execution_id)
    assert paused.state == ExecutionState.PAUSED

    resumed = await server.client.resume("hello", run.execution_id, {"approved": True})
    assert resumed.state == ExecutionState.SCHEDULED
    again = await worker.take()
    assert again.execution_id == run.execution_id
    assert again.generation > claim.generation
    types = [e.type for e in again.history()]
    assert types == [
        "WORKFLOW_STARTED",
        "TASK_PAUSED",
        "WORKFLOW_PAUSED",
        "TASK_COMPLETED",  # the answer to the one waiting pause
        "WORKFLOW_RESUMED",
    ]
    answer = again.history()[3]
    assert (answer.source_id, answer.name, answer.value) == ("pause:1", "pause", {"approved": True})
    assert again.history()[-1].value == {"approved": True}
    await worker.finish(again, "approved")
    final = await server.client.status("hello", run.execution_id, detailed=True)
    assert final.state == ExecutionState.COMPLETED
    assert final.events is not None and final.events[4].view == {"approved": True}


async def test_resume_sync_and_stream(server) -> None:
    await server.register()
    worker = await server.worker()
    first = await server.client.run("hello")
    claim = await worker.take()
    await _pause(server, worker, claim)

    async def work() -> None:
        await worker.finish(await worker.take(), "ok")

    job = asyncio.create_task(work())
    done = await server.client.resume("hello", first.execution_id, "go", mode="sync")
    await job
    assert done.state == ExecutionState.COMPLETED

    second = await server.client.run("hello")
    claim = await worker.take()
    await _pause(server, worker, claim)
    job = asyncio.create_task(work())
    frames = [f async for f in server.client.stream_resume("hello", second.execution_id, 1)]
    await job
    assert [f.state for f in frames] == ["RUNNING", "COMPLETED"]


async def test_resume_rejects_an_execution_that_is_not_paused(server) -> None:
    await server.register()
    run = await server.client.run("hello")
    with pytest.raises(ConflictError, match="only a PAUSED execution can be resumed"):
        await server.client.resume("hello", run.execution_id, 1)
    with pytest.raises(NotFoundError):
        await server.client.resume("hello", "no-such-id", 1)


async def test_cancel_before_any_worker_is_immediate(server) -> None:
    await server.register()
    run = await server.client.run("hello")
    cancelled = await server.client.cancel("hello", run.execution_id)
    assert cancelled.state == ExecutionState.CANCELLED
    detail = await server.client.status("hello", run.execution_id, detailed=True)
    assert detail.events is not None
    assert [e.type for e in detail.events] == ["WORKFLOW_CANCELLED"]
    with pytest.raises(ConflictError, match="already finished"):
        await server.client.cancel("hello", run.execution_id)


async def test_cancel_of_a_paused_execution_is_immediate(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello")
    await _pause(server, worker, await worker.take())
    cancelled = await server.client.cancel("hello", run.execution_id, mode="sync")
    assert cancelled.state == ExecutionState.CANCELLED


async def test_cancel_running_asks_the_worker(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello")
    claim = await worker.take()
    await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
    )
    status = await server.client.cancel("hello", run.execution_id, mode="async")
    assert status.state == ExecutionState.CANCELLING
    cancel = await worker.next_cancel()
    assert cancel.execution_id == run.execution_id
    # Progress reported while cancelling does not make it RUNNING again.
    ack = await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.TASK_CANCELLED, name="t")]
    )
    assert ack.state == ExecutionState.CANCELLING
    ack = await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_CANCELLED)]
    )
    assert ack.state == ExecutionState.CANCELLED


async def test_cancel_sync_waits_until_finished(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello")
    claim = await worker.take()
    await worker.checkpoint(
        claim.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
    )

    async def unwind() -> None:
        await worker.next_cancel()
        await worker.checkpoint(
            claim.execution_id, claim.generation, [record(EventType.WORKFLOW_CANCELLED)]
        )

    job = asyncio.create_task(unwind())
    status = await server.client.cancel("hello", run.execution_id, mode="sync")
    await job
    assert status.state == ExecutionState.CANCELLED


async def test_stream_ends_with_cancelled(server) -> None:
    await server.register()
    names = []
    async with server.http.stream("POST", "/workflows/hello/run/stream") as response:
        execution_id = response.headers["x-flux-execution-id"]
        await server.client.cancel("hello", execution_id)
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                names.append(line.split(":", 1)[1].strip())
    assert names == ["workflow.execution.cancelled"]


async def test_status_of_unknown_or_mismatched_execution_is_404(server) -> None:
    await server.register()
    run = await server.client.run("hello")
    with pytest.raises(NotFoundError, match="no execution 'nope'"):
        await server.client.status("hello", "nope")
    with pytest.raises(NotFoundError):
        await server.client.status("other", run.execution_id)
    with pytest.raises(NotFoundError):
        await server.client.cancel("hello", "nope")


async def test_plain_http_without_the_protocol_header_works(server) -> None:
    """curl-style calls: no protocol header, raw JSON body, an empty body means None."""
    await server.register()
    async with httpx.AsyncClient(transport=server.transport, base_url="http://flux.test") as bare:
        empty = await bare.post("/workflows/hello/run/async")
        listed = await bare.post("/workflows/hello/run/async", json=[1, "two", {"3": None}])
    assert empty.status_code == 200 and empty.json()["input"] is None
    assert empty.headers["x-flux-protocol"] == PROTOCOL_VERSION
    assert listed.status_code == 200 and listed.json()["input"] == [1, "two", {"3": None}]


async def test_unknown_run_mode_is_400(server) -> None:
    await server.register()
    response = await server.http.post("/workflows/hello/run/fast", content=b"1", headers=JSON)
    assert response.status_code == 400
    assert "unknown mode 'fast'" in response.json()["message"]
    response = await server.http.get("/workflows/hello/cancel/x?mode=later")
    assert response.status_code == 400


def _no_watchers(server):
    async def check() -> bool:
        return len(server.runtime.watchers) == 0

    return check
