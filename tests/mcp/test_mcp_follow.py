"""A sync tool keeps following its execution when the Flux server's stream drops: the server
restarts in the middle of the call, and the tool still answers with the result, its progress
neither repeated nor lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from flux.client import AsyncFluxClient
from flux.domain import ExecutionState
from flux.errors import ApiError
from flux.protocol import ExecutionStreamFrame
from flux_mcp.follow import follow
from mcp_support import WORKFLOWS, connected

from tests.support.cluster import FluxCluster, running_cluster, stop_process
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.e2e


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[FluxCluster]:
    """This test's own server and worker: it restarts the server."""
    with running_cluster(tmp_path, WORKFLOWS) as cluster:
        yield cluster


async def test_execute_sync_survives_a_server_restart(restartable: FluxCluster) -> None:
    cluster = restartable
    seen: list[tuple[float, str | None]] = []
    answers: list[dict] = []

    async def progress(value: float, total: float | None, message: str | None) -> None:
        seen.append((value, message))

    async with connected(cluster.url) as client, anyio.create_task_group() as group:

        async def run() -> None:
            result = await client.call_tool(
                "execute_workflow_sync",
                {"workflow_name": "slow", "input": 4},
                progress_callback=progress,
            )
            assert not result.is_error, result.content
            assert result.structured_content is not None
            answers.append(result.structured_content)

        group.start_soon(run)
        await wait_until_async(
            lambda: any(message and message.endswith("is RUNNING") for _, message in seen),
            what="the execution to run",
        )
        server = cluster.server
        assert server is not None
        # In threads: the in-memory flux-mcp runs on this loop meanwhile.
        await anyio.to_thread.run_sync(lambda: stop_process(server, grace=10))  # the stream drops
        await anyio.to_thread.run_sync(cluster.start_server)  # same port, same database

    (done,) = answers
    assert (done["state"], done["output"]) == ("COMPLETED", "woke")
    values = [value for value, _ in seen]
    assert values == sorted(values) and len(set(values)) == len(values)
    messages = [message for _, message in seen]
    assert messages.count(f"execution {done['execution_id']} is RUNNING") == 1
    assert messages[-1] == f"execution {done['execution_id']} is COMPLETED"
    async with AsyncFluxClient(cluster.url) as flux:
        assert (await flux.get_execution(done["execution_id"])).state == "COMPLETED"


class _EndsThenBreaks:
    """A Flux client whose execution stream brings the finishing frame, then breaks (the
    connection lost while the rest of the body was read): the one case a live server cannot
    be made to show on demand."""

    def __init__(self) -> None:
        self.streams = 0
        self.reads = 0

    async def stream_execution(
        self, execution_id: str, *, after: int | None = None
    ) -> AsyncIterator[ExecutionStreamFrame]:
        self.streams += 1
        yield ExecutionStreamFrame(
            execution_id=execution_id,
            state=ExecutionState.COMPLETED,
            output="done",
            timestamp=datetime.now(UTC),
            position=3,
        )
        raise ApiError("peer closed connection", 0)

    async def get_execution(self, execution_id: str) -> None:
        self.reads += 1
        raise AssertionError("a finished execution needs no read")


async def test_a_stream_that_breaks_after_the_finishing_frame_still_finishes() -> None:
    flux = _EndsThenBreaks()
    reported: list[str] = []

    async def report(message: str) -> None:
        reported.append(message)

    followed = await follow(flux, "e1", wait=10, report=report)  # type: ignore[arg-type]
    assert followed.stopped and followed.end is not None and followed.end.output == "done"
    assert (flux.streams, flux.reads) == (1, 0)  # neither opened again nor read
    assert reported == ["execution e1 is COMPLETED"]
