"""The checkpoint sender: the events of every outbox of a worker go in few requests, at most
``max_in_flight`` of them on the wire, and what is recorded a few loop iterations apart (a
task's completion and the workflow's end) travels together.

The sender posts through the worker's real channel to an in-process server; a
:class:`~worker_support.Recording` watches the requests.
"""

from __future__ import annotations

import asyncio

import pytest
from flux.domain import EventType, ExecutionState
from flux_worker.outbox import MIN_SHARE, CheckpointSender, Outbox
from worker_support import Recording, Server, record

from tests.support.waiting import wait_until_async


async def _outboxes(server: Server, n: int) -> tuple[Recording, CheckpointSender, list[Outbox]]:
    channel = await server.worker()
    claims = await server.claims(channel, n)
    recording = Recording(channel)
    sender = CheckpointSender(lambda: recording, max_backoff=0.05)
    boxes = [Outbox(sender, c.execution_id, c.generation, "json") for c in claims]
    return recording, sender, boxes


async def test_executions_saving_together_share_one_request(server: Server) -> None:
    recording, sender, boxes = await _outboxes(server, 5)
    try:
        for box in boxes:  # in one loop iteration, as runs woken by one answer
            box.enqueue([record(type=EventType.WORKFLOW_STARTED)])
        await asyncio.gather(*(box.flush() for box in boxes))
    finally:
        await sender.close()
    assert [len(request) for request in recording.requests] == [5]
    assert all(box.state == ExecutionState.RUNNING for box in boxes)


async def test_a_workflows_end_travels_with_its_last_completion(server: Server) -> None:
    """The end is recorded a couple of loop iterations after the completion that led to it:
    the sender's grace lets both go in one request, one round trip instead of two."""
    recording, sender, (box,) = await _outboxes(server, 1)
    try:
        box.enqueue([record(type=EventType.WORKFLOW_STARTED), record(1)])
        for _ in range(2):
            await asyncio.sleep(0)  # the task's frames unwind, then the run's
        box.enqueue([record(2, type=EventType.WORKFLOW_COMPLETED)])
        await box.flush()
    finally:
        await sender.close()
    assert len(recording.requests) == 1
    assert box.state == ExecutionState.COMPLETED


async def test_two_requests_at_most_are_on_the_wire_and_each_execution_in_one(
    server: Server,
) -> None:
    """While requests are on the wire, executions with nothing in flight go in the next one
    (two at most at a time); an execution whose batch is on the wire waits for its answer."""
    recording, sender, boxes = await _outboxes(server, 6)
    gate = asyncio.Event()

    async def slow() -> None:
        await gate.wait()

    recording.before = slow
    try:
        first, second, *rest = boxes
        first.enqueue([record(type=EventType.WORKFLOW_STARTED)])
        await wait_until_async(lambda: len(recording.requests) == 1, what="the first request")
        second.enqueue([record(type=EventType.WORKFLOW_STARTED)])
        await wait_until_async(lambda: len(recording.requests) == 2, what="the second request")
        for box in [first, second, *rest]:
            box.enqueue([record(type=EventType.WORKFLOW_STARTED, n=1)])
        for _ in range(10):
            await asyncio.sleep(0)  # room for a third request, which must not be sent
        assert len(recording.requests) == 2
        gate.set()
        await asyncio.gather(*(box.flush() for box in boxes))
    finally:
        await sender.close()
    assert recording.most_in_flight == 2
    assert recording.overlapped == []
    assert sum(len(request) for request in recording.requests) == 8


@pytest.mark.parametrize(
    ("ready", "expected"),
    [(3, [3]), (MIN_SHARE, [MIN_SHARE]), (2 * MIN_SHARE, [MIN_SHARE, MIN_SHARE])],
)
async def test_what_is_ready_is_split_only_in_worthwhile_shares(
    server: Server, ready: int, expected: list[int]
) -> None:
    """With both request slots free, ready executions are shared between two requests only
    when each share is at least MIN_SHARE; fewer go in one request."""
    recording, sender, boxes = await _outboxes(server, ready)
    try:
        for box in boxes:
            box.enqueue([record(type=EventType.WORKFLOW_STARTED)])
        await asyncio.gather(*(box.flush() for box in boxes))
    finally:
        await sender.close()
    assert sorted(len(request) for request in recording.requests) == expected


async def test_close_cancels_what_is_on_the_wire(server: Server) -> None:
    recording, sender, (box,) = await _outboxes(server, 1)
    gate = asyncio.Event()

    async def never() -> None:
        await gate.wait()

    recording.before = never
    box.enqueue([record(type=EventType.WORKFLOW_STARTED)])
    await wait_until_async(lambda: len(recording.requests) == 1, what="the first request")
    await sender.close()
    assert recording.in_flight == set()  # the request was cancelled, not left hanging
    assert not box.idle.is_set()  # nothing was acknowledged
