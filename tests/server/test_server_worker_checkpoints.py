"""The worker side of the protocol: checkpoints, idempotent by event id, one by one and in
batches fenced item by item."""

from __future__ import annotations

import asyncio

import pytest
from flux.domain import EventType, ExecutionState
from flux.errors import ApiError
from flux.protocol import OutputRecord
from server_support import record


async def _count_events(server, execution_id: str) -> int:
    status = await server.client.status("hello", execution_id, detailed=True)
    return len(status.events)


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
