"""A real :class:`flux_worker.Worker` against the in-process server: batched claims, offers
that arrive while every slot is taken, pushed claims, and checkpoint batches."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from flux.client import AsyncFluxClient, AsyncWorkerChannel
from flux.domain import EventType, ExecutionEvent, ExecutionState
from flux.errors import ApiError
from server_support import running_worker

from tests.support.waiting import wait_until_async

FLOWS = b"""
from flux import task, workflow

@task
async def double(x):
    return 2 * x

@workflow
async def twice(ctx):
    first = await double(ctx.input)
    return await double(first)
"""


async def _run_all(client: AsyncFluxClient, n: int) -> list[object]:
    statuses = await asyncio.gather(*(client.run("twice", i, mode="sync") for i in range(n)))
    return [(str(s.state), s.output) for s in statuses]


@pytest.mark.parametrize("push", [False, True], ids=["offers", "pushed"])
async def test_a_full_worker_claims_offers_as_slots_free(
    server, tmp_path, monkeypatch, push: bool
) -> None:
    """Capacity 1, many runs at once: the server offers the next execution as soon as it has
    committed the end of the previous one, often before the worker has unwound that run. The
    offer must be claimed then, not left to lapse until the claim timeout (30 s here, longer
    than the sync timeout, so a lapsed offer would fail this test); a pushed claim runs."""
    monkeypatch.chdir(tmp_path)
    real = AsyncWorkerChannel.checkpoints

    async def slow_to_hear_back(self: AsyncWorkerChannel, items: Any) -> Any:
        answer = await real(self, items)
        await asyncio.sleep(0.1)  # the server has committed; the worker has not heard yet
        return answer

    monkeypatch.setattr(AsyncWorkerChannel, "checkpoints", slow_to_hear_back)
    await server.register(FLOWS)
    async with running_worker(server.client, capacity=1, push_claims=push):
        results = await _run_all(server.client, 6)
    assert results == [("COMPLETED", 4 * i) for i in range(6)]


async def test_many_offers_are_claimed_together(server, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    await server.register(FLOWS)
    real = AsyncWorkerChannel.claims
    batches: list[int] = []

    async def counted(self: AsyncWorkerChannel, ids: Any, *args: Any, **kwargs: Any) -> Any:
        batches.append(len(ids))
        return await real(self, ids, *args, **kwargs)

    monkeypatch.setattr(AsyncWorkerChannel, "claims", counted)
    async with running_worker(server.client, capacity=16, push_claims=False):
        results = await _run_all(server.client, 24)
    assert sum(batches) >= 24 and max(batches) > 1
    assert results == [("COMPLETED", 4 * i) for i in range(24)]


PAUSING = b"""
from flux import task, workflow
from flux.tasks import pause

@task
async def double(x):
    return 2 * x

@workflow
async def asks(ctx):
    first = await double(ctx.input)
    return first + await pause("more")
