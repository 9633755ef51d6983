"""flux.spans: a span made from plain fields reaches the span processors as the SDK's own
span would, sampler, ids, limits and exception events included."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from flux.observability import span_context_of
from flux.spans import SpanMaker
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    ParentBasedTraceIdRatio,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanKind, StatusCode

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
UNSAMPLED_CALLER = CALLER[:-2] + "00"


def _provider(**options: object) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "t"}), **options)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def _fields(span: ReadableSpan) -> dict[str, object]:
    """What an exporter reads of a span, but its ids and times."""
    return {
        "name": span.name,
        "kind": span.kind,
        "parent": span.parent,
        "trace_id": span.context.trace_id if span.context else None,
        "flags": span.context.trace_flags if span.context else None,
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        "status": (span.status.status_code, span.status.description),
        "resource": span.resource.attributes,
        "scope": (span.instrumentation_scope.name, span.instrumentation_scope.version)
        if span.instrumentation_scope
        else None,
        "times": (span.start_time, span.end_time),
    }


def test_a_span_reaches_the_processors_as_the_sdks_own_would() -> None:
    provider, exporter = _provider()
    parent = span_context_of(CALLER)
    error = ValueError("no")

    sdk = provider.get_tracer("flux_test", "1.0").start_span(
        "work",
        context=trace.set_span_in_context(trace.NonRecordingSpan(parent)),
        kind=SpanKind.CONSUMER,
        attributes={"a": 1},
        start_time=10,
    )
    ours = SpanMaker(provider, "flux_test", "1.0").start(
        "work", parent, kind=SpanKind.CONSUMER, attributes={"a": 1}, start_time=10
    )
    for span in (sdk, ours):
        span.set_attributes({"b": "two"})
        span.add_event("mark", {"n": 3}, timestamp=11)
        span.record_exception(error, {"flux.task.attempt": 2}, timestamp=12)
        span.set_status(StatusCode.ERROR, "ValueError: no")
        span.end(end_time=20)

    made_by_sdk, made_here = exporter.get_finished_spans()
    assert _fields(made_here) == _fields(made_by_sdk)
    assert made_here.context is not None and made_here.context.span_id != parent.span_id


def test_a_child_is_in_its_parents_trace_and_follows_its_decision() -> None:
    provider, exporter = _provider()
    root = SpanMaker(provider, "flux_test").start("root", None)
    child = root.child("child", attributes={"k": "v"})
    grandchild = child.child("grandchild")
    for span in (grandchild, child, root):
        span.end()

    made = {s.name: s for s in exporter.get_finished_spans()}
    assert made["root"].parent is None
    assert made["child"].parent == root.context
    assert made["grandchild"].parent == child.context
    assert {s.context.trace_id for s in made.values() if s.context} == {root.context.trace_id}
    assert made["child"].attributes == {"k": "v"}


@pytest.mark.parametrize(
    ("sampler", "caller"),
    [
        (ALWAYS_OFF, None),
        (ParentBased(TraceIdRatioBased(0.0)), None),
        (None, UNSAMPLED_CALLER),  # the default: a parent left out leaves its children out
    ],
)
def test_what_the_sampler_leaves_out_records_nothing_and_is_never_exported(
    sampler: object, caller: str | None
) -> None:
    provider, exporter = _provider(**({} if sampler is None else {"sampler": sampler}))
    span = SpanMaker(provider, "flux_test").start("left out", span_context_of(caller))
    child = span.child("child")
    for each in (span, child):
        assert not each.is_recording()
        assert not each.context.trace_flags.sampled
        each.set_attributes({"a": 1})
        each.add_event("e")
        each.end()
    assert exporter.get_finished_spans() == ()
    if caller is not None:
        assert f"{span.context.trace_id:032x}" == caller[3:35]


def test_a_span_ends_once() -> None:
    provider, exporter = _provider()
    span = SpanMaker(provider, "flux_test").start("once", None)
    span.end()
    span.end()
    span.set_attributes({"late": True})
    assert len(exporter.get_finished_spans()) == 1
    assert "late" not in (exporter.get_finished_spans()[0].attributes or {})


def test_the_span_limits_of_the_environment_apply(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SPAN_EVENT_COUNT_LIMIT", "2")
    monkeypatch.setenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "4")
    provider, exporter = _provider()
    span = SpanMaker(provider, "flux_test").start("bounded", None, attributes={"s": "abcdefgh"})
    for n in range(5):
        span.add_event(f"e{n}", {"v": "123456"})
    span.end()
    (made,) = exporter.get_finished_spans()
    assert made.attributes == {"s": "abcd"}
    assert [(e.name, dict(e.attributes or {})) for e in made.events] == [
        ("e3", {"v": "1234"}),
        ("e4", {"v": "1234"}),
    ]


class _Asked(ParentBased):
    """A sampler that decides for itself (here as the default one would): a maker asks it
    for every span."""

    def should_sample(self, *args: Any, **kwargs: Any) -> Any:
        return super().should_sample(*args, **kwargs)


class _Described(ParentBased):
    """A sampler that keeps ParentBased's decision but describes itself otherwise."""

    def get_description(self) -> str:
        return "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler}"


