"""An execution's stream (``GET /executions/{id}/stream``) with real server and worker processes:
a client that loses the stream while the execution waits at a pause picks it up again after
the last frame it had, by ``?after=`` or ``Last-Event-ID``, and misses nothing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from flux.client import FluxClient
from flux.protocol import PROTOCOL_HEADER, PROTOCOL_VERSION, ExecutionStreamFrame

from tests.support.cluster import FluxCluster, running_cluster

pytestmark = pytest.mark.e2e

WORKFLOWS = """
from flux import ExecutionContext, task, workflow
from flux.tasks import pause


@task
async def shout(text: str) -> str:
    return text.upper()


@workflow
async def approve(ctx: ExecutionContext[str]):
    answer = await pause("ok?")
    return await shout(f"{ctx.input}: {answer}")
"""


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FluxCluster]:
    with running_cluster(tmp_path, WORKFLOWS) as running:
        yield running


def raw_frames(url: str, last_event_id: int) -> list[tuple[int, str, dict]]:
    """(id, event, data) of each frame after ``last_event_id``, read as a browser's
    EventSource would reconnect: with the ``Last-Event-ID`` header."""
    headers = {"Last-Event-ID": str(last_event_id), PROTOCOL_HEADER: PROTOCOL_VERSION}
    found: list[tuple[int, str, dict]] = []
    fields: dict[str, str] = {}
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if line == "" and "event" in fields:
                found.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
                fields = {}
            elif line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    return found


def test_a_dropped_stream_resumes_after_the_last_frame(cluster: FluxCluster) -> None:
    with FluxClient(cluster.url) as client:
        run = client.run("approve", "order 7")
        before: list[ExecutionStreamFrame] = []
        with contextlib.closing(client.stream_execution(run.execution_id)) as frames:
            for frame in frames:
                before.append(frame)
                if frame.state == "PAUSED":
                    break  # the connection drops while the execution waits
        assert [f.state for f in before] == ["RUNNING", "PAUSED"]

        client.resume("approve", run.execution_id, "yes")
        after = list(client.stream_execution(run.execution_id, after=before[-1].position))
        assert after[-1].state == "COMPLETED" and after[-1].output == "ORDER 7: YES"
        assert all(f.state == "RUNNING" for f in after[:-1]) and after[:-1]

        # Nothing missed, nothing twice: the whole stream, read again now that it has ended.
        whole = list(client.stream_execution(run.execution_id))
        assert [(f.position, f.state) for f in whole] == [
            (f.position, f.state) for f in before + after
        ]
        assert client.get_execution(run.execution_id).state == "COMPLETED"

    stream_url = f"{cluster.url}/executions/{run.execution_id}/stream"
    resumed = raw_frames(stream_url, before[-1].position)
    assert [(i, d["state"]) for i, _, d in resumed] == [(f.position, f.state) for f in after]
    assert resumed[-1][1] == "workflow.execution.completed"
