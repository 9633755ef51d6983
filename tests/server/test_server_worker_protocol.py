"""The worker side: claims, fencing, idempotent checkpoints, release, heartbeats, secrets."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa
from flux.domain import EventType, ExecutionState
from flux.errors import ApiError, ConflictError, NotFoundError
from flux.protocol import OutputRecord, WorkerResources
from flux.serialization import dumps
from server_support import record

from tests.support.waiting import wait_until_async


async def _count_events(server, execution_id: str) -> int:
    status = await server.client.status("hello", execution_id, detailed=True)
    return len(status.events)


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


async def test_checkpoint_is_idempotent_by_event_id(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello")
    claim = await worker.take()
    batch = [
        record(EventType.WORKFLOW_STARTED),
        record(EventType.TASK_STARTED, name="t", source_id="t:1"),
    ]
    first = await worker.checkpoint(run.execution_id, claim.generation, batch)
    # The answer was lost; the worker sends the same batch again, plus one new event.
    again = await worker.checkpoint(
        run.execution_id,
        claim.generation,
        [*batch, record(EventType.TASK_COMPLETED, 1, name="t", source_id="t:1")],
    )
    assert (first.acknowledged, first.state) == (2, ExecutionState.RUNNING)
    assert (again.acknowledged, again.state) == (3, ExecutionState.RUNNING)
    assert await _count_events(server, run.execution_id) == 3
    # A retried terminal checkpoint is harmless too.
    done = [record(EventType.WORKFLOW_COMPLETED, "ok")]
    out = OutputRecord.from_value("ok")
    await worker.checkpoint(run.execution_id, claim.generation, done, out)
    ack = await worker.checkpoint(run.execution_id, claim.generation, done, out)
    assert ack.state == ExecutionState.COMPLETED
    assert await _count_events(server, run.execution_id) == 4


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


async def test_failed_workflow_stores_the_error_view(server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello")
    claim = await worker.take()
    error = ValueError("boom")
    ack = await worker.checkpoint(
        run.execution_id,
        claim.generation,
        [record(EventType.WORKFLOW_STARTED), record(EventType.WORKFLOW_FAILED, error)],
    )
    assert ack.state == ExecutionState.FAILED
    status = await server.client.status("hello", run.execution_id)
    assert status.output == {"type": "ValueError", "message": "boom"}


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


async def test_secrets_only_for_held_executions(server) -> None:
    await server.runtime.secrets.set("API_KEY", "s3cr3t")
    await server.runtime.secrets.set("LIMITS", {"rps": 5})
    await server.register(
        b"from flux import workflow\n\n"
        b'@workflow.with_options(secret_requests=["API_KEY", "LIMITS", "MISSING"])\n'
        b"async def hello(ctx):\n    return 1\n"
    )
    w1 = await server.worker("w1")
    w2 = await server.worker("w2", connect=False)
    run = await server.client.run("hello")
    await w1.take()
    assert await w1.ch.get_secrets(run.execution_id, ["API_KEY", "LIMITS"]) == {
        "API_KEY": "s3cr3t",
        "LIMITS": {"rps": 5},
    }
    with pytest.raises(ApiError) as info:
        await w2.ch.get_secrets(run.execution_id, ["API_KEY"])
    assert info.value.status_code == 403
    with pytest.raises(NotFoundError, match="MISSING") as missing:
        await w1.ch.get_secrets(run.execution_id, ["API_KEY", "MISSING"])
    assert missing.value.details["error_details"]["missing"] == ["MISSING"]


async def test_secrets_are_stored_encrypted(server) -> None:
    await server.runtime.secrets.set("API_KEY", "plain-text-value")
    async with server.runtime.db.read() as conn:
        (blob,) = (await conn.execute(sa.text("SELECT value FROM secrets"))).one()
    assert b"plain-text-value" not in bytes(blob)
    assert await server.runtime.secrets.names() == ["API_KEY"]


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


async def test_workers_list(server) -> None:
    await server.worker("w1", capacity=3)

    async def connected():
        return [w for w in await server.client.list_workers() if w.connected]

    (info,) = await wait_until_async(connected)
    assert (info.name, info.capacity, info.running) == ("w1", 3, 0)


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


async def test_a_claim_decoded_for_replay_has_the_same_history(server) -> None:
    await server.register()
    worker = await server.worker(capacity=8)
    run = await server.client.run("hello", "you")
    claim = await worker.take()
    sent = [
        record(EventType.WORKFLOW_STARTED),
        record(EventType.TASK_STARTED, {"x": 1}, name="t", source_id="t:1"),
        record(EventType.TASK_COMPLETED, [1, "two"], name="t", source_id="t:1"),
    ]
    await worker.checkpoint(run.execution_id, claim.generation, sent)
    await worker.ch.release(run.execution_id, claim.generation)
    await worker.next_offer()
    # The holder of a claim not started yet may claim it again: three readings of one history.
    ids = [run.execution_id]
    plain = (await worker.ch.claims(ids, history_format="events")).results[0].claim
    columns = (await worker.ch.claims(ids)).results[0].claim
    fast = (await worker.ch.claims(ids, decode_history=True)).results[0].claim
    assert len(plain.events) == 3 and plain.history_columns is None
    assert columns.events == [] and columns.history_columns is not None
    assert fast.events == [] and fast.history_columns is None
    recorded = [(e.id, e.type, e.value, e.time) for e in (r.to_event() for r in plain.events)]
    for claim in (columns, fast):
        assert [(e.id, e.type, e.value, e.time) for e in claim.history()] == recorded
    assert [e.value for e in fast.history()] == [None, {"x": 1}, [1, "two"]]
    # On the wire: columns, ids and types as they are, times as seconds since the epoch.
    await worker.ch.release(run.execution_id, fast.generation)
    await worker.next_offer()
    auth = {"Authorization": f"Bearer {worker.ch.session_token}"}
    body = {"execution_ids": ids, "history_format": "columns"}
    raw = await server.http.post("/workers/w1/claims", json=body, headers=auth)
    answer = raw.json()["results"][0]["claim"]
    assert answer["events"] == []
    wire = answer["history_columns"]
    assert wire["ids"] == [e.id for e in plain.events]
    assert wire["types"] == ["WORKFLOW_STARTED", "TASK_STARTED", "TASK_COMPLETED"]
    assert wire["times"] == [e.time.timestamp() for e in plain.events]


async def test_batched_checkpoints_store_each_item_on_its_own(server) -> None:
    from flux.protocol import CheckpointItem

    await server.register()
    worker = await server.worker(capacity=8)
    runs = [await server.client.run("hello", i) for i in range(4)]
    ids = [r.execution_id for r in runs]
    granted = (await worker.ch.claims(ids)).results
    claims = {r.execution_id: r.claim for r in granted if r.claim is not None}
    assert set(claims) == set(ids)
    done, going, stale, cancelling = ids
    await server.client.cancel("hello", cancelling, mode="async")
    started = record(EventType.WORKFLOW_STARTED)
    items = [
        CheckpointItem(
            execution_id=done, generation=claims[done].generation,
            events=[started, record(EventType.WORKFLOW_COMPLETED, "fin")],
            output=OutputRecord.from_value("fin", "json"),
        ),
        CheckpointItem(execution_id=going, generation=claims[going].generation, events=[
            record(EventType.WORKFLOW_STARTED), record(EventType.TASK_STARTED, source_id="t:1"),
        ]),
        CheckpointItem(execution_id=stale, generation=claims[stale].generation - 1, events=[
            record(EventType.WORKFLOW_STARTED),
        ]),
        CheckpointItem(execution_id="no-such-execution", generation=1, events=[]),
        # Paused instead of unwinding while cancelling: it ends cancelled.
        CheckpointItem(execution_id=cancelling, generation=claims[cancelling].generation, events=[
            record(EventType.WORKFLOW_STARTED), record(EventType.WORKFLOW_PAUSED, "p"),
        ]),
    ]  # fmt: skip
    answer = await worker.ch.checkpoints(items)
    states = [(r.execution_id, r.state, r.error.code if r.error else None) for r in answer.results]
    assert states == [
        (done, ExecutionState.COMPLETED, None),
        (going, ExecutionState.RUNNING, None),
        (stale, None, "conflict"),
        ("no-such-execution", None, "not_found"),
        (cancelling, ExecutionState.CANCELLED, None),
    ]
    assert (await server.client.status("hello", done)).output == "fin"
    assert await _count_events(server, going) == 2
    assert await _count_events(server, stale) == 0
    assert [
        e.type for e in (await server.client.status("hello", cancelling, detailed=True)).events
    ][-1] == EventType.WORKFLOW_CANCELLED
    # Sent again (a lost answer): nothing is stored twice.
    again = await worker.ch.checkpoints(items[:2])
    assert [r.state for r in again.results] == [ExecutionState.COMPLETED, ExecutionState.RUNNING]
    assert await _count_events(server, going) == 2


async def test_batched_progress_of_many_executions_keeps_each_history_in_order(server) -> None:
    """Events of several executions in one checkpoint batch (one statement for all of them on
    PostgreSQL): each history in the order sent, values and views as sent, updated_at moved."""
    from flux.protocol import CheckpointItem

    await server.register()
    worker = await server.worker(capacity=8)
    ids = [(await server.client.run("hello", i)).execution_id for i in range(3)]
    claims = {r.execution_id: r.claim for r in (await worker.ch.claims(ids)).results}
    before = {i: (await server.client.status("hello", i)).updated_at for i in ids}
    sent = {
        i: [
            record(EventType.WORKFLOW_STARTED, {"n": n}),
            *(record(EventType.TASK_STARTED, None, source_id=f"t:{k}") for k in range(5)),
            record(EventType.TASK_COMPLETED, [n, "ü\u2603"], source_id="t:0"),
        ]
        for n, i in enumerate(ids)
    }
    items = [
        CheckpointItem(execution_id=i, generation=claims[i].generation, events=sent[i]) for i in ids
    ]
    answer = await worker.ch.checkpoints(items)
    assert [r.state for r in answer.results] == [ExecutionState.RUNNING] * 3
    started = {i: (await server.client.status("hello", i)).updated_at for i in ids}
    # Then events only, no change of state.
    more = {
        i: [record(EventType.TASK_COMPLETED, k, source_id=f"t:{k}") for k in (1, 2)] for i in ids
    }
    items = [
        CheckpointItem(execution_id=i, generation=claims[i].generation, events=more[i]) for i in ids
    ]
    answer = await worker.ch.checkpoints(items)
    assert [r.state for r in answer.results] == [ExecutionState.RUNNING] * 3
    for i in ids:
        status = await server.client.status("hello", i, detailed=True)
        assert [(e.id, e.type, e.source_id, e.value, e.view) for e in status.events or []] == [
            (e.id, e.type, e.source_id, e.value, e.view) for e in sent[i] + more[i]
        ]
        assert status.updated_at > started[i] > before[i]


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


async def test_progress_batches_fence_each_item_and_keep_states(server) -> None:
    """Task events only (one statement on PostgreSQL): a claimed execution starts running, a
    cancelling one stays cancelling, a stale or unknown item is refused without storing
    anything, the answers come in request order, and a resend stores nothing twice."""
    from flux.protocol import CheckpointItem

    await server.register()
    worker = await server.worker(capacity=8)
    ids = [(await server.client.run("hello", i)).execution_id for i in range(4)]
    claims = {r.execution_id: r.claim for r in (await worker.ch.claims(ids)).results}
    claimed, running, cancelling, stale = ids
    for execution_id in (running, cancelling):
        await worker.checkpoint(
            execution_id, claims[execution_id].generation, [record(EventType.WORKFLOW_STARTED)]
        )
    await server.client.cancel("hello", cancelling, mode="async")

    def progress(execution_id: str, generation: int) -> CheckpointItem:
        return CheckpointItem(
            execution_id=execution_id,
            generation=generation,
            events=[record(EventType.TASK_STARTED, None, source_id="t"), record(
                EventType.TASK_COMPLETED, {"k": execution_id}, source_id="t"
            )],
        )  # fmt: skip

    items = [
        progress(stale, claims[stale].generation + 1),
        progress(claimed, claims[claimed].generation),
        progress("no-such-execution", 1),
        progress(running, claims[running].generation),
        progress(cancelling, claims[cancelling].generation),
    ]
    answer = await worker.ch.checkpoints(items)
    assert [
        (r.execution_id, r.state, r.error.code if r.error else None) for r in answer.results
    ] == [
        (stale, None, "conflict"),
        (claimed, ExecutionState.RUNNING, None),
        ("no-such-execution", None, "not_found"),
        (running, ExecutionState.RUNNING, None),
        (cancelling, ExecutionState.CANCELLING, None),
    ]
    assert (await server.client.status("hello", claimed)).state == ExecutionState.RUNNING
    assert await _count_events(server, stale) == 0
    assert [await _count_events(server, i) for i in (claimed, running, cancelling)] == [2, 3, 3]
    again = await worker.ch.checkpoints(items[1:2])
    assert again.results[0].state == ExecutionState.RUNNING
    assert await _count_events(server, claimed) == 2
    bad = progress(running, claims[running].generation)
    bad.events[0].value = "not base64!"
    with pytest.raises(ApiError) as raised:
        await worker.ch.checkpoints([bad])
    assert raised.value.status_code in (400, 422)
    assert await _count_events(server, running) == 3


async def test_a_batch_that_finishes_a_run_answers_its_sync_waiter(server) -> None:
    """The sync answer comes from the checkpoint batch that settled the execution (one
    statement on PostgreSQL): output, worker and UTC times as a status read gives them."""
    from flux.protocol import CheckpointItem

    await server.register()
    worker = await server.worker(capacity=4)

    async def finish_one() -> None:
        claim = await worker.take()
        events = [
            record(EventType.WORKFLOW_STARTED),
            record(EventType.TASK_STARTED, None, source_id="t"),
            record(EventType.TASK_COMPLETED, 2, source_id="t"),
            record(EventType.WORKFLOW_COMPLETED, {"out": [1, "ü"]}),
        ]
        item = CheckpointItem(
            execution_id=claim.execution_id, generation=claim.generation, events=events
        )
        answer = await worker.ch.checkpoints([item])
        assert answer.results[0].state == ExecutionState.COMPLETED

    job = asyncio.create_task(finish_one())
    status = await server.client.run("hello", "x", mode="sync")
    await job
    read = await server.client.status("hello", status.execution_id)
    assert (status.state, status.output, status.worker) == (
        ExecutionState.COMPLETED,
        {"out": [1, "ü"]},
        "w1",
    )
    assert status.model_dump() == read.model_dump()
    assert (
        status.updated_at.utcoffset() is not None
        and status.updated_at.utcoffset().total_seconds() == 0
    )


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


async def test_histories_read_column_by_column_match_the_stored_rows(server) -> None:
    """Claimed together, pushed, or claimed one by one, every history reads back the same:
    in log order (not time or id order), with empty values, scopes and any text. On
    PostgreSQL the column form is built by the database, the row form in Python."""
    from datetime import timedelta

    from flux.domain import ExecutionEvent
    from flux.protocol import EventRecord

    await server.register()
    worker = await server.worker("w1", capacity=8)
    runs = [await server.client.run("hello", i) for i in range(3)]
    ids = [r.execution_id for r in runs]
    claims = {c.execution_id: c for c in (await worker.ch.claims(ids)).results}
    later = ExecutionEvent(EventType.WORKFLOW_STARTED, "wf", "hello").time
    edge = {len(dumps(text, "pkl")): text for text in ("x" * k for k in range(20, 60))}
    for n, execution_id in enumerate(ids[:2]):
        events = [
            ExecutionEvent(EventType.WORKFLOW_STARTED, "wf", "hello", time=later, id=f"z{n}"),
            # Logged after the first, stamped before it, with an id that sorts before it.
            ExecutionEvent(
                EventType.TASK_STARTED,
                "t:1",
                "tâche ✓",
                {"k": [1, None, "x\ny"]},
                time=later - timedelta(seconds=5, microseconds=7),
                id=f"a{n}",
                scope="outer:1",
            ),
            ExecutionEvent(EventType.TASK_COMPLETED, "t:1", "tâche ✓", None, id=f"m{n}"),
            # A value whose base64 is longer than a line of PostgreSQL's encode(): no breaks.
            ExecutionEvent(EventType.TASK_COMPLETED, "t:2", "long", "é" * 300, id=f"n{n}"),
            # Either side of where encode() starts breaking lines (57 bytes and longer).
            ExecutionEvent(EventType.TASK_COMPLETED, "t:3", "edge", edge[56], id=f"o{n}"),
            ExecutionEvent(EventType.TASK_COMPLETED, "t:4", "edge", edge[57], id=f"p{n}"),
        ]
        records = [EventRecord.from_event(e, "pkl") for e in events]
        await worker.checkpoint(execution_id, claims[execution_id].claim.generation, records)
    for execution_id in ids:
        await worker.ch.release(execution_id, claims[execution_id].claim.generation)

    def shape(events):
        return [(e.id, e.type, e.source_id, e.name, e.scope, e.value, e.time) for e in events]

    plain = {}  # read from records, one event at a time
    for execution_id in ids:
        [one] = (await worker.ch.claims([execution_id], history_format="events")).results
        plain[execution_id] = shape(record.to_event() for record in one.claim.events)
        await worker.ch.release(execution_id, one.claim.generation)
    assert [i for i, *_ in plain[ids[0]]] == ["z0", "a0", "m0", "n0", "o0", "p0"]
    assert plain[ids[0]][3][5] == "é" * 300
    assert [v for *_, v, _ in plain[ids[0]][4:]] == [edge[56], edge[57]]
    assert plain[ids[1]][1][5] == {"k": [1, None, "x\ny"]}
    auth = {"Authorization": f"Bearer {worker.ch.session_token}"}
    body = {"execution_ids": ids[:1], "history_format": "columns"}
    raw = await server.http.post("/workers/w1/claims", json=body, headers=auth)
    claim = raw.json()["results"][0]["claim"]
    long_value, short, edge_value = claim["history_columns"]["values"][3:]
    assert len(long_value) > 76 and "\n" not in long_value  # past one encode() line, unbroken
    assert len(edge_value) == 76 and "\n" not in edge_value and "\n" not in short
    await worker.ch.release(ids[0], claim["generation"])
    together = (await worker.ch.claims(ids, decode_history=True)).results
    assert {r.execution_id: shape(r.claim.history()) for r in together} == plain
    for r in together:
        await worker.ch.release(r.execution_id, r.claim.generation)
    await worker.close()
    pusher = await server.worker("w2", capacity=8, push=True)
    pushed = [await pusher.next_claimed() for _ in ids]
    assert {c.execution_id: shape(c.history()) for c in pushed} == plain


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_history_aggregated_out_of_order_is_built_again_in_order(
    server, monkeypatch
) -> None:
    """PostgreSQL builds column histories from an ordered subquery, an order it only
    "usually" keeps. Should the aggregates see the rows in another order, the statement's own
    check notices and the history is built again with every aggregate sorting by seq."""
    from flux.domain import ExecutionEvent
    from flux.protocol import EventRecord
    from flux_server.db.raw import Statement
    from flux_server.store import _claims as store

    shuffled = store._READ_HISTORY_COLUMNS.sql["postgresql"].replace(
        "ORDER BY execution_id, seq", "ORDER BY execution_id, seq DESC"
    )
    assert shuffled != store._READ_HISTORY_COLUMNS.sql["postgresql"]
    misordered = Statement(
        "", postgresql="", lists=("ids",), columns=("execution_id", "columns", "in_order")
    )
    misordered.sql["postgresql"] = shuffled
    misordered.row = None  # plain rows, as the real statement's
    monkeypatch.setattr(store, "_READ_HISTORY_COLUMNS", misordered)

    await server.register()
    worker = await server.worker("w1", capacity=4)
    run = await server.client.run("hello", 1)
    claim = await worker.claim(run.execution_id)
    names = [f"step {i}" for i in range(5)]
    records = [EventRecord.from_event(ExecutionEvent(EventType.TASK_STARTED, n, n)) for n in names]
    await worker.checkpoint(run.execution_id, claim.generation, records)
    await worker.ch.release(run.execution_id, claim.generation)
    [again] = (await worker.ch.claims([run.execution_id], decode_history=True)).results
    assert [e.name for e in again.claim.history()] == names