SAMPLERS = {
    "default": ParentBased(ALWAYS_ON),
    "parentbased_always_off": ParentBased(ALWAYS_OFF),
    "parentbased_traceidratio": ParentBased(TraceIdRatioBased(0.5)),
    "always_on": ALWAYS_ON,
    "always_off": ALWAYS_OFF,
    "traceidratio": TraceIdRatioBased(0.5),
    "remote parents ignored": ParentBased(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON),
    "a subclass deciding for itself": _Asked(ALWAYS_ON),
    "a subclass describing itself": _Described(ALWAYS_ON, remote_parent_not_sampled=ALWAYS_ON),
    "parentbased_traceidratio (environment)": ParentBasedTraceIdRatio(0.5),
}
STATE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-"


@pytest.mark.parametrize("sampler", SAMPLERS.values(), ids=SAMPLERS.keys())
def test_where_the_sampler_is_not_asked_its_answer_is_the_same(sampler: object) -> None:
    """A maker skips the sampler where the SDK's own sampler classes are known to decide
    without looking (a new trace under always-on, a remote parent under parent-based): the
    spans are those asking it would have made, trace state included."""
    provider, _ = _provider(sampler=sampler)
    skipping = SpanMaker(provider, "flux_test")
    asking = SpanMaker(provider, "flux_test")
    asking.roots, asking.follows_remote = None, False
    parents: list[trace.SpanContext | None] = [None]
    for flags in ("01", "00"):
        remote = span_context_of(STATE + flags)
        assert remote is not None
        parents.append(remote)
        parents.append(
            trace.SpanContext(
                remote.trace_id,
                remote.span_id,
                is_remote=True,
                trace_flags=remote.trace_flags,
                trace_state=trace.TraceState([("vendor", "x")]),
            )
        )
        local = trace.SpanContext(remote.trace_id, remote.span_id, False, remote.trace_flags)
        parents.append(local)
    for parent in parents * 8:  # ratio samplers: several trace ids for a new trace
        ids = skipping.ids
        trace_id = parent.trace_id if parent else ids.generate_trace_id()
        for maker in (skipping, asking):
            maker.ids = _Fixed(trace_id)
        made = [m.start("s", parent, attributes={"a": 1}) for m in (skipping, asking)]
        skipping.ids = asking.ids = ids
        first, second = made
        assert first.context.trace_flags == second.context.trace_flags
        assert first.context.trace_state == second.context.trace_state
        assert first.is_recording() == second.is_recording()
        assert first.attributes == second.attributes
    if isinstance(sampler, _Asked | _Described) or sampler is SAMPLERS["traceidratio"]:
        assert skipping.roots is None and not skipping.follows_remote
    if isinstance(sampler, ParentBasedTraceIdRatio):
        assert skipping.follows_remote  # what OTEL_TRACES_SAMPLER makes is foreseen


