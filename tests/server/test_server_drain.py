"""A draining server (SIGTERM) takes no more work and lets what is in flight finish: workers
are refused with 503 and move elsewhere, waits answer 503 (the execution goes on), while
checkpoints, heartbeats and reads are still served."""

from __future__ import annotations

import asyncio

import pytest
from flux.errors import ApiError
from flux.protocol import RegisterWorkerRequest
from server_support import BOOTSTRAP, record

from tests.support.waiting import wait_until_async


async def test_a_draining_server_hands_out_no_work_and_finishes_what_runs(server) -> None:
    await server.register()
    worker = await server.worker()
    worker.keep_alive()
    held = await server.client.run("hello", "held")
    claim = await worker.take()
    assert claim.execution_id == held.execution_id
    waiting = await server.client.run("hello", "waits")
    offer = await worker.next_offer()  # offered, not claimed yet
    assert offer.execution_id == waiting.execution_id
    sync = asyncio.create_task(server.client.run("hello", "sync", mode="sync"))
    await wait_until_async(lambda: len(server.runtime.watchers) > 0, what="the sync wait")

    await server.runtime.drain()

    with pytest.raises(ApiError) as info:
        await sync
    while (frame := await worker.next_frame()) is not None:  # its stream was closed
        assert frame.execution_id == info.value.details["execution_id"]  # offered before
    assert info.value.status_code == 503 and info.value.details["draining"] is True
    started = info.value.details["execution_id"]
    assert (await server.client.get_execution(started)).state == "SCHEDULED"  # goes on
    ready = await server.http.get("/ready")
    assert ready.status_code == 503 and ready.json()["checks"]["server"] == "stopping"
    assert ready.headers.get("retry-after") is None  # the ready answer is not an error
    refused = [
        worker.claim(waiting.execution_id),
        server.client.register_worker(RegisterWorkerRequest(name="w2"), bootstrap_token=BOOTSTRAP),
        anext(worker.ch.connect()),
    ]
    for call in refused:
        with pytest.raises(ApiError, match="this server is shutting down") as info:
            await call
        assert info.value.status_code == 503
    raw = await server.http.post("/workers/register", json={"name": "w3"})
    assert raw.status_code == 401  # the token is checked first: no hint to strangers
    answer = await server.http.post(
        "/workers/register",
        json={"name": "w3"},
        headers={"Authorization": f"Bearer {BOOTSTRAP}"},
    )
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")

    # What runs finishes here: its checkpoints and heartbeats are still taken.
    await worker.finish(claim, "done")
    await worker.ch.heartbeat()
    assert (await server.client.get_execution(held.execution_id)).output == "done"
    later = await server.client.run("hello", "later")  # for another replica to dispatch
    assert later.state == "SCHEDULED"
    # Dispatch, heartbeat expiry and the scheduler have stopped here (others run them).
    assert server.runtime._work and all(task.done() for task in server.runtime._work)


async def test_a_stream_of_an_execution_ends_when_the_server_drains(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello", "x")
    claim = await worker.take()
    await worker.checkpoint(claim.execution_id, claim.generation, [record_started()])
    frames: list[object] = []

    async def follow() -> None:
        async for frame in server.client.stream_execution(run.execution_id):
            frames.append(frame)

    reader = asyncio.create_task(follow())
    await wait_until_async(lambda: frames, what="the first frame")
    await server.runtime.drain()
    await asyncio.wait_for(reader, 10)  # ended, without the execution finishing
    assert [f.state for f in frames] == ["RUNNING"]


def record_started():
    from flux.domain import EventType

    return record(EventType.WORKFLOW_STARTED)
