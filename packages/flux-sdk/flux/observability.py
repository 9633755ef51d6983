"""Traces for the server and the worker: whether the ``OTEL_*`` environment asks for them, the
one tracer provider of a process, and trace contexts as W3C ``traceparent`` strings.

OpenTelemetry is an optional extra (``flux-server[otel]``, ``flux-worker[otel]``). Nothing
here imports it until tracing is asked for, and ``import flux`` does not import this module,
so a process without tracing never loads it.

Tracing is on when, and only when:

- ``OTEL_SDK_DISABLED`` is not ``true``, and
- ``OTEL_TRACES_EXPORTER`` names an exporter other than ``none`` (``otlp``: OTLP over
  HTTP/protobuf; ``console``: spans printed to stdout), or, when it is unset,
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (then
  ``otlp``).

Unlike OpenTelemetry's own default (``otlp`` when nothing is set), nothing set means off, so
a process pays nothing unless it is asked to trace. OTLP is OpenTelemetry's exporter with
Flux's encoder (:mod:`flux.otlp`). The exporter itself reads the other
standard variables (endpoint, headers, timeout, compression); the SDK reads the sampler
(``OTEL_TRACES_SAMPLER``) and the resource (``OTEL_SERVICE_NAME``,
``OTEL_RESOURCE_ATTRIBUTES``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanContext

__all__ = [
    "TRACEPARENT",
    "context_of",
    "parse_traceparent",
    "requested_exporters",
    "span_context_of",
    "trace_id_of",
    "tracer_provider",
    "tracing_requested",
]

log = logging.getLogger("flux.observability")

TRACEPARENT = "traceparent"
"""The W3C Trace Context header (and the name the trace context is stored and sent under)."""

_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
_EXPORTERS = frozenset({"otlp", "console"})
_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")

_lock = threading.Lock()
_providers: dict[str, TracerProvider | None] = {}
"""The provider made for this process (one key at most: the first service name asked)."""


def parse_traceparent(value: str | bytes | None) -> str | None:
    """``value`` as a valid ``traceparent`` of version 00 (lower case), else ``None``.

    A later version's extra fields are dropped, as the W3C specification says a reader of
    version 00 does; an all-zero trace or span id, or version ``ff``, is invalid.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    match = _TRACEPARENT.fullmatch(value)  # as this module writes them: no copy to make
    exact = match is not None
    if not exact:
        match = _TRACEPARENT.fullmatch(value.strip().lower())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    if exact and version == "00":
        return value
    return f"00-{trace_id}-{span_id}-{flags}"


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id (32 hex digits) of a valid ``traceparent``."""
    parsed = parse_traceparent(traceparent)
    return None if parsed is None else parsed[3:35]


def requested_exporters(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The span exporters the environment asks for (empty: tracing is off); see the module
    docstring for the rule. Names other than ``otlp``, ``console`` and ``none`` are ignored
    with a warning."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return frozenset()
    named = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if not named:
        endpoint = any(env.get(key, "").strip() for key in _ENDPOINTS)
        return frozenset({"otlp"}) if endpoint else frozenset()
    names = {n.strip() for n in named.split(",") if n.strip()} - {"none"}
    unknown = names - _EXPORTERS
    if unknown:
        log.warning(
            "OTEL_TRACES_EXPORTER names %s, which Flux does not ship; use otlp or console",
            ", ".join(sorted(unknown)),
        )
    return frozenset(names & _EXPORTERS)


def tracing_requested(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the ``OTEL_*`` environment turns tracing on (see the module docstring)."""
    return bool(requested_exporters(environ))


def tracer_provider(service_name: str, *, make_global: bool) -> TracerProvider | None:
    """This process's tracer provider, made on the first call when the environment asks for
    tracing (``None`` otherwise, or when OpenTelemetry is not installed: a warning says which
    extra to install).

    A provider the application already installed as OpenTelemetry's global one (for
    instance by ``opentelemetry-instrument``) is used as it is. Otherwise one is made, whose
    resource has ``service.name`` ``service_name`` unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` name one; with ``make_global`` it becomes the global
    provider, so that spans task code makes go to the same place. (The server does not make
    its own global: FastAPI traces every request by itself once there is one.) Spans are
    exported in batches, and flushed when the process exits.
    """
    exporters = requested_exporters()
    if not exporters:
        return None
    with _lock:
        if not _providers:
            _providers[service_name] = _make_provider(service_name, exporters, make_global)
        return next(iter(_providers.values()))


def _make_provider(
    service_name: str, exporters: frozenset[str], make_global: bool
) -> TracerProvider | None:
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
    except ImportError:
        log.warning(
            "the OTEL_* environment asks for traces, but OpenTelemetry is not installed: "
            "install flux-server[otel] or flux-worker[otel]; running without traces"
        )
        return None
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current
    attributes: dict[str, Any] = {}
    if not os.environ.get("OTEL_SERVICE_NAME") and "service.name=" not in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    ):
        attributes[SERVICE_NAME] = service_name
    provider = TracerProvider(resource=Resource.create(attributes))
    for name in sorted(exporters):
        exporter: SpanExporter
        if name == "otlp":
            from flux.otlp import OTLPExporter

            _check_protocol()
            exporter = OTLPExporter()
        else:
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    if make_global:
        trace.set_tracer_provider(provider)
    return provider


def _check_protocol() -> None:
    for key in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        protocol = os.environ.get(key, "").strip().lower()
        if protocol:
            if protocol != "http/protobuf":
                log.warning("%s=%s: Flux exports over http/protobuf only", key, protocol)
            return


def span_context_of(traceparent: str | None) -> SpanContext | None:
    """The remote span context ``traceparent`` names; ``None`` for a missing or invalid one."""
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    trace = _trace or _load_trace()
    return trace.SpanContext(
        int(parsed[3:35], 16),
        int(parsed[36:52], 16),
        True,
        trace.TraceFlags(int(parsed[53:55], 16)),
    )


_trace: Any = None
"""``opentelemetry.trace``, once a trace context has been read (an import statement in
:func:`span_context_of` costs more than the rest of it, once per segment a worker runs)."""


def _load_trace() -> Any:
    global _trace
    from opentelemetry import trace

    _trace = trace
    return trace


def context_of(traceparent: str | None) -> Context | None:
    """An OpenTelemetry context whose current span is the remote span ``traceparent`` names
    (a parent for new spans); ``None`` for a missing or invalid one."""
    span_context = span_context_of(traceparent)
    if span_context is None:
        return None
    trace = _trace or _load_trace()
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))
