"""Traces of executions, in one process: an in-process server and real workers sharing an
in-memory span exporter (the e2e tests do the same with processes and an OTLP receiver)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from flux.client import AsyncFluxClient
from flux.domain import ExecutionState
from flux_server import ServerOptions, create_app
from flux_server.testing import serve_in_process
from flux_worker import Worker
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from worker_support import BOOTSTRAP

from tests.support.waiting import wait_until_async

FLOWS = b"""
import logging

from flux import task, workflow
from flux.tasks import parallel, pause


@task
async def double(x: int) -> int:
    return x * 2


@task
async def both(x: int) -> list:
    return await parallel(double(x), double(x + 1))


@task.with_options(retry_max_attempts=1, retry_delay=0)
async def boom(x: int) -> int:
    raise ValueError("the task broke")


@workflow
async def approve(ctx):
    first = await double(ctx.input)
    await both(first)
    answer = await pause("approval")
    return await double(first + answer)


@task
async def noisy() -> None:
    logging.getLogger("tests.flows").warning("inside a task")


@workflow
async def chatty(ctx):
    await noisy()


@task
async def current_span() -> list:
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return [f"{context.trace_id:032x}", f"{context.span_id:016x}", context.trace_flags.sampled]


@task
async def linger(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


@workflow
async def lingering(ctx):
    await double(1)
    await linger(ctx.input)


@workflow
async def spanning(ctx):
    return await current_span()


@workflow
async def failing(ctx):
    await double(1)
    return await boom(2)
"""

CALLER = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(spans: InMemorySpanExporter) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider


def server_options(tmp_path: Path, provider: TracerProvider) -> ServerOptions:
    """An in-process server's options, tracing into ``provider``."""
    return ServerOptions(
        database_url=f"sqlite:///{tmp_path}/flux.db",
        home=tmp_path / "home",
        bootstrap_token=BOOTSTRAP,
        encryption_key="test-encryption-key-material-0123456789",
        tracer_provider=provider,
    )


def sampling(sampler: Any) -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider with ``sampler``, and the exporter its spans go to."""
    spans = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider, spans


@pytest.fixture
async def transport(tmp_path: Path, provider: TracerProvider) -> AsyncIterator[Any]:
    """An in-process server that traces into ``provider``, with the flows registered."""
    options = server_options(tmp_path, provider)
    async with serve_in_process(create_app(options)) as transport:
        async with AsyncFluxClient("http://flux.test", transport=transport) as client:
            await client.register_workflows(FLOWS, filename="flows.py")
        yield transport


@pytest.fixture
async def client(transport: Any) -> AsyncIterator[AsyncFluxClient]:
    async with AsyncFluxClient("http://flux.test", transport=transport) as client:
        yield client


@contextlib.asynccontextmanager
async def worker(
    transport: Any, name: str, provider: TracerProvider, **options: Any
) -> AsyncIterator[Worker]:
    """A real worker on the in-process server behind ``transport``, with a client of its own
    (it closes it when it stops), stopped (drained) at the end."""
    w = Worker(
        name,
        "http://flux.test",
        BOOTSTRAP,
        home=".",
        client=AsyncFluxClient("http://flux.test", transport=transport),
        tracer_provider=provider,
        **options,
    )
    task = asyncio.create_task(w.run())

    async def connected() -> bool:
        return any(x.name == name and x.connected for x in await w.client.list_workers())

    try:
        await wait_until_async(connected, what=f"worker {name} to connect")
        yield w
    finally:
        w.stop()
        await asyncio.wait_for(task, 60)


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name.startswith(prefix)]


def attribute(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


def assert_documented(spans: InMemorySpanExporter) -> None:
    """Every span name, attribute and event name these spans use is in docs/operations.md."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    names = set()
    for span in spans.get_finished_spans():
        names.add(span.name.split(" ")[0])
        names.update(span.attributes or {})
        for event in span.events:
            names.add(event.name)
            names.update(k for k in event.attributes or {} if k.startswith("flux."))
    assert sorted(n for n in names if f"`{n}`" not in doc and f"`{n} <" not in doc) == []


def trace_ids(spans: list[ReadableSpan]) -> set[int]:
    return {s.context.trace_id for s in spans if s.context is not None}


async def test_pause_and_resume_on_another_worker_continue_one_trace(
    client: AsyncFluxClient, transport: Any, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    async with worker(transport, "w1", provider):
        status = await client.run("approve", 1, mode="sync")
    assert status.state is ExecutionState.PAUSED
    async with worker(transport, "w2", provider):
        done = await client.resume("approve", status.execution_id, 10, mode="sync")
    assert done.state is ExecutionState.COMPLETED and done.output == 24

    [create] = named(spans, "flux.execution.create")
    first, second = sorted(named(spans, "flux.workflow.run"), key=lambda s: s.start_time or 0)
    tasks = named(spans, "flux.task.run")
    assert trace_ids([create, first, second, *tasks]) == {create.context.trace_id}
    # Both segments are children of the create span, which the server stored.
    assert first.parent is not None and second.parent is not None
    assert first.parent.span_id == second.parent.span_id == create.context.span_id
    assert create.kind is SpanKind.PRODUCER and first.kind is SpanKind.CONSUMER
    assert attribute(create, "flux.execution.id") == status.execution_id
    assert first.name == "flux.workflow.run approve"
    assert [attribute(s, "flux.worker.name") for s in (first, second)] == ["w1", "w2"]
    assert [attribute(s, "flux.execution.resumed") for s in (first, second)] == [False, True]
    assert [attribute(s, "flux.execution.state") for s in (first, second)] == [
        "PAUSED",
        "COMPLETED",
    ]
    assert attribute(first, "flux.execution.id") == status.execution_id

    # First segment: double, both (with its two doubles nested in it), the pause.
    def under(segment: ReadableSpan) -> list[tuple[str, str]]:
        ids = {segment.context.span_id}
        found = []
        for s in sorted(tasks, key=lambda s: s.start_time or 0):
            if s.parent is not None and s.parent.span_id in ids:
                ids.add(s.context.span_id)
                found.append((s.name, attribute(s, "flux.task.outcome")))
        return found

    assert sorted(under(first)) == sorted(
        [
            ("flux.task.run double", "completed"),
            ("flux.task.run both", "completed"),
            ("flux.task.run double", "completed"),
            ("flux.task.run double", "completed"),
            ("flux.task.run pause", "paused"),
        ]
    )
    [both] = [s for s in tasks if s.name == "flux.task.run both"]
    nested = [s for s in tasks if s.parent is not None and s.parent.span_id == both.context.span_id]
    assert len(nested) == 2
    # Second segment: the replayed tasks (4, and the answered pause) make no span; one event
    # on the segment counts them. Only the last double ran.
    assert under(second) == [("flux.task.run double", "completed")]
    [replay] = [e for e in second.events if e.name == "flux.replay"]
    assert replay.attributes == {"flux.replay.tasks": 5}
    assert not [e for e in first.events if e.name == "flux.replay"]
    assert_documented(spans)


async def test_a_failing_task_records_its_exception_and_an_error_status(
    client: AsyncFluxClient, transport: Any, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    async with worker(transport, "w1", provider):
        status = await client.run("failing", None, mode="sync")
    assert status.state is ExecutionState.FAILED
    [boom] = named(spans, "flux.task.run boom")
    assert attribute(boom, "flux.task.outcome") == "failed"
    assert attribute(boom, "flux.task.attempt") == 2
    assert boom.status.status_code is StatusCode.ERROR
    exceptions = [e for e in boom.events if e.name == "exception"]
    # The retry's failure, then the task's (the first attempt's failure is not recorded).
    assert [(e.attributes or {}).get("exception.type") for e in exceptions] == [
        "ValueError",
        "ValueError",
    ]
    assert "the task broke" in str((exceptions[-1].attributes or {})["exception.message"])
    assert "Traceback" in str((exceptions[-1].attributes or {})["exception.stacktrace"])
    assert [e.name for e in boom.events if e.name.startswith("flux.")] == ["flux.task.retry"]
    [segment] = named(spans, "flux.workflow.run")
    assert attribute(segment, "flux.execution.state") == "FAILED"
    assert segment.status.status_code is StatusCode.ERROR
    [double] = named(spans, "flux.task.run double")
    assert double.status.status_code is StatusCode.UNSET
    # Never inputs or outputs: only names, ids, attempts, outcomes and states.
    for span in spans.get_finished_spans():
        for key in span.attributes or {}:
            assert key.startswith("flux."), key
    assert_documented(spans)


async def test_the_callers_traceparent_is_the_parent_of_the_execution(
    client: AsyncFluxClient, transport: Any, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    async with AsyncFluxClient(
        "http://flux.test", transport=transport, headers={"traceparent": CALLER}
    ) as caller:
        async with worker(transport, "w1", provider):
            # The server's fast path, the run route (a query string) and the rerun route.
            status = await caller.run("approve", 1, mode="sync")
            chosen = await caller.run("approve", 2, mode="sync", execution_id="chosen-id")
            again = await caller.rerun(status.execution_id)
            await wait_until_async(
                lambda: _paused(client, again.execution_id), what="the rerun to pause"
            )
    assert chosen.state is ExecutionState.PAUSED
    creates = named(spans, "flux.execution.create")
    assert len(creates) == 3
    assert len(named(spans, "flux.workflow.run")) == 3
    for create in creates:
        assert create.parent is not None and create.parent.is_remote
        assert f"{create.parent.span_id:016x}" == CALLER[36:52]
    assert trace_ids(spans.get_finished_spans()) == {int(CALLER[3:35], 16)}


async def _paused(client: AsyncFluxClient, execution_id: str) -> bool:
    status = await client.get_execution(execution_id)
    return status.state is ExecutionState.PAUSED


async def test_subprocess_runs_are_traced_from_the_events_the_child_sends(
    client: AsyncFluxClient, transport: Any, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    async with worker(transport, "w1", provider, isolation="subprocess"):
        status = await client.run("failing", None, mode="sync")
    assert status.state is ExecutionState.FAILED
    [segment] = named(spans, "flux.workflow.run")
    [boom] = named(spans, "flux.task.run boom")
    assert boom.parent is not None and boom.parent.span_id == segment.context.span_id
    assert boom.status.status_code is StatusCode.ERROR
    exceptions = [e.attributes or {} for e in boom.events if e.name == "exception"]
    assert exceptions[-1]["exception.type"] == "ValueError"
    assert exceptions[-1]["exception.message"] == "the task broke"
    assert attribute(segment, "flux.execution.state") == "FAILED"


async def test_without_a_provider_or_an_environment_nothing_is_traced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    w = Worker("w1", "http://flux.test", BOOTSTRAP, home=tmp_path)
    assert w.executions.tracer is None
    await w.client.aclose()


def test_a_task_an_earlier_segment_started_is_traced_from_this_segments_start(
    provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    """The spans of a segment as a child process's records make them (values never read
    back: exceptions come from their views), for a history that stopped inside a task."""
    from flux.domain import EventType as E
    from flux.domain import ExecutionEvent
    from flux.protocol import EventRecord
    from flux_worker.tracing import WorkerTracer
    from worker_support import claim as make_claim
    from worker_support import columns

    def event(kind: E, source_id: str, value: Any = None) -> EventRecord:
        return EventRecord.from_event(ExecutionEvent(kind, source_id, source_id, value), "json")

    history = [
        event(E.WORKFLOW_STARTED, "flow"),
        event(E.TASK_STARTED, "a"),
        event(E.TASK_COMPLETED, "a", 1),
        event(E.TASK_STARTED, "b"),
        event(E.TASK_RETRY_STARTED, "b"),
    ]
    claim = make_claim(
        generation=3,
        workflow_name="flow",
        workflow_version=2,
        history_columns=columns(history),
        traceparent=CALLER,
    )
    segment = WorkerTracer(provider, "w9").segment(claim)
    segment.observe(
        [
            event(E.TASK_RETRY_FAILED, "b", ValueError("first")),
            event(E.TASK_RETRY_STARTED, "b"),
            event(E.TASK_FAILED, "b", ValueError("last")),
            event(E.TASK_STARTED, "c"),
            event(E.WORKFLOW_FAILED, "flow", ValueError("last")),
        ]
    )
    segment.end()

    [run] = named(spans, "flux.workflow.run flow")
    assert run.parent is not None and f"{run.parent.span_id:016x}" == CALLER[36:52]
    assert attribute(run, "flux.execution.segment") == 3
    assert attribute(run, "flux.execution.resumed") is True
    assert attribute(run, "flux.workflow.version") == 2
    assert run.status.status_code is StatusCode.ERROR
    assert [e.attributes for e in run.events if e.name == "flux.replay"] == [
        {"flux.replay.tasks": 1}
    ]
    [b] = named(spans, "flux.task.run b")
    assert b.start_time == segment.start  # not when w1 started it, before this segment
    assert attribute(b, "flux.task.attempt") == 3  # two from the history, one here
    assert attribute(b, "flux.task.outcome") == "failed"
    assert [(e.attributes or {}).get("exception.message") for e in b.events] == [
        "first",
        None,  # flux.task.retry
        "last",
    ]
    [c] = named(spans, "flux.task.run c")
    assert attribute(c, "flux.task.outcome") == "interrupted"
    assert not named(spans, "flux.task.run a")


async def test_json_log_lines_of_task_code_name_the_execution_and_its_trace(
    client: AsyncFluxClient, transport: Any, provider: TracerProvider
) -> None:
    import io
    import json
    import logging

    from flux.logs import JsonFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.flows")
    logger.addHandler(handler)
    try:
        async with (
            AsyncFluxClient(
                "http://flux.test", transport=transport, headers={"traceparent": CALLER}
            ) as caller,
            worker(transport, "w1", provider),
        ):
            status = await caller.run("chatty", None, mode="sync")
    finally:
        logger.removeHandler(handler)
    [line] = [json.loads(line) for line in out.getvalue().splitlines()]
    assert line["message"] == "inside a task"
    assert line["execution_id"] == status.execution_id
    assert line["trace_id"] == CALLER[3:35]
    assert len(line["span_id"]) == 16  # the segment's span, current while its tasks run


async def test_an_execution_sampled_out_makes_no_span_anywhere(tmp_path: Path) -> None:
    """The sampler leaves it out at the create; the workers follow (and make no task span)."""
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    provider, spans = sampling(ParentBased(TraceIdRatioBased(0.0)))
    options = server_options(tmp_path, provider)
    async with (
        serve_in_process(create_app(options)) as transport,
        AsyncFluxClient("http://flux.test", transport=transport) as client,
    ):
        await client.register_workflows(FLOWS, filename="flows.py")
        async with worker(transport, "w1", provider) as w:
            status = await client.run("failing", None, mode="sync")
            assert w.executions.tracer is not None
    assert status.state is ExecutionState.FAILED
    assert spans.get_finished_spans() == ()


@pytest.mark.parametrize("kept", [True, False], ids=["sampled", "sampled out"])
async def test_spans_task_code_makes_are_children_of_the_segment(
    tmp_path: Path, kept: bool
) -> None:
    """While a task runs, the current span is its segment's (sampled), or the execution's
    trace left out (a parent-based sampler then leaves the task code's spans out too)."""
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

    provider, spans = sampling(ParentBased(ALWAYS_ON if kept else ALWAYS_OFF))
    options = server_options(tmp_path, provider)
    caller = CALLER if kept else CALLER[:-2] + "00"
    async with (
        serve_in_process(create_app(options)) as transport,
        AsyncFluxClient("http://flux.test", transport=transport) as client,
        AsyncFluxClient(
            "http://flux.test", transport=transport, headers={"traceparent": caller}
        ) as calling,
    ):
        await client.register_workflows(FLOWS, filename="flows.py")
        async with worker(transport, "w1", provider):
            status = await calling.run("spanning", None, mode="sync")
    assert status.state is ExecutionState.COMPLETED
    trace_id, span_id, sampled = status.output
    assert trace_id == CALLER[3:35]
    assert sampled is kept
    if kept:
        [segment] = named(spans, "flux.workflow.run")
        assert segment.context is not None and f"{segment.context.span_id:016x}" == span_id
    else:
        assert spans.get_finished_spans() == ()
        assert span_id != "0" * 16


async def test_spans_of_finished_tasks_go_out_while_a_long_task_runs(
    client: AsyncFluxClient, transport: Any, provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    """A segment makes its spans in batches, but never holds a finished task's span for
    much longer than a second, even when nothing else happens in the run."""
    async with worker(transport, "w1", provider):
        status = await client.run("lingering", 30, mode="async")

        def double_is_out() -> bool:
            return bool(named(spans, "flux.task.run double"))

        await wait_until_async(double_is_out, what="the first task's span", timeout=10)
        running = await client.get_execution(status.execution_id)
        assert running.state is ExecutionState.RUNNING
        assert named(spans, "flux.workflow.run") == []
        await client.cancel("lingering", status.execution_id)


def test_a_segment_makes_its_spans_once_it_holds_enough_events(
    provider: TracerProvider, spans: InMemorySpanExporter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events wait in the segment for their spans, up to ``HOLD_EVENTS`` of them."""
    from flux.domain import EventType as E
    from flux.domain import ExecutionEvent
    from flux_worker import tracing
    from worker_support import claim as make_claim

    monkeypatch.setattr(tracing, "HOLD_EVENTS", 4)
    claim = make_claim(workflow_name="flow", traceparent=CALLER)
    segment = tracing.WorkerTracer(provider, "w9").segment(claim)
    segment.observe([ExecutionEvent(E.WORKFLOW_STARTED, "e1", "flow")])
    segment.observe([ExecutionEvent(E.TASK_STARTED, "a", "a")])
    segment.observe([ExecutionEvent(E.TASK_COMPLETED, "a", "a", 1)])
    assert spans.get_finished_spans() == ()  # three held
    segment.observe([ExecutionEvent(E.TASK_STARTED, "b", "b")])
    assert [s.name for s in spans.get_finished_spans()] == ["flux.task.run a"]
    segment.end()
    assert [s.name for s in spans.get_finished_spans()] == [
        "flux.task.run a",
        "flux.task.run b",
        "flux.workflow.run flow",
    ]


def batching() -> tuple[TracerProvider, InMemorySpanExporter]:
    """A provider whose spans are batched (as the ``OTEL_*`` environment's are), and the
    exporter its spans go to when it is flushed."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(spans, schedule_delay_millis=60_000))
    return provider, spans


def test_where_spans_are_batched_ended_segments_make_their_spans_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flux.domain import EventType as E
    from flux.domain import ExecutionEvent
    from flux_worker import tracing
    from worker_support import claim as make_claim

    monkeypatch.setattr(tracing, "FINISH_SEGMENTS", 2)
    provider, spans = batching()
    tracer = tracing.WorkerTracer(provider, "w9")

    def one(execution_id: str) -> tracing.Segment:
        segment = tracer.segment(
            make_claim(execution_id=execution_id, workflow_name="flow", traceparent=CALLER)
        )
        segment.observe(
            [
                ExecutionEvent(E.WORKFLOW_STARTED, execution_id, "flow"),
                ExecutionEvent(E.TASK_STARTED, "a", "a"),
                ExecutionEvent(E.TASK_COMPLETED, "a", "a", 1),
                ExecutionEvent(E.WORKFLOW_COMPLETED, execution_id, "flow"),
            ]
        )
        segment.end()
        return segment

    first = one("e1")
    assert [segment for segment, _ in tracer.ended] == [first]
    one("e2")
    assert tracer.ended == []
    tracer.flush()
    provider.force_flush()
    made = sorted(
        (s.attributes or {}).get("flux.execution.id", s.name) for s in spans.get_finished_spans()
    )
    assert made == ["e1", "e2", "flux.task.run a", "flux.task.run a"]
    assert {s.attributes["flux.execution.state"] for s in named(spans, "flux.workflow.run")} == {
        "COMPLETED"
    }


async def test_a_worker_that_stops_hands_over_the_spans_it_holds(tmp_path: Path) -> None:
    """Spans held to be made or handed over together are not lost when the worker (or the
    server) stops: they reach the processors then."""
    provider, spans = batching()
    options = server_options(tmp_path, provider)
    async with serve_in_process(create_app(options)) as transport:
        async with AsyncFluxClient("http://flux.test", transport=transport) as client:
            await client.register_workflows(FLOWS, filename="flows.py")
            async with worker(transport, "w1", provider):
                done = await client.run("spanning", None, mode="sync")
            assert done.state is ExecutionState.COMPLETED
            provider.force_flush()
            assert [s.name for s in named(spans, "flux.workflow.run")] == [
                "flux.workflow.run spanning"
            ]
    provider.force_flush()
    assert [s.name for s in named(spans, "flux.execution.create")] == ["flux.execution.create"]
