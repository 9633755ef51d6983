"""The outbox: what an execution saves reaches the server in order, retried with backoff
through transport failures, fenced when the execution is claimed again, and within the
request size the server takes (a refused request is split until the refused execution stands
alone, and only that one fails).

The outboxes send through the worker's real channel to an in-process server; a
:class:`~worker_support.Recording` watches the requests and injects transport failures.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import flux_worker.outbox as outbox_module
import pytest
from flux.domain import EventType, ExecutionState
from flux.errors import ApiError
from flux_worker._backoff import backoff_delay
from flux_worker.outbox import CheckpointSender, FencedError, Outbox
from worker_support import Recording, Server, record


@asynccontextmanager
async def sending(
    server: Server, n: int, max_backoff: float = 0.05
) -> AsyncIterator[tuple[Recording, list[Outbox], list[str]]]:
    """``n`` claimed executions with an outbox each, whose first event (the workflow's start)
    is stored already; the sender is closed at the end."""
    channel = await server.worker()
    claims = await server.claims(channel, n)
    recording = Recording(channel)
    sender = CheckpointSender(lambda: recording, max_backoff)
    boxes = [
        Outbox(sender, c.execution_id, c.generation, "json", workflow_name="hello") for c in claims
    ]
    try:
        for box in boxes:
            box.enqueue([record(type=EventType.WORKFLOW_STARTED)])
        await asyncio.gather(*(box.flush() for box in boxes))
        recording.requests.clear()
        yield recording, boxes, [c.execution_id for c in claims]
    finally:
        await sender.close()


async def _stored_ids(server: Server, execution_id: str) -> list[str]:
    return [e.id for e in await server.history(execution_id)]


async def test_events_reach_the_server_in_the_order_saved(server: Server) -> None:
    """Events saved while earlier ones are on the wire follow them, in order, in later
    requests; an execution never has two requests on the wire at once."""
    async with sending(server, 3) as (recording, boxes, ids):
        gate = asyncio.Event()

        async def slow() -> None:
            await gate.wait()

        recording.before = slow
        saved: dict[str, list[str]] = {i: [] for i in ids}
        for n in range(12):
            for box in boxes:
                event = record(n, n=n)
                saved[box.execution_id].append(event.id)
                box.enqueue([event])
            for _ in range(n % 4):
                await asyncio.sleep(0)  # some saves share a request, some do not
            if n == 5:
                gate.set()
        gate.set()
        await asyncio.gather(*(box.flush() for box in boxes))
        assert recording.overlapped == []
        for execution_id in ids:
            stored = await _stored_ids(server, execution_id)
            assert stored[1:] == saved[execution_id]
            sent = [i for request in recording.event_ids(execution_id) for i in request]
            assert sent == saved[execution_id]  # sent once each, in order
            assert len(recording.event_ids(execution_id)) > 1  # over several requests


async def test_a_transport_failure_is_retried_with_growing_backoff(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Unreachable and overloaded answers are retried, each after a longer (jittered) wait up
    to ``max_backoff``, resending the same event ids; the server stores each once."""
    caplog.set_level(logging.INFO, logger="flux.worker")
    async with sending(server, 2, max_backoff=0.3) as (recording, boxes, ids):
        recording.failures += [
            ApiError("unreachable", 0),
            ApiError("overloaded", 503),
            ApiError("bad gateway", 502),
        ]
        events = {box.execution_id: [record(i, n=i) for i in range(3)] for box in boxes}
        for box in boxes:
            box.enqueue(events[box.execution_id])
        await asyncio.gather(*(box.flush() for box in boxes))
        assert len(recording.requests) == 4  # three refused, then the same ids stored
        for execution_id in ids:
            sent = recording.event_ids(execution_id)
            assert sent == [[e.id for e in events[execution_id]]] * 4
            assert (await _stored_ids(server, execution_id))[1:] == sent[0]
        assert all(box.state == ExecutionState.RUNNING for box in boxes)
    delays = [
        float(m.group(1))
        for r in caplog.records
        if (m := re.search(r"retry in ([\d.]+)s", r.getMessage()))
    ]
    # Attempt n waits a random share (half to all) of 0.05 * 2**n, capped at max_backoff.
    assert len(delays) == 3
    for attempt, delay in enumerate(delays, start=1):
        ceiling = min(0.3, 0.05 * 2**attempt)
        assert ceiling / 2 - 0.01 <= delay <= ceiling + 0.01, (attempt, delays)


def test_backoff_doubles_up_to_its_cap_with_jitter_and_never_overflows() -> None:
    for attempt in (0, 1, 2, 5, 40, 5_000):
        ceiling = min(5.0, 0.1 * 2 ** min(attempt, 60))
        for _ in range(20):
            assert ceiling / 2 <= backoff_delay(attempt, 0.1, 5.0) <= ceiling


async def test_an_execution_claimed_again_elsewhere_is_fenced_alone(server: Server) -> None:
    """The server refuses the stale generation of one execution: that outbox drops what it
    holds, tells its run (``on_fenced``) and raises FencedError on flush and on the next save;
    the other executions in the same request are stored."""
    async with sending(server, 3) as (recording, boxes, _ids):
        stale, *others = boxes
        fenced: list[str] = []
        stale.on_fenced = lambda: fenced.append(stale.execution_id)
        channel = recording.channel
        await channel.release(stale.execution_id, stale.generation, "test")
        again = await channel.claims([stale.execution_id])
        assert again.results[0].claim is not None  # a newer generation now holds it

        for box in boxes:
            box.enqueue([record("late", n=1)])
        with pytest.raises(FencedError, match="claimed again elsewhere"):
            await stale.flush()
        await asyncio.gather(*(box.flush() for box in others))
        assert [len(request) for request in recording.requests] == [3]  # one request
        assert fenced == [stale.execution_id]
        assert stale.fenced and stale.queue == []
        with pytest.raises(FencedError):
            stale.enqueue([record("later", n=2)])
        assert len(await server.history(stale.execution_id)) == 1
        for box in others:
            assert len(await server.history(box.execution_id)) == 2


async def test_requests_stay_within_the_size_budget(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events are taken only as far as the budget allows, by estimate, so executions with
    large values travel in several requests and none is refused."""
    monkeypatch.setattr(outbox_module, "REQUEST_BUDGET", 20_000)
    async with sending(server, 4) as (recording, boxes, ids):
        for box in boxes:
            box.enqueue([record("x" * 4_000, n=i) for i in range(3)])
        await asyncio.gather(*(box.flush() for box in boxes))
        for request in recording.requests:
            estimate = sum(outbox_module._estimate(e) for item in request for e in item.events)
            assert estimate <= 20_000 or sum(len(item.events) for item in request) == 1
        assert len(recording.requests) > 1
        for execution_id in ids:
            assert len(await server.history(execution_id)) == 4


async def test_a_refused_request_is_split_and_only_the_unstorable_execution_fails(
    server: Server,
) -> None:
    """One value is larger than the server takes (64 KiB here): the request carrying it with
    others is refused as a whole, split in halves until that execution stands alone, and it
    ends FAILED saying why; the others are stored."""
    async with sending(server, 4) as (recording, boxes, _ids):
        big, *small = boxes
        big.enqueue([record("x" * 100_000)])
        for box in small:
            box.enqueue([record("small")])
        with pytest.raises(FencedError, match="refused to store its events"):
            await big.flush()
        await asyncio.gather(*(box.flush() for box in small))
        sizes = [len(request) for request in recording.requests]
        assert sizes[0] == 4 and 1 in sizes[1:], sizes
        assert await server.state(big.execution_id) == "FAILED"
        status = await server.client.status("hello", big.execution_id)
        assert "larger than the server's limit" in str(status.output), status.output
        for box in small:
            assert await server.state(box.execution_id) == "RUNNING"
            assert len(await server.history(box.execution_id)) == 2


async def test_events_too_large_together_are_sent_fewer_at_a_time(server: Server) -> None:
    """One execution's events fit a request each but not together: the outbox halves what
    it sends until each part is taken, and the events keep their order."""
    async with sending(server, 1) as (recording, (box,), (execution_id,)):
        events = [record("y" * 20_000, n=i) for i in range(6)]
        box.enqueue(events)
        await box.flush()
        stored = await _stored_ids(server, execution_id)
        assert stored[1:] == [e.id for e in events]
        per_request = [len(ids) for ids in recording.event_ids(execution_id)]
        assert per_request[0] == 6 and max(per_request[1:]) < 6, per_request
        assert await server.state(execution_id) == "RUNNING"
