"""The worker side of the protocol: pushed claims (a stream opened with ?push=true),
released, lost on the way, and sharing the queue with offers."""

from __future__ import annotations

import pytest
from flux.domain import ExecutionState
from flux.errors import ConflictError


async def test_pushed_claims_arrive_claimed_with_each_source_once_per_stream(server) -> None:
    """A stream opened with ?push=true gets execution.claimed frames: claimed already (a
    claim request would be refused), the history column-wise, the source on the first claim
    of it only; a new stream gets it again."""
    await server.register()
    worker = await server.worker(push=True)
    first = await server.client.run("hello", "a")
    claim = await worker.next_claimed()
    assert (claim.execution_id, claim.state) == (first.execution_id, ExecutionState.CLAIMED)
    assert claim.source and claim.generation == 1
    assert claim.history() == []
    status = await server.client.status("hello", first.execution_id)
    assert (status.state, status.worker) == (ExecutionState.CLAIMED, "w1")
    with pytest.raises(ConflictError):
        await _claim_other(server, first)
    await worker.finish(claim, "done a")
    assert (await server.client.status("hello", first.execution_id)).output == "done a"

    second = await server.client.run("hello", "b")
    again = await worker.next_claimed()
    assert again.execution_id == second.execution_id
    assert (again.source, again.source_hash) == ("", claim.source_hash)

    await worker.close()
    await worker.connect()
    third = await server.client.run("hello", "c")
    fresh = await worker.next_claimed()
    assert fresh.execution_id == third.execution_id and fresh.source == claim.source


async def _claim_other(server, status) -> None:
    other = await server.worker("w2", connect=False)
    await other.claim(status.execution_id)


async def test_a_pushed_claim_the_worker_releases_is_pushed_again(server) -> None:
    """Released (the worker could not run it): back to the queue with a new generation, and
    pushed again; the released generation is fenced."""
    await server.register()
    worker = await server.worker(push=True)
    run = await server.client.run("hello", "x")
    claim = await worker.next_claimed()
    await worker.ch.release(run.execution_id, claim.generation, "busy")
    again = await worker.next_claimed()
    assert again.execution_id == run.execution_id
    assert again.generation > claim.generation
    with pytest.raises(ConflictError):
        await worker.finish(claim, "stale")
    await worker.finish(again, "ok")
    assert (await server.client.status("hello", run.execution_id)).output == "ok"


async def test_offers_and_pushed_claims_share_the_queue(server) -> None:
    """One worker takes offers, another pushed claims: each execution reaches exactly one."""
    await server.register()
    offered = await server.worker("w1", capacity=2)
    pushed = await server.worker("w2", capacity=2, push=True)
    runs = [await server.client.run("hello", i) for i in range(4)]
    got = [(await offered.take()).execution_id for _ in range(2)]
    got += [(await pushed.next_claimed()).execution_id for _ in range(2)]
    assert sorted(got) == sorted(r.execution_id for r in runs)


async def test_a_pushed_claim_that_cannot_be_delivered_goes_back_to_the_queue(
    server, monkeypatch
) -> None:
    """The stream closed between the round's commit and the send: the claim is released at
    once (not left held until the worker's heartbeats lapse) and pushed again."""
    await server.register()
    worker = await server.worker(push=True)
    hub = server.runtime.hub
    real_send = hub.send
    lost: list[bytes] = []

    def send_once_lost(name: str, data: bytes) -> bool:
        if data.startswith(b"event: execution.claimed") and not lost:
            lost.append(data)
            return False
        return real_send(name, data)

    monkeypatch.setattr(hub, "send", send_once_lost)
    run = await server.client.run("hello", "x")
    claim = await worker.next_claimed()
    assert len(lost) == 1 and claim.execution_id == run.execution_id
    assert claim.generation == 3  # claimed (1), released (2), claimed again (3)
    await worker.finish(claim, "delivered")
    assert (await server.client.status("hello", run.execution_id)).output == "delivered"
