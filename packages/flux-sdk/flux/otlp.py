"""Spans as an OTLP/HTTP request body, and the exporter that sends them.

OpenTelemetry's own OTLP encoder builds a protobuf object per span, per attribute and per
value, then copies them into the request, and hashes the span's resource for each span to
group them: about as much CPU per span as the engine spends running a no-op task.
:func:`encode` writes the same ``ExportTraceServiceRequest`` straight to protobuf's wire
format (a few microseconds per span, an attribute's bytes reused once seen) and
:class:`OTLPExporter` is the SDK's OTLP/HTTP exporter with this encoder in place of its own:
its configuration (``OTEL_EXPORTER_OTLP_*``: endpoint, headers, timeout, compression,
certificates), its HTTP session and its retries are the SDK's. A test keeps the two
encoders' messages equal; the figures are in docs/decisions.md.

Imported only when a process traces (OpenTelemetry is an optional extra).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind

from flux.spans import FinishedSpan

__all__ = ["OTLPExporter", "encode"]

log = logging.getLogger("flux.otlp")

_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200
"""``SpanFlags``: whether the parent is remote is known; it is."""
_MAX_CACHED = 4096
_SCALARS = frozenset({str, int, bool, float})


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64: two's complement, ten bytes
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: int, data: bytes) -> bytes:
    """A length-delimited field (``tag`` is the field's number and wire type together)."""
    size = len(data)
    if size < 0x80:
        return bytes((tag, size)) + data
    return bytes((tag,)) + _varint(size) + data


def _value(value: Any) -> bytes:
    """An ``AnyValue``'s content."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(0x0A, value.encode())
    if isinstance(value, int):
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _double(value)
    if isinstance(value, bytes):
        return _field(0x3A, value)
    if isinstance(value, Sequence):
        return _field(0x2A, b"".join(_field(0x0A, _value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(0x32, b"".join(_key_value(0x0A, str(k), v) for k, v in value.items()))
    raise TypeError(f"an attribute value of type {type(value).__name__}")


_encoded: dict[Any, bytes] = {}
"""Bytes already encoded: field names, span names, and attributes of small scalar values
(names, outcomes and workflow names repeat from span to span). Forgotten all at once when
there are too many, so that values seen once, such as ids, do not keep out those that
repeat."""


def _memo(key: Any, make: Callable[..., bytes], *args: Any) -> bytes:
    """``make(*args)``, encoded once for ``key``."""
    found = _encoded.get(key)
    if found is None:
        if len(_encoded) >= _MAX_CACHED:
            _encoded.clear()
        found = _encoded[key] = make(*args)
    return found


def _text(tag: int, text: str) -> bytes:
    return _field(tag, text.encode())


def _key_value(tag: int, key: str, value: Any) -> bytes:
    name = _memo(key, _text, 0x0A, key)
    return _field(tag, name + _field(0x12, _value(value)))


def _attributes(tag: int, attributes: Mapping[str, Any] | None) -> list[bytes]:
    """``attributes`` as repeated ``KeyValue`` fields of field ``tag``."""
    if not attributes:
        return []
    out = []
    for key, value in attributes.items():
        kind = value.__class__
        if kind in _SCALARS and (kind is not str or len(value) <= 32):
            out.append(_memo((tag, key, kind, value), _key_value, tag, key, value))
            continue
        try:
            out.append(_key_value(tag, key, value))
        except TypeError as error:  # as the SDK's encoder: left out, and said
            log.error("cannot encode attribute %s: %s", key, error)
    return out


_ids = struct.Struct(">HQQHQ").pack
"""A span's trace id (two halves) and span id, each after its field's tag and length."""
_parent_id = struct.Struct(">HQ").pack
_times = struct.Struct("<BQBQ").pack
_KINDS = {kind: bytes((0x30, kind.value + 1)) for kind in SpanKind}
"""The protocol's ``SpanKind`` counts UNSPECIFIED first."""
_NO_STATUS = b"\x7a\x00"
_FLAGS = b"\x85\x01" + _fixed32(_HAS_IS_REMOTE)
_FLAGS_REMOTE = b"\x85\x01" + _fixed32(_HAS_IS_REMOTE | _IS_REMOTE)
_LOW = (1 << 64) - 1


_NOTHING_DROPPED = (0, 0, 0)


def _span(span: ReadableSpan) -> bytes:
    """One ``Span`` field: a span Flux made is read from its fields at once, any other
    through the SDK's properties (with its links and dropped counts, which Flux's spans
    never have)."""
    fields: tuple[Any, ...]
    links: Sequence[Any]
    if type(span) is FinishedSpan:
        fields, links, dropped = span.fields, (), _NOTHING_DROPPED
    else:
        context = span.context
        assert context is not None  # a span the SDK's pipeline ends always has one
        fields = (
            (context.trace_id, context.span_id, context.trace_flags),
            context.trace_state,
            span.parent,
            span.name,
            span.kind,
            span.start_time or 0,
            span.end_time or 0,
            span.attributes,
            span.events,
            span.status,
        )
        links = span.links
        dropped = (span.dropped_attributes, span.dropped_events, span.dropped_links)
    (
        (trace_id, span_id, _),
        trace_state,
        parent,
        name,
        kind,
        start,
        end,
        attributes,
        events,
        status,
    ) = fields
    dropped_attributes, dropped_events, dropped_links = dropped
    parts = [_ids(0x0A10, trace_id >> 64, trace_id & _LOW, 0x1208, span_id)]
    if trace_state:
        parts.append(_field(0x1A, ",".join(f"{k}={v}" for k, v in trace_state.items()).encode()))
    if parent is not None:
        parts.append(_parent_id(0x2208, parent.span_id))
    parts += (_memo((0x2A, name), _text, 0x2A, name), _KINDS[kind], _times(0x39, start, 0x41, end))
    parts += _attributes(0x4A, attributes)
    if dropped_attributes:
        parts += (b"\x50", _varint(dropped_attributes))
    for event in events:
        parts.append(_event(event))
    if dropped_events:
        parts += (b"\x60", _varint(dropped_events))
    for link in links:
        parts.append(_link(link))
    if dropped_links:
        parts += (b"\x70", _varint(dropped_links))
    parts.append(_status(status))
    parts.append(_FLAGS_REMOTE if parent is not None and parent.is_remote else _FLAGS)
    return _field(0x12, b"".join(parts))


def _event(event: Any) -> bytes:
    body = [b"\x09", _fixed64(event.timestamp), _field(0x12, event.name.encode())]
    body += _attributes(0x1A, event.attributes)
    if event.dropped_attributes:
        body += (b"\x20", _varint(event.dropped_attributes))
    return _field(0x5A, b"".join(body))


def _link(link: Any) -> bytes:
    linked = link.context
    body = [_ids(0x0A10, linked.trace_id >> 64, linked.trace_id & _LOW, 0x1208, linked.span_id)]
    body += _attributes(0x22, link.attributes)
    if link.dropped_attributes:
        body += (b"\x28", _varint(link.dropped_attributes))
    body.append(b"\x35" + _fixed32(_HAS_IS_REMOTE | (_IS_REMOTE if linked.is_remote else 0)))
    return _field(0x6A, b"".join(body))


def _status(status: Any) -> bytes:
    code = status.status_code.value
    if code or status.description:
        message = b"" if not status.description else _field(0x12, status.description.encode())
        return _field(0x7A, message + (b"\x18" + _varint(code) if code else b""))
    return _NO_STATUS


def _scope_spans(scope: Any, spans: list[bytes]) -> bytes:
    """A ``ScopeSpans`` field: ``scope`` (an ``InstrumentationScope`` or ``None``) and its
    encoded spans."""
    if scope is None:
        return _field(0x12, b"\x0a\x00" + b"".join(spans))
    head = [_field(0x0A, scope.name.encode())]
    if scope.version:
        head.append(_field(0x12, scope.version.encode()))
    head += _attributes(0x1A, scope.attributes)
    schema = _field(0x1A, scope.schema_url.encode()) if scope.schema_url else b""
    return _field(0x12, _field(0x0A, b"".join(head)) + b"".join(spans) + schema)


def encode(spans: Sequence[ReadableSpan]) -> bytes:
    """The ``ExportTraceServiceRequest`` of ``spans`` in protobuf's wire format: the same
    message as OpenTelemetry's encoder makes, spans grouped by resource and then by
    instrumentation scope (by identity: the SDK's spans share their tracer's objects)."""
    groups: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope
        group = groups.get(id(resource))
        if group is None:
            group = groups[id(resource)] = (resource, {})
        of_scope = group[1].get(id(scope))
        if of_scope is None:
            of_scope = group[1][id(scope)] = (scope, [])
        of_scope[1].append(_span(span))
    out = []
    for resource, scopes in groups.values():
        body = [_field(0x0A, b"".join(_attributes(0x0A, resource.attributes)))]
        body += (_scope_spans(scope, encoded) for scope, encoded in scopes.values())
        if resource.schema_url:
            body.append(_field(0x1A, resource.schema_url.encode()))
        out.append(_field(0x0A, b"".join(body)))
    return b"".join(out)


class OTLPExporter(OTLPSpanExporter):
    """OpenTelemetry's OTLP/HTTP span exporter, encoding with :func:`encode`.

    Everything but the encoding is the SDK's: this reaches its HTTP client, which it holds
    as ``_client`` (checked at construction: an SDK without it exports with its own encoder,
    as it would without Flux)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        client = getattr(self, "_client", None)
        self._send = getattr(client, "export", None)
        if self._send is None:
            log.warning("this OpenTelemetry SDK exports spans with its own (slower) encoder")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._send is None or getattr(self, "_shutdown", False):
            return super().export(spans)
        try:
            body = encode(spans)
        except Exception:  # never the caller's problem: the batch is lost, and said
            log.exception("cannot encode %d spans for OTLP", len(spans))
            return SpanExportResult.FAILURE
        result = self._send(body)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