"""


async def test_offers_claimed_for_child_processes_come_with_column_histories(
    server, tmp_path, monkeypatch
) -> None:
    """Offers (``push_claims=False``) run in child processes: the worker does not decode the
    histories it claims, yet asks for them column by column, the one form a claim's history
    replays from; a resumed run's child replays its history. The resume is offered while the
    paused run's child process may still be exiting: it is claimed once that run has ended,
    not left to lapse until the claim timeout (30 s here, past the sync timeout)."""
    monkeypatch.chdir(tmp_path)
    real = AsyncWorkerChannel.claims
    asked: list[tuple[object, object]] = []

    async def recording(self: AsyncWorkerChannel, ids: Any, *args: Any, **kwargs: Any) -> Any:
        asked.append((kwargs.get("history_format"), kwargs.get("decode_history")))
        return await real(self, ids, *args, **kwargs)

    monkeypatch.setattr(AsyncWorkerChannel, "claims", recording)
    await server.register(PAUSING)
    options = {"capacity": 2, "push_claims": False, "isolation": "subprocess"}
    async with running_worker(server.client, **options):
        paused = await server.client.run("asks", 3, mode="sync")
        assert paused.state == ExecutionState.PAUSED
        done = await server.client.resume("asks", paused.execution_id, 1, mode="sync")
    assert (done.state, done.output) == (ExecutionState.COMPLETED, 7)
    assert len(asked) >= 2 and set(asked) == {("columns", False)}


async def test_a_pushing_worker_never_sends_a_claim(server, tmp_path, monkeypatch) -> None:
    """Claims come on the stream (protocol 1.3): no claim request at all, each source
    received once."""
    monkeypatch.chdir(tmp_path)
    claim_requests: list[object] = []

    async def no_claims(self: AsyncWorkerChannel, *args: Any, **kwargs: Any) -> Any:
        claim_requests.append(args)
        raise AssertionError("a pushing worker claimed")

    monkeypatch.setattr(AsyncWorkerChannel, "claims", no_claims)
    await server.register(FLOWS)
    async with running_worker(server.client, capacity=8) as worker:
        results = await _run_all(server.client, 20)
        assert len(worker.claims.sources) == 1
    assert results == [("COMPLETED", 4 * i) for i in range(20)]
    assert claim_requests == []


async def test_a_workflow_ends_in_the_request_that_carries_its_last_completion(
    server, tmp_path, monkeypatch
) -> None:
    """The last task's completion and the workflow's end are recorded a few loop iterations
    apart; they travel in one checkpoint request, so a sync run answers after one round
    trip, not two."""
    monkeypatch.chdir(tmp_path)
    real = AsyncWorkerChannel.checkpoints
    sent: list[list[str]] = []

    async def recording(self: AsyncWorkerChannel, items: Any) -> Any:
        sent.append([str(e.type) for item in items for e in item.events])
        return await real(self, items)

    monkeypatch.setattr(AsyncWorkerChannel, "checkpoints", recording)
    await server.register(FLOWS)
    async with running_worker(server.client, capacity=4):
        for i in range(3):
            status = await server.client.run("twice", i, mode="sync")
            assert status.output == 4 * i
    ends = [batch for batch in sent if "WORKFLOW_COMPLETED" in batch]
    assert len(ends) == 3
    assert all(batch[-2:] == ["TASK_COMPLETED", "WORKFLOW_COMPLETED"] for batch in ends), sent


async def test_a_sync_run_is_answered_from_the_checkpoint_that_settled_it(
    server, tmp_path, monkeypatch
) -> None:
    """The checkpoint that finishes an execution reads its status in the same statement or
    transaction and hands it to the waiting sync request before that request wakes up: the
    answer costs no read of its own."""
    monkeypatch.chdir(tmp_path)
    executions = server.runtime.executions
    real = type(executions).status
    reads: list[str] = []

    async def counting(self: Any, execution_id: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(execution_id)
        return await real(self, execution_id, *args, **kwargs)

    await server.register(FLOWS)
    async with running_worker(server.client, capacity=8):
        await server.client.run("twice", 0, mode="sync")  # warm: the module is compiled
        monkeypatch.setattr(type(executions), "status", counting)
        statuses = await asyncio.gather(
            *(server.client.run("twice", i, mode="sync") for i in range(8))
        )
    assert [s.output for s in statuses] == [4 * i for i in range(8)]
    assert reads == []


@pytest.mark.parametrize(("ready", "requests"), [(10, [10]), (20, [10, 10]), (3, [3])])
async def test_ready_executions_split_among_requests_only_in_worthwhile_shares(
    server, ready: int, requests: list[int]
) -> None:
    """The sender splits what is ready among its two concurrent requests only when each
    share is worth a request of its own (MIN_SHARE); else everything goes in one."""
    from flux.protocol import EventRecord
    from flux_worker.outbox import MIN_SHARE, CheckpointSender, Outbox

    assert MIN_SHARE == 8
    await server.register()
    worker = await server.worker("w1", capacity=ready)
    runs = [await server.client.run("hello", i) for i in range(ready)]
    claims = (await worker.ch.claims([r.execution_id for r in runs])).results
    sizes: list[int] = []

    class Recording:
        async def checkpoints(self, items: Any) -> Any:
            sizes.append(len(items))
            return await worker.ch.checkpoints(items)

    channel = Recording()
    sender = CheckpointSender(lambda: channel)
    boxes = [Outbox(sender, c.execution_id, c.claim.generation) for c in claims]
    for box in boxes:  # all in one loop iteration, as runs woken by one answer
        box.enqueue(
            [EventRecord.from_event(ExecutionEvent(EventType.WORKFLOW_STARTED, "wf", "hello"))]
        )
    await asyncio.gather(*(box.flush() for box in boxes))
    await sender.close()
    assert sorted(sizes) == requests
    assert all(box.state == ExecutionState.RUNNING for box in boxes)


async def test_an_unexpected_error_on_the_stream_or_heartbeat_does_not_stop_the_worker(
    start_server, tmp_path, monkeypatch
) -> None:
    """A bug (or a frame this version cannot read) raising on the stream, and one raising in
    the heartbeat: each is logged, and the worker reconnects and beats again rather than
    stay registered while taking no more work."""
    monkeypatch.chdir(tmp_path)
    real_connect = AsyncWorkerChannel.connect
    real_heartbeat = AsyncWorkerChannel.heartbeat
    streams: list[int] = []
    beats: list[int] = []

    def connect(self: AsyncWorkerChannel, *args: Any, **kwargs: Any) -> Any:
        streams.append(1)
        if len(streams) == 1:

            async def broken() -> AsyncIterator[Any]:
                raise RuntimeError("a frame nobody expected")
                yield  # pragma: no cover

            return broken()
        return real_connect(self, *args, **kwargs)

    async def heartbeat(self: AsyncWorkerChannel, *args: Any, **kwargs: Any) -> Any:
        beats.append(1)
        if len(beats) == 1:
            raise RuntimeError("a heartbeat bug")
        return await real_heartbeat(self, *args, **kwargs)

    monkeypatch.setattr(AsyncWorkerChannel, "connect", connect)
    monkeypatch.setattr(AsyncWorkerChannel, "heartbeat", heartbeat)
    server = await start_server(heartbeat_interval=0.05)
    await server.register(FLOWS)
    async with running_worker(server.client, capacity=4):
        results = await asyncio.wait_for(_run_all(server.client, 3), 30)
        await wait_until_async(lambda: len(beats) >= 3, what="heartbeats after the failed one")
    assert results == [("COMPLETED", 4 * i) for i in range(3)]
    assert len(streams) >= 2


BIG = b"""
from flux import task, workflow

