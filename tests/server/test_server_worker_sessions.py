"""The worker side of the protocol: a worker's session: heartbeats and their expiry, leaving,
registering again, and the list of workers."""

from __future__ import annotations

import pytest
from flux.domain import EventType, ExecutionState
from flux.errors import ApiError, ConflictError
from flux.protocol import WorkerResources
from server_support import record

from tests.support.waiting import wait_until_async


async def test_heartbeat_expiry_requeues_and_fences(start_server) -> None:
    # Three seconds, not one: the server runs in this test's event loop, and on a loaded CI
    # machine a one-second stall once outlasted w2's heartbeats too (it was declared dead).
    server = await start_server(heartbeat_timeout=3.0)
    await server.register()
    w1 = await server.worker("w1")
    run = await server.client.run("hello", "x")
    claim = await w1.take()
    await w1.checkpoint(
        run.execution_id,
        claim.generation,
        [record(EventType.WORKFLOW_STARTED), record(EventType.TASK_COMPLETED, 5, name="t")],
    )
    # w1 goes silent (no heartbeats); w2 is alive.
    w2 = await server.worker("w2")
    w2.keep_alive()
    again = await w2.take(timeout=15)
    assert again.execution_id == run.execution_id
    assert again.generation > claim.generation
    assert [e.type for e in again.history()] == ["WORKFLOW_STARTED", "TASK_COMPLETED"]
    assert again.history()[1].value == 5
    with pytest.raises(ConflictError):
        await w1.checkpoint(
            run.execution_id, claim.generation, [record(EventType.WORKFLOW_COMPLETED, 1)]
        )
    workers = {w.name: w for w in await server.client.list_workers()}
    assert workers["w1"].connected is False and workers["w2"].connected is True
    assert workers["w2"].running == 1
    assert await w1.next_frame() is None  # its stream was closed
    await w2.finish(again, "replayed")
    status = await server.client.status("hello", run.execution_id)
    assert (status.state, status.worker) == (ExecutionState.COMPLETED, "w2")


async def test_a_worker_that_leaves_is_disconnected_at_once_and_its_work_requeued(
    server,
) -> None:
    """Protocol 1.14: no waiting for missed heartbeats (the default timeout is long)."""
    await server.register()
    w1 = await server.worker("w1")
    run = await server.client.run("hello", "x")
    claim = await w1.take()
    left = await w1.ch.leave()
    assert left.released == [run.execution_id]
    workers = {w.name: w for w in await server.client.list_workers()}
    assert workers["w1"].connected is False and workers["w1"].running == 0
    assert await w1.next_frame() is None  # its stream was closed
    with pytest.raises(ConflictError):  # fenced: what it held runs elsewhere
        await w1.checkpoint(
            run.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
        )
    w2 = await server.worker("w2")
    again = await w2.take()
    assert again.execution_id == run.execution_id and again.generation > claim.generation
    assert (await w1.ch.leave()).released == []  # said twice: nothing more happens


async def test_heartbeat_lists_held_and_cancelling(server) -> None:
    await server.register()
    worker = await server.worker()
    a = await server.client.run("hello")
    b = await server.client.run("hello")
    ca, cb = await worker.take(), await worker.take()
    assert {ca.execution_id, cb.execution_id} == {a.execution_id, b.execution_id}
    await server.client.cancel("hello", a.execution_id)
    beat = await worker.ch.heartbeat(WorkerResources(cpu_count=2, memory_total=2**30))
    assert sorted(beat.held) == sorted([a.execution_id, b.execution_id])
    assert beat.cancelling == [a.execution_id]
    assert beat.heartbeat_interval == server.options.heartbeat_interval
    (info,) = await server.client.list_workers()
    assert info.resources.cpu_count == 2


async def test_registering_again_starts_a_new_session(server) -> None:
    await server.register()
    old = await server.worker("w1")
    run = await server.client.run("hello")
    claim = await old.take()
    new = await server.worker("w1", connect=False)
    with pytest.raises(ApiError) as info:
        await old.ch.heartbeat()
    assert info.value.status_code == 401
    status = await server.client.status("hello", run.execution_id)
    assert status.state == ExecutionState.SCHEDULED
    await new.connect()
    again = await new.take()
    assert again.generation > claim.generation


async def test_workers_list(server) -> None:
    await server.worker("w1", capacity=3)

    async def connected():
        return [w for w in await server.client.list_workers() if w.connected]

    (info,) = await wait_until_async(connected)
    assert (info.name, info.capacity, info.running) == ("w1", 3, 0)


async def test_heartbeat_with_running_takes_back_what_the_worker_dropped(start_server) -> None:
    server = await start_server(claim_timeout=0.3)
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello")
    claim = await worker.take()
    # Just claimed: a heartbeat sent before the claim's answer must not take it back.
    assert (await worker.ch.heartbeat(running=[])).held == [run.execution_id]
    assert (await worker.ch.heartbeat(running=[run.execution_id])).held == [run.execution_id]

    async def taken_back() -> bool:
        return (await worker.ch.heartbeat(running=[])).held == []

    await wait_until_async(taken_back)  # once idle longer than the claim timeout
    again = await worker.take()
    assert again.execution_id == run.execution_id and again.generation > claim.generation
    with pytest.raises(ConflictError):
        await worker.checkpoint(
            run.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
        )
