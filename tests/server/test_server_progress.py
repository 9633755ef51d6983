"""Progress (protocol 1.10): a worker's ``POST /workers/{name}/progress/{id}`` reaches every open
stream of the execution, on this replica and on others, as ``task.progress`` frames; nothing is
stored, and with nobody watching nothing happens."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from flux.domain import MAX_PROGRESS_BYTES, EventType
from flux.errors import ApiError
from flux.protocol import ProgressItem, TaskProgressFrame
from server_support import Server, record

from tests.support.waiting import wait_until_async


def item(value: Any, task: str = "work") -> ProgressItem:
    return ProgressItem(task=task, value=value, timestamp=datetime(2025, 5, 1, tzinfo=UTC))


async def collect(frames: AsyncIterator[Any], into: list[Any]) -> None:
    async for frame in frames:
        into.append(frame)


async def watched(server: Server, execution_id: str) -> None:
    await wait_until_async(
        lambda: server.runtime.progress.streams(execution_id),
        what="the stream to listen",
    )


async def test_progress_reaches_every_stream_and_is_not_stored(server: Server) -> None:
    await server.register()
    worker = await server.worker()
    run = await server.client.run("hello", "x")
    claim = await worker.take()
    await worker.checkpoint(claim.execution_id, claim.generation,
                            [record(EventType.WORKFLOW_STARTED)])  # fmt: skip
    by_id: list[Any] = []
    plain: list[Any] = []
    streams = [
        asyncio.create_task(
            collect(server.client.stream_execution(run.execution_id, progress=True), by_id)
        ),
        asyncio.create_task(collect(server.client.stream_execution(run.execution_id), plain)),
    ]
    await watched(server, run.execution_id)
    await wait_until_async(lambda: server.runtime.progress.streams(run.execution_id) == 2)

    answer = await worker.ch.progress(run.execution_id, [item({"step": 1}), item("two")])
    assert answer.listening
    await wait_until_async(lambda: len(by_id) == 3, what="the progress frames")  # RUNNING first
    await worker.finish(claim, "done")
    await asyncio.wait_for(asyncio.gather(*streams), 10)

    progress = [f for f in by_id if isinstance(f, TaskProgressFrame)]
    assert [(f.execution_id, f.task, f.value) for f in progress] == [
        (run.execution_id, "work", {"step": 1}),
        (run.execution_id, "work", "two"),
    ]
    assert progress[0].timestamp == datetime(2025, 5, 1, tzinfo=UTC)
    assert by_id[-1].state == "COMPLETED"
    # A client that did not ask for progress never sees it (old clients skip the event).
    assert not any(isinstance(f, TaskProgressFrame) for f in plain)
    detailed = await server.client.status("hello", run.execution_id, detailed=True)
    assert "step" not in str([e.model_dump() for e in detailed.events or []])
    assert server.runtime.progress.streams(run.execution_id) == 0


async def test_a_run_stream_carries_progress_between_its_state_frames(server: Server) -> None:
    await server.register()
    worker = await server.worker()
    frames: list[Any] = []
    stream = asyncio.create_task(collect(server.client.stream("hello", "x", progress=True), frames))
    claim = await worker.take()
    await watched(server, claim.execution_id)
    await worker.ch.progress(claim.execution_id, [item("halfway")])
    await wait_until_async(lambda: any(isinstance(f, TaskProgressFrame) for f in frames))
    await worker.finish(claim, "done")
    await asyncio.wait_for(stream, 10)

    kinds = [f.value if isinstance(f, TaskProgressFrame) else f.state.value for f in frames]
    assert kinds[-1] == "COMPLETED" and "halfway" in kinds


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_with_nobody_watching_nothing_is_checked_or_sent(server: Server) -> None:
    await server.register()
    worker = await server.worker()
    await server.client.run("hello", "x")
    claim = await worker.take()
    # Not even the hold is looked up on SQLite (a single server): the worker just holds back.
    answer = await worker.ch.progress("someone-elses", [item(1)])
    assert not answer.listening
    answer = await worker.ch.progress(claim.execution_id, [item(1)])
    assert not answer.listening


async def test_only_the_holder_publishes_and_values_are_bounded(server: Server) -> None:
    await server.register()
    worker = await server.worker()
    other = await server.worker("w2")
    run = await server.client.run("hello", "x")
    claim = await worker.take()
    stream = asyncio.create_task(
        collect(server.client.stream_execution(run.execution_id, progress=True), [])
    )
    await watched(server, run.execution_id)

    with pytest.raises(ApiError) as refused:
        await other.ch.progress(run.execution_id, [item(1)])
    assert refused.value.status_code == 403
    assert "only the worker running it publishes its progress" in str(refused.value)

    with pytest.raises(ApiError) as large:
        await worker.ch.progress(run.execution_id, [item("x" * MAX_PROGRESS_BYTES)])
    assert large.value.status_code == 413
    assert "over the limit of 65536 (64 KiB)" in str(large.value)

    await worker.finish(claim, "done")
    await asyncio.wait_for(stream, 10)


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_progress_crosses_replicas_on_postgres(start_server) -> None:
    """The worker talks to replica B, the client watches on replica A."""
    a = await start_server()
    b = await start_server()
    await a.register()
    worker = await b.worker()
    run = await a.client.run("hello", "x")
    claim = await worker.take()
    frames: list[Any] = []
    stream = asyncio.create_task(
        collect(a.client.stream_execution(run.execution_id, progress=True), frames)
    )
    await watched(a, run.execution_id)
    big = "é" * (MAX_PROGRESS_BYTES // 2 - 1)  # 64 KiB of UTF-8: many notes, put back together

    async def arrived() -> bool:
        # Replica B sends hints only once it has seen A's listener (rechecked each second).
        await worker.ch.progress(run.execution_id, [item("ping")])
        return any(isinstance(f, TaskProgressFrame) for f in frames)

    await wait_until_async(arrived, what="progress from the other replica", interval=0.2)
    await worker.ch.progress(run.execution_id, [item(big, task="big")])
    await wait_until_async(
        lambda: any(isinstance(f, TaskProgressFrame) and f.task == "big" for f in frames),
        what="the large value",
    )
    await worker.finish(claim, "done")
    await asyncio.wait_for(stream, 10)
    assert next(f.value for f in frames if getattr(f, "task", "") == "big") == big


def test_the_client_reads_progress_only_when_asked() -> None:
    from flux.client import _calls as calls

    data = TaskProgressFrame(execution_id="e", task="t", value=[1], timestamp=datetime.now(UTC))
    text = data.model_dump_json()
    both = calls.with_progress(calls.parse_stream_frame)
    assert both("task.progress", text) == data
    assert calls.parse_stream_frame("task.progress", text) is None