@task
async def blob(n):
    return b"x" * n

@workflow
async def sized(ctx):
    data = await blob(ctx.input)
    return len(data)

@workflow
async def long_text(ctx):
    return "x" * ctx.input

@workflow
async def sized_together(ctx):
    return [len(b) for b in await blob.map([ctx.input] * 6)]
"""


async def _sized_runs(server: Any, size: int) -> list[tuple[str, object]]:
    """Six concurrent runs of ``sized`` on a real worker: their states and outputs."""
    await server.register(BIG)
    async with running_worker(server.client, capacity=8):
        runs = (server.client.run("sized", size, mode="sync") for _ in range(6))
        statuses = await asyncio.wait_for(asyncio.gather(*runs), 30)
    return [(str(s.state), s.output) for s in statuses]


async def test_checkpoints_too_large_together_are_sent_apart(server, tmp_path, monkeypatch) -> None:
    """Executions whose events fit a request each but not all together (the server takes
    256 KiB here): each is stored, none is abandoned."""
    monkeypatch.chdir(tmp_path)
    assert await _sized_runs(server, 90_000) == [("COMPLETED", 90_000)] * 6


async def test_events_of_one_execution_too_large_together_are_sent_apart(
    server, tmp_path, monkeypatch
) -> None:
    """Six parallel tasks of one execution finish together, their values too large for one
    request: fewer at a time are sent until they fit."""
    monkeypatch.chdir(tmp_path)
    await server.register(BIG)
    async with running_worker(server.client, capacity=8):
        status = await asyncio.wait_for(
            server.client.run("sized_together", 90_000, mode="sync"), 30
        )
    assert (str(status.state), status.output) == ("COMPLETED", [90_000] * 6)


async def test_an_event_too_large_for_the_server_fails_its_execution_only(
    server, tmp_path, monkeypatch
) -> None:
    """A value larger than the server takes in one request: that execution ends FAILED
    saying so (rather than being abandoned and run again, forever); others sent with it
    complete."""
    monkeypatch.chdir(tmp_path)
    await server.register(BIG)
    async with running_worker(server.client, capacity=8):
        big, *small = await asyncio.wait_for(
            asyncio.gather(
                server.client.run("sized", 400_000, mode="sync"),
                *(server.client.run("sized", 10, mode="sync") for _ in range(3)),
            ),
            30,
        )
    assert [(str(s.state), s.output) for s in small] == [("COMPLETED", 10)] * 3
    assert str(big.state) == "FAILED", big
    assert "larger than the server's limit" in big.output["message"], big.output


async def test_the_request_budget_keeps_large_values_apart_before_any_refusal(
    server, tmp_path, monkeypatch
) -> None:
    """With a budget under the server's limit, executions with large values go in separate
    requests from the start: no request is refused."""
    import flux_worker.outbox as outbox

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(outbox, "REQUEST_BUDGET", 200_000)
    real = AsyncWorkerChannel.checkpoints
    sizes: list[int] = []

    refused: list[int] = []

    async def counted(self: AsyncWorkerChannel, items: Any) -> Any:
        sizes.append(len(items))
        try:
            return await real(self, items)
        except ApiError as exc:
            refused.append(exc.status_code)
            raise

    monkeypatch.setattr(AsyncWorkerChannel, "checkpoints", counted)
    assert await _sized_runs(server, 60_000) == [("COMPLETED", 60_000)] * 6
    assert refused == []
    assert max(sizes) >= 2  # small checkpoints still travel together


async def test_a_finished_runs_output_travels_once(server, tmp_path, monkeypatch) -> None:
    """The output is the terminal event's value, which the server takes as the output: the
    worker does not send it twice. A 100 KB text output fits the 256 KiB limit here (its
    value and view once); sent twice it did not."""
    monkeypatch.chdir(tmp_path)
    await server.register(BIG)
    async with running_worker(server.client, capacity=2):
        status = await asyncio.wait_for(server.client.run("long_text", 100_000, mode="sync"), 30)
    assert str(status.state) == "COMPLETED" and status.output == "x" * 100_000
