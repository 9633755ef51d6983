"""flux.otlp: its encoder writes the same OTLP message as OpenTelemetry's, and its exporter
sends it where the SDK's would."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from flux.otlp import OTLPExporter, encode
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanContext, SpanKind, StatusCode, TraceFlags, TraceState

REMOTE = SpanContext(
    trace_id=0x4BF92F3577B34DA6A3CE929D0E0E4736,
    span_id=0x00F067AA0BA902B7,
    is_remote=True,
    trace_flags=TraceFlags(1),
    trace_state=TraceState([("vendor", "a1"), ("other", "b2")]),
)


def _spans(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    """Spans of every shape the encoder meets: kinds, parents local and remote, attribute
    values of each type, events, links, statuses, limits that drop."""
    tracer = provider.get_tracer("flux_test", "1.2.3", schema_url="https://schema/1")
    other = provider.get_tracer("other_scope")
    remote = trace.set_span_in_context(trace.NonRecordingSpan(REMOTE))
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:
        root.set_attributes(
            {
                "s": "text é",
                "long": "x" * 300,
                "b": True,
                "f": False,
                "i": 7,
                "negative": -3,
                "big": 2**62,
                "d": 1.5,
                "strings": ["a", "b"],
                "ints": [1, -2],
                "empty": [],
            }
        )
        root.add_event("mark", {"n": 1, "flag": True})
        root.add_event("bare")
        with tracer.start_as_current_span("child", links=[Link(REMOTE, {"why": "batch"})]):
            pass
        try:
            raise ValueError("it broke")
        except ValueError as error:
            root.record_exception(error, {"flux.task.attempt": 2})
            root.set_status(StatusCode.ERROR, "ValueError: it broke")
    for kind in SpanKind:
        other.start_span(f"kind {kind.name}", context=remote, kind=kind).end()
    ok = other.start_span("ok")
    ok.set_status(StatusCode.OK)
    ok.end()


def _recorded(**provider_options: Any) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(**provider_options)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _spans(provider, exporter)
    return list(exporter.get_finished_spans())


def _same(spans: list[ReadableSpan]) -> None:
    ours = ExportTraceServiceRequest.FromString(encode(spans))
    assert ours == encode_spans(spans)


def test_the_encoder_writes_the_sdks_message() -> None:
    spans = _recorded(resource=Resource.create({"service.name": "flux-test", "n": 3}))
    assert len(spans) == 2 + len(SpanKind) + 1
    _same(spans)
    _same(spans)  # again, with every attribute's bytes known from the first time
    _same(spans[:1])


def test_limits_that_drop_attributes_events_and_links_are_counted_alike() -> None:
    limits = SpanLimits(max_span_attributes=3, max_events=1, max_links=0, max_event_attributes=1)
    spans = _recorded(span_limits=limits)
    assert any(s.dropped_attributes and s.dropped_events for s in spans)
    _same(spans)


def test_spans_of_several_resources_are_grouped_by_resource_then_scope() -> None:
    first = _recorded(resource=Resource.create({"service.name": "one"}, schema_url="https://r"))
    second = _recorded(resource=Resource.create({"service.name": "two"}))
    mixed = [span for pair in zip(first, second, strict=True) for span in pair]
    request = ExportTraceServiceRequest.FromString(encode(mixed))
    assert [len(r.scope_spans) for r in request.resource_spans] == [2, 2]
    assert sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans) == len(mixed)
    _same(first + second)


def test_a_value_the_protocol_cannot_carry_is_left_out_of_the_span() -> None:
    span = _recorded()[0]
    odd = ReadableSpan(
        "odd",
        context=span.context,
        attributes={"kept": 1, "object": object()},
        resource=span.resource,
    )
    (sent,) = ExportTraceServiceRequest.FromString(encode([odd])).resource_spans
    assert [a.key for a in sent.scope_spans[0].spans[0].attributes] == ["kept"]


@pytest.fixture
def receiver() -> Iterator[list[tuple[str, bytes]]]:
    """An OTLP/HTTP receiver on loopback that keeps each request's path and body."""
    received: list[tuple[str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        received.append((f"http://127.0.0.1:{server.server_port}", b""))
        yield received
    finally:
        server.shutdown()
        server.server_close()


def test_the_exporter_sends_the_encoded_spans_to_the_configured_endpoint(
    receiver: list[tuple[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, _ = receiver.pop()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    spans = _recorded()
    exporter = OTLPExporter()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    ((path, body),) = receiver
    assert path == "/v1/traces"
    assert ExportTraceServiceRequest.FromString(body) == encode_spans(spans)
    exporter.shutdown()
    assert exporter.export(spans) is SpanExportResult.FAILURE  # as the SDK's, once shut down
    assert len(receiver) == 1


def test_spans_flux_makes_are_encoded_from_their_fields_to_the_same_message() -> None:
    from flux.spans import FinishedSpan, SpanMaker

    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "flux-test"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    maker = SpanMaker(provider, "flux_test", "1.0")
    segment = maker.start("segment", REMOTE, kind=SpanKind.CONSUMER, attributes={"n": 1})
    segment.add_event("flux.replay", {"flux.replay.tasks": 3}, timestamp=5)
    task = segment.child("task", start_time=6, attributes={"flux.task.id": "t" * 40})
    try:
        raise ValueError("it broke")
    except ValueError as error:
        task.record_exception(error, {"flux.task.attempt": 2}, timestamp=7)
    task.set_status(StatusCode.ERROR, "ValueError: it broke")
    task.end(end_time=8)
    segment.set_attributes({"flux.execution.state": "FAILED", "ok": False, "d": 0.5})
    segment.end()
    maker.start("root", None, kind=SpanKind.PRODUCER, attributes={"s": "é" * 10}).end()
    spans = list(exporter.get_finished_spans())
    assert [type(s) for s in spans] == [FinishedSpan] * 3
    _same(spans)
    _same(spans)  # again, with every attribute's bytes known from the first time