def test_the_samplers_the_environment_makes_are_foreseen(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every parent-based sampler ``OTEL_TRACES_SAMPLER`` names follows a remote parent
    without being asked (the quiet segments of an unsampled trace depend on it)."""
    for name in ("parentbased_always_on", "parentbased_always_off", "parentbased_traceidratio"):
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", name)
        monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.1")
        maker = SpanMaker(TracerProvider(), "flux_test")
        assert maker.follows_remote, name


class _Fixed:
    """An id generator whose trace id is fixed, so that a ratio sampler decides alike."""

    def __init__(self, trace_id: int) -> None:
        self.trace_id = trace_id

    def generate_trace_id(self) -> int:
        return self.trace_id

    def generate_span_id(self) -> int:
        return 7

    def is_trace_id_random(self) -> bool:
        return True


def _batching(
    monkeypatch: pytest.MonkeyPatch, **constants: float
) -> tuple[TracerProvider, InMemorySpanExporter, SpanMaker]:
    """A maker on a provider whose processor batches (and exports when flushed), with
    ``constants`` of :mod:`flux.spans` set for the test."""
    from flux import spans
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    for name, value in constants.items():
        monkeypatch.setattr(spans, name, value)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    return provider, exporter, SpanMaker(provider, "flux_test")


def test_spans_go_to_processors_that_do_not_batch_as_they_end() -> None:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider, exporter = _provider()
    provider.add_span_processor(BatchSpanProcessor(InMemorySpanExporter()))  # and one that does
    maker = SpanMaker(provider, "flux_test")
    assert maker.ended is None
    maker.start("one", None).end()
    assert [s.name for s in exporter.get_finished_spans()] == ["one"]


def test_where_every_processor_batches_ended_spans_are_handed_over_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    provider, exporter, maker = _batching(monkeypatch, HAND_OVER_SPANS=3)
    for name in ("a", "b"):
        maker.start(name, span_context_of(CALLER), attributes={"n": name}).end(end_time=5)
    provider.force_flush()
    assert exporter.get_finished_spans() == ()  # held by the maker, not the processor
    maker.start("c", None).end()
    provider.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["a", "b", "c"]
    a = exporter.get_finished_spans()[0]
    assert (dict(a.attributes or {}), a.end_time, a.parent) == (
        {"n": "a"},
        5,
        span_context_of(CALLER),
    )
    maker.start("d", None).end()
    maker.hand_over()
    provider.force_flush()
    assert [s.name for s in exporter.get_finished_spans()][-1] == "d"


def test_held_spans_are_handed_over_within_about_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import time

    provider, exporter, maker = _batching(monkeypatch, HOLD_SECONDS=0.05)
    for round_ in range(2):  # the timer waits again once it has handed spans over
        maker.start(f"late {round_}", None).end()
        deadline = time.monotonic() + 5
        while len(exporter.get_finished_spans()) <= round_ and time.monotonic() < deadline:
            provider.force_flush()
            time.sleep(0.01)
    assert [s.name for s in exporter.get_finished_spans()] == ["late 0", "late 1"]


def test_held_spans_are_exported_when_the_process_exits(tmp_path: Any) -> None:
    """The makers' exit handler runs before the providers' shut the exporters down, also
    for a provider made after another maker (whose handler was registered before it)."""
    import subprocess
    import sys

    script = tmp_path / "exits.py"
    script.write_text(
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter\n"
        "from flux.spans import SpanMaker\n"
        "first = TracerProvider()\n"
        "first.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))\n"
        "SpanMaker(first, 'flux_first').start('first', None).end()\n"
        "provider = TracerProvider()\n"
        "provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))\n"
        "SpanMaker(provider, 'flux_test').start('held at exit', None).end()\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert '"name": "first"' in done.stdout
    assert '"name": "held at exit"' in done.stdout
