"""Traces across processes: a real server and workers export to a loopback OTLP/HTTP receiver,
turned on by the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` alone."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from flux.client import FluxClient
from flux.domain import ExecutionState

from tests.support.cluster import running_cluster, stop_process
from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

WORKFLOWS = """
import asyncio
from pathlib import Path

from flux import call, task, workflow
from flux.tasks import pause


@task
async def double(x: int) -> int:
    return x * 2


@task
async def wait_for(flag: str) -> str:
    while not Path(flag).exists():
        await asyncio.sleep(0.05)
    return "seen"


@workflow
async def approve(ctx):
    first = await double(ctx.input)
    answer = await pause("approval")
    return await double(first + answer)


@workflow
async def recover(ctx):
    first = await double(1)
    await wait_for(ctx.input)
    return await double(first)


@workflow
async def child(ctx):
    return await double(ctx.input)


@workflow
async def parent(ctx):
    return await call("child", ctx.input)
"""

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"


def segments(receiver: OtlpReceiver, execution_id: str) -> list[ReceivedSpan]:
    """The execution's segment spans received so far, oldest first."""
    found = [
        s
        for s in receiver.spans()
        if s.name.startswith("flux.workflow.run")
        and s.attributes.get("flux.execution.id") == execution_id
    ]
    return sorted(found, key=lambda s: s.start_ns)


def tasks_under(receiver: OtlpReceiver, segment: ReceivedSpan) -> list[str]:
    """Names of the task spans whose parent is ``segment``."""
    return sorted(
        s.name
        for s in receiver.spans()
        if s.name.startswith("flux.task.run") and s.parent_span_id == segment.span_id
    )


def test_pause_and_resume_on_another_worker_continue_the_callers_trace(tmp_path: Path) -> None:
    with (
        OtlpReceiver() as receiver,
        running_cluster(tmp_path, WORKFLOWS, FLUX_LOG_FORMAT="json", **receiver.env()) as cluster,
    ):
        with FluxClient(cluster.url, headers={"traceparent": CALLER}) as caller:
            status = caller.run("approve", 1, mode="sync")
        assert status.state is ExecutionState.PAUSED
        stop_process(cluster.workers["w1"])  # it drains, and flushes its spans as it exits
        cluster.start_worker("w2")
        with FluxClient(cluster.url) as client:
            done = client.resume("approve", status.execution_id, 10, mode="sync")
        assert done.state is ExecutionState.COMPLETED, cluster.tail()
        first, second = wait_until(
            lambda: (found := segments(receiver, status.execution_id))[1:] and found,
            what="both segments' spans",
        )
        wait_until(lambda: tasks_under(receiver, second), what="the resumed segment's task")
        [create] = [s for s in receiver.spans() if s.name == "flux.execution.create"]

    # One trace, the caller's: the server's create span is the caller's child, and each
    # worker's segment a child of the create span (the server stored its context).
    spans = receiver.spans()
    assert {s.trace_id for s in spans} == {CALLER_TRACE}
    assert create.parent_span_id == CALLER_SPAN
    assert create.service == "flux-server"
    assert first.parent_span_id == second.parent_span_id == create.span_id
    assert {first.service, second.service} == {"flux-worker"}
    assert [s.attributes["flux.worker.name"] for s in (first, second)] == ["w1", "w2"]
    assert [s.attributes["flux.execution.state"] for s in (first, second)] == [
        "PAUSED",
        "COMPLETED",
    ]
    assert tasks_under(receiver, first) == ["flux.task.run double", "flux.task.run pause"]
    # The resumed segment replays double and the answered pause: no spans, one event.
    assert tasks_under(receiver, second) == ["flux.task.run double"]
    assert second.event("flux.replay") == [{"flux.replay.tasks": 2}]
    # FLUX_LOG_FORMAT=json: every line the server and the workers logged is a JSON object.
    for log in cluster.logs:
        lines = [json.loads(line) for line in log.read_text().splitlines()]
        assert all({"time", "level", "logger", "message"} <= set(line) for line in lines), log
    server_log = (cluster.home / "server.log").read_text()
    assert '"logger": "uvicorn.access"' in server_log


