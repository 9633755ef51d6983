"""The worker side of the protocol: offers of queued work, passed on after the claim
timeout, withdrawn when a worker disconnects, and capacity freed by paused and finished
executions."""

from __future__ import annotations

import asyncio

from flux.domain import EventType
from server_support import record


async def test_unclaimed_offer_goes_to_another_worker_after_the_claim_timeout(
    start_server,
) -> None:
    server = await start_server(claim_timeout=0.4)
    await server.register()
    w1 = await server.worker("w1")
    w2 = await server.worker("w2")
    run = await server.client.run("hello")
    first = await asyncio.wait_for(_first_offer(w1, w2), 10)
    assert first[1].execution_id == run.execution_id
    other = w2 if first[0] is w1 else w1
    # The first worker ignores its offer; after the claim timeout the other one gets it.
    offer = await other.next_offer()
    assert offer.execution_id == run.execution_id


async def _first_offer(*workers):
    tasks = {asyncio.create_task(w.next_offer()): w for w in workers}
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    task = done.pop()
    return tasks[task], task.result()


async def test_disconnect_withdraws_offers_at_once(server) -> None:
    await server.register()
    w1 = await server.worker("w1")
    run = await server.client.run("hello")
    assert (await w1.next_offer()).execution_id == run.execution_id
    await w1.close()
    w2 = await server.worker("w2")
    assert (await w2.next_offer()).execution_id == run.execution_id


async def test_queued_work_is_offered_when_a_worker_connects(server) -> None:
    await server.register()
    runs = [await server.client.run("hello", i) for i in range(3)]
    worker = await server.worker(capacity=8)
    offered = {(await worker.next_offer()).execution_id for _ in runs}
    assert offered == {r.execution_id for r in runs}


async def test_paused_and_finished_executions_free_capacity(server) -> None:
    await server.register()
    worker = await server.worker(capacity=1)
    first = await server.client.run("hello")
    second = await server.client.run("hello")
    claim = await worker.take()
    assert claim.execution_id == first.execution_id
    await worker.checkpoint(
        claim.execution_id,
        claim.generation,
        [record(EventType.WORKFLOW_STARTED), record(EventType.WORKFLOW_PAUSED, "wait")],
    )
    nxt = await worker.take()
    assert nxt.execution_id == second.execution_id
