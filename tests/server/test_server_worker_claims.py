"""The worker side of the protocol: claims and fencing, one by one and batched: a second
claimer refused, stale generations fenced, a lost claim answer claimed again."""

from __future__ import annotations

import pytest
from flux.domain import EventType, ExecutionState
from flux.errors import ApiError, ConflictError, NotFoundError
from server_support import record


async def test_second_claimer_gets_409(server) -> None:
    await server.register()
    w1 = await server.worker("w1")
    w2 = await server.worker("w2", connect=False)
    run = await server.client.run("hello")
    claim = await w1.take()
    with pytest.raises(ConflictError, match="CLAIMED") as info:
        await w2.claim(run.execution_id)
    assert "w1" in info.value.message
    assert claim.generation == 1


async def test_claim_of_unknown_or_finished_execution(server) -> None:
    await server.register()
    worker = await server.worker()
    with pytest.raises(NotFoundError):
        await worker.claim("no-such-execution")
    run = await server.client.run("hello")
    await worker.finish(await worker.take(), "x")
    with pytest.raises(ConflictError, match="COMPLETED"):
        await worker.claim(run.execution_id)


async def test_one_by_one_routes_answer_as_a_batch_of_one(server) -> None:
    """``/claim/{id}`` and ``/checkpoint/{id}``, which workers no longer use, still answer:
    a claim, 409 for a second claimer, an acknowledged checkpoint, 409 for a stale one."""
    await server.register()
    w1 = await server.worker("w1", connect=False)
    w2 = await server.worker("w2", connect=False)
    run = await server.client.run("hello")
    http = server.http

    def post(worker, path: str, **kwargs):
        auth = {"Authorization": f"Bearer {worker.ch.session_token}"}
        return http.post(
            f"/workers/{worker.name}/{path}/{run.execution_id}", headers=auth, **kwargs
        )

    claimed = await post(w1, "claim")
    assert claimed.status_code == 200, claimed.text
    claim = claimed.json()
    assert (claim["generation"], claim["events"], claim["state"]) == (1, [], "CLAIMED")
    refused = await post(w2, "claim")
    assert refused.status_code == 409 and "CLAIMED" in refused.json()["message"]
    started = {
        "generation": 1,
        "events": [record(EventType.WORKFLOW_STARTED).model_dump(mode="json")],
    }
    ack = await post(w1, "checkpoint", json=started)
    assert (ack.status_code, ack.json()["acknowledged"], ack.json()["state"]) == (200, 1, "RUNNING")
    stale = await post(w1, "checkpoint", json={**started, "generation": 0})
    assert stale.status_code == 409


async def test_stale_generation_is_fenced(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello")
    claim = await worker.take()
    released = await worker.ch.release(run.execution_id, claim.generation, "draining")
    assert released.state == ExecutionState.SCHEDULED
    again = await worker.take()  # offered again at once
    assert again.execution_id == run.execution_id and again.generation > claim.generation
    with pytest.raises(ConflictError, match="abandon"):
        await worker.checkpoint(
            run.execution_id, claim.generation, [record(EventType.WORKFLOW_STARTED)]
        )
    with pytest.raises(ConflictError):
        await worker.ch.release(run.execution_id, claim.generation)
    await worker.finish(again, "fine")
    assert (await server.client.status("hello", run.execution_id)).output == "fine"


async def test_a_lost_claim_answer_can_be_claimed_again_by_its_holder(server) -> None:
    await server.register()
    w1 = await server.worker("w1")
    w2 = await server.worker("w2", connect=False)
    run = await server.client.run("hello")
    first = await w1.take()  # pretend this answer never arrived
    again = await w1.claim(run.execution_id)
    assert again.generation == first.generation + 1
    with pytest.raises(ConflictError):
        await w2.claim(run.execution_id)
    await w1.checkpoint(run.execution_id, again.generation, [record(EventType.WORKFLOW_STARTED)])
    with pytest.raises(ConflictError):  # started: no longer claimable, even by its holder
        await w1.claim(run.execution_id)


async def test_batched_claims_take_each_execution_on_its_own(server) -> None:
    await server.register()
    w1 = await server.worker("w1", capacity=8)
    w2 = await server.worker("w2", connect=False)
    runs = [await server.client.run("hello", i) for i in range(3)]
    ids = [r.execution_id for r in runs]
    taken_elsewhere = await w2.claim(ids[1])
    answer = await w1.ch.claims([*ids, "no-such-execution", ids[0]])
    by_id = {r.execution_id: r for r in answer.results}
    # One result per distinct id, in request order.
    assert [r.execution_id for r in answer.results] == [*ids, "no-such-execution"]
    assert by_id[ids[0]].claim is not None and by_id[ids[2]].claim is not None
    assert by_id[ids[1]].claim is None and by_id[ids[1]].error.code == "conflict"
    assert "w2" in by_id[ids[1]].error.message
    assert by_id["no-such-execution"].error.code == "not_found"
    first = by_id[ids[0]].claim
    assert first.generation == 1 and first.source and first.input
    assert "hello" in first.source and first.history() == []
    # Each granted claim is fenced like a single one: its checkpoints work, w2's still do too.
    await w1.finish(first, "done")
    await w2.finish(taken_elsewhere, "there")
    assert (await server.client.status("hello", ids[0])).output == "done"
    assert (await server.client.status("hello", ids[1])).output == "there"


async def test_batched_claims_skip_sources_the_worker_knows(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    runs = [await server.client.run("hello", i) for i in range(2)]
    first = (await worker.ch.claims([runs[0].execution_id])).results[0].claim
    known = [first.source_hash]
    second = (await worker.ch.claims([runs[1].execution_id], known)).results[0].claim
    assert first.source and second.source == ""
    assert second.source_hash == first.source_hash


async def test_batched_claims_reject_bad_requests(server) -> None:
    await server.register()
    worker = await server.worker()
    auth = {"Authorization": f"Bearer {worker.ch.session_token}"}
    empty = await server.http.post("/workers/w1/claims", json={"execution_ids": []}, headers=auth)
    assert empty.status_code == 422 and "execution_ids" in empty.text
    stranger = server.client.worker("w1", "not-the-token")
    with pytest.raises(ApiError) as info:
        await stranger.claims(["x"])
    assert info.value.status_code == 401