@pytest.mark.parametrize("isolation", ["inprocess", "subprocess"])
def test_a_subworkflow_is_traced_in_its_parents_trace(tmp_path: Path, isolation: str) -> None:
    """The child execution's create span is a child of the parent's segment span (the worker
    sends the segment's context with the call), so the caller's one trace holds the parent,
    the child and their tasks."""
    with (
        OtlpReceiver() as receiver,
        running_cluster(
            tmp_path, WORKFLOWS, FLUX_WORKERS__ISOLATION=isolation, **receiver.env()
        ) as cluster,
    ):
        with FluxClient(cluster.url, headers={"traceparent": CALLER}) as caller:
            status = caller.run("parent", 4, mode="sync")
        assert status.state is ExecutionState.COMPLETED and status.output == 8, cluster.tail()

        def both() -> dict[str, ReceivedSpan] | None:
            found = {
                s.attributes["flux.workflow.name"]: s
                for s in receiver.spans()
                if s.name.startswith("flux.workflow.run")
            }
            creates = [s for s in receiver.spans() if s.name == "flux.execution.create"]
            done = len(found) == 2 and len(creates) == 2 and tasks_under(receiver, found["child"])
            return found if done else None

        segments = wait_until(both, what="the parent's and the child's spans")
        creates = {
            s.attributes["flux.execution.id"]: s
            for s in receiver.spans()
            if s.name == "flux.execution.create"
        }

    parent, child = segments["parent"], segments["child"]
    assert creates[status.execution_id].parent_span_id == CALLER_SPAN
    child_create = creates[child.attributes["flux.execution.id"]]
    assert child_create.parent_span_id == parent.span_id
    assert child.parent_span_id == child_create.span_id
    assert tasks_under(receiver, child) == ["flux.task.run double"]
    assert {s.trace_id for s in receiver.spans()} == {CALLER_TRACE}


def test_recovery_after_a_crash_replays_finished_tasks_without_spans(tmp_path: Path) -> None:
    flag = tmp_path / "go"
    with (
        OtlpReceiver() as receiver,
        running_cluster(tmp_path, WORKFLOWS, **receiver.env()) as cluster,
        FluxClient(cluster.url) as client,
    ):
        status = client.run("recover", str(flag))

        def doubled() -> bool:  # then it waits in wait_for (whose start is not sent alone)
            detail = client.get_execution(status.execution_id, detailed=True)
            return any(
                e.name == "double" and e.type == "TASK_COMPLETED" for e in detail.events or []
            )

        wait_until(doubled, what="the first task to complete")
        cluster.start_worker("w2")
        stop_process(cluster.workers["w1"], signal.SIGKILL)  # its open spans die with it
        flag.touch()

        def finished() -> bool:
            return client.get_execution(status.execution_id).state is ExecutionState.COMPLETED

        wait_until(finished, what="the recovered run to complete")
        [recovered] = wait_until(
            lambda: [
                s
                for s in segments(receiver, status.execution_id)
                if s.attributes["flux.worker.name"] == "w2"
            ],
            what="the recovered segment's span",
        )
        ran = wait_until(
            lambda: tasks_under(receiver, recovered)[1:] and tasks_under(receiver, recovered),
            what="the recovered segment's tasks",
        )

    assert recovered.attributes["flux.execution.resumed"] is True
    assert recovered.attributes["flux.execution.state"] == "COMPLETED"
    # double(1) finished on w1: replayed, no span. wait_for had not: it runs again.
    assert recovered.event("flux.replay") == [{"flux.replay.tasks": 1}]
    assert ran == ["flux.task.run double", "flux.task.run wait_for"]


def test_the_environments_sampler_follows_the_callers_decision_everywhere(tmp_path: Path) -> None:
    """``parentbased_traceidratio`` from the environment, ratio 0: a caller's sampled trace is
    kept by the server and every worker, an unsampled one (or none) makes no span anywhere,
    and the executions run as usual."""
    sampler = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}
    with (
        OtlpReceiver() as receiver,
        running_cluster(tmp_path, WORKFLOWS, **receiver.env(), **sampler) as cluster,
    ):
        left_out = []
        for headers in ({"traceparent": CALLER[:-2] + "00"}, {}):
            with FluxClient(cluster.url, headers=headers) as client:
                status = client.run("child", 1, mode="sync")
            assert status.state is ExecutionState.COMPLETED, cluster.tail()
            left_out.append(status.execution_id)
        with FluxClient(cluster.url, headers={"traceparent": CALLER}) as caller:
            kept = caller.run("child", 2, mode="sync")
        assert kept.output == 4
        [segment] = wait_until(lambda: segments(receiver, kept.execution_id), what="the spans")
        wait_until(lambda: tasks_under(receiver, segment), what="the kept segment's task")
        # Spans leave each process in order: the executions before it would be in by now.
        assert {s.trace_id for s in receiver.spans()} == {CALLER_TRACE}
        assert not [
            s for s in receiver.spans() if s.attributes.get("flux.execution.id") in left_out
        ]
