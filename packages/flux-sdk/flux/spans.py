"""The server's and the worker's own spans, made without the SDK's span objects.

OpenTelemetry's ``Tracer.start_span`` and ``Span.end`` cost as much per span as the engine
spends running a no-op task (a lock, bounded containers, a context, a callback per
processor, per attribute call). Flux's own spans need none of that: each is made once,
from facts known at its start and at its end. :class:`SpanMaker` therefore keeps a span as
plain fields (:class:`OpenSpan`) and, when it ends, hands one finished ``ReadableSpan`` to
the tracer's span processor, ``SpanProcessor.on_end`` being the SDK's own interface between
spans and exporters. Everything else is the tracer's: its sampler decides (with the
parent's context, as for any span; where one of the SDK's own sampler classes decides
from the parent's flag alone, as a parent-based one does under a remote parent, that
answer is taken without the call), its id generator names the span, its resource and
processors (batching, exporters) are those of the application's spans, and
``OTEL_SPAN_*_LIMIT`` bound events and attribute values as they do there. Spans the task
code makes go through the SDK as usual, as children of these.

One difference from the SDK's spans: processors are not shown the span when it starts
(``on_start``), only when it ends. The figures are in docs/decisions.md.

Imported only when a process traces (OpenTelemetry is an optional extra).
"""

from __future__ import annotations

import atexit
import threading
import time
import traceback
import weakref
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor, Tracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, StaticSampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["HAND_OVER_SPANS", "HOLD_SECONDS", "FinishedSpan", "OpenSpan", "SpanMaker"]

HAND_OVER_SPANS = 128
"""How many ended spans a maker holds, at most, before it hands them to the processors."""
HOLD_SECONDS = 1.0
"""How long, at most, an ended span waits to be handed to the processors."""

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSAMPLED = TraceFlags(TraceFlags.DEFAULT)
_RANDOM = getattr(TraceFlags, "RANDOM_TRACE_ID", 0)
"""W3C Trace Context level 2's flag (an SDK that knows it sets it as it does here)."""
_UNSET = Status(StatusCode.UNSET)
_NO_PARENT = Context()
"""What the sampler is shown for the first span of a trace (not the current context)."""
_STATIC = {"AlwaysOnSampler": True, "AlwaysOffSampler": False}
"""The SDK's samplers that decide the same for every span, by their descriptions."""
_FOLLOWS_REMOTE = "remoteParentSampled:AlwaysOnSampler,remoteParentNotSampled:AlwaysOffSampler"


class SpanMaker:
    """Makes spans for one instrumentation scope of a tracer provider."""

    def __init__(self, provider: TracerProvider, name: str, version: str | None = None) -> None:
        tracer = provider.get_tracer(name, version)
        if not isinstance(tracer, Tracer):  # the SDK's: its sampler, ids and processors
            raise TypeError(f"{type(provider).__name__} does not make the SDK's tracers")
        self.sampler = tracer.sampler
        self.roots, self.follows_remote = _foreseen(tracer.sampler)
        """What the sampler decides for every new trace (``None``: unknown), and whether it
        follows a remote parent's decision. Where its answer is known, it is not asked (a
        test compares them): asking costs a context and a chain of calls per span."""
        self.ids = tracer.id_generator
        self.resource = tracer.resource
        self.processor = tracer.span_processor
        self.scope = InstrumentationScope(name, version)
        limits = SpanLimits()
        self.max_events = limits.max_events
        self.max_length = limits.max_attribute_length
        self.ended: deque[tuple[OpenSpan, dict[str, Any], int]] | None = (
            deque() if _batches(self.processor) else None
        )
        """Ended spans not handed to the processors yet, when every processor batches
        anyway (``None``: each goes at its end): they are handed over together
        (:meth:`hand_over`), which costs a fraction of one at a time."""
        self._due = threading.Event()
        self._timer: threading.Thread | None = None
        if self.ended is not None:
            # Last of the exit handlers so far, so it runs before theirs, this provider's
            # shutdown included (a later maker moves it again).
            atexit.unregister(_hand_over_all)
            atexit.register(_hand_over_all)

    def hand_over(self) -> None:
        """Hand every ended span held so far to the processors (any thread may call it)."""
        ended = self.ended
        if ended is None:
            return
        processor = self.processor
        while True:
            try:
                span, attributes, end_time = ended.popleft()
            except IndexError:
                break
            processor.on_end(span.finished(attributes, end_time))
        if not ended:
            _holding.discard(self)

    def _held(self) -> None:
        """A span was held while none was: hand it over within :data:`HOLD_SECONDS`."""
        _holding.add(self)
        if self._timer is None:
            self._timer = threading.Thread(
                target=_hand_over_later, args=(weakref.ref(self),), name="flux-spans", daemon=True
            )
            self._timer.start()
        self._due.set()

    def decided(self, parent: SpanContext | None) -> bool | None:
        """Whether the sampler keeps a span under ``parent`` (a valid context, or ``None``
        for a new trace), where that is known without asking it; else ``None``."""
        if parent is None:
            return self.roots
        if self.follows_remote and parent.is_remote:
            return parent.trace_flags.sampled
        return None

    def start(
        self,
        name: str,
        parent: SpanContext | None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        start_time: int | None = None,
        attributes: dict[str, Any] | None = None,
    ) -> OpenSpan:
        """A span that starts at ``start_time`` (ns; now by default), a child of ``parent``
        (a valid context, local or remote) or the first of a new trace."""
        if parent is not None and not parent.is_valid:
            parent = None
        decided = self.decided(parent)
        if parent is None:
            trace_id = self.ids.generate_trace_id()
            random = self.ids.is_trace_id_random()
            trace_state = None
        else:
            trace_id = parent.trace_id
            random = bool(parent.trace_flags & _RANDOM)
            trace_state = parent.trace_state
        if decided is not None:
            sampled = decided
            kept = dict(attributes or {}) if sampled else None
        else:
            context = (
                _NO_PARENT
                if parent is None
                else trace.set_span_in_context(trace.NonRecordingSpan(parent))
            )
            decision = self.sampler.should_sample(context, trace_id, name, kind, attributes)
            sampled, trace_state = decision.decision.is_sampled(), decision.trace_state
            kept = dict(decision.attributes or {}) if decision.decision.is_recording() else None
        flags = _SAMPLED if sampled else _UNSAMPLED
        if random and _RANDOM:
            flags = TraceFlags(flags | _RANDOM)
        span_id = self.ids.generate_span_id()
        return OpenSpan(
            self,
            name,
            SpanContext(trace_id, span_id, False, flags, trace_state),
            parent,
            kind,
            time.time_ns() if start_time is None else start_time,
            kept,
            (trace_id, span_id, flags),
        )


class OpenSpan:
    """A span until it ends: its context is fixed (children can name it as their parent),
    its attributes, events and status may still change. A span the sampler drops records
    nothing and is never exported; nor are its children."""

    __slots__ = (
        "attributes",
        "context",
        "events",
        "ids",
        "kind",
        "maker",
        "name",
        "parent",
        "recording",
        "start_time",
        "status",
    )

    def __init__(
        self,
        maker: SpanMaker,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        start_time: int,
        attributes: dict[str, Any] | None,
        ids: tuple[int, int, TraceFlags],
    ) -> None:
        self.maker = maker
        self.ids = ids
        """The context's trace id, span id and flags (read without its properties)."""
        self.name = name
        self.context = context
        self.parent = parent
        self.kind = kind
        self.start_time = start_time
        self.recording = attributes is not None
        """Whether the sampler kept the span (a span left out records nothing)."""
        self.attributes = attributes
        """``None`` when the span does not record, or has ended."""
        self.events: list[Event] = []
        self.status = _UNSET

    def is_recording(self) -> bool:
        return self.attributes is not None

    def child(
        self, name: str, *, start_time: int | None = None, attributes: dict[str, Any] | None = None
    ) -> OpenSpan:
        """A span under this one, kept when this one is: its sampler is not asked again, as
        a parent-based sampler (the SDK's default) would follow the parent's decision."""
        context = self.context
        trace_id, _, flags = self.ids
        span_id = self.maker.ids.generate_span_id()
        return OpenSpan(
            self.maker,
            name,
            SpanContext(trace_id, span_id, False, flags, context.trace_state),
            context,
            SpanKind.INTERNAL,
            time.time_ns() if start_time is None else start_time,
            (attributes or {}) if self.recording else None,
            (trace_id, span_id, flags),
        )

    def traceparent(self) -> str:
        """The span's context as a W3C ``traceparent``."""
        trace_id, span_id, flags = self.ids
        return f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"

    def as_current(self) -> Context:
        """A context whose current span is this one (to parent spans the SDK makes)."""
        return trace.set_span_in_context(trace.NonRecordingSpan(self.context))

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self.attributes is not None:
            self.attributes.update(attributes)

    def add_event(
        self, name: str, attributes: dict[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self.attributes is not None:
            at = time.time_ns() if timestamp is None else timestamp
            self.events.append(Event(name, self._bounded(attributes), at))

    def record_exception(
        self,
        error: BaseException,
        attributes: dict[str, Any] | None = None,
        timestamp: int | None = None,
    ) -> None:
        """``error`` as the span's ``exception`` event, as the SDK records one."""
        kind = type(error)
        qualified = kind.__qualname__
        if kind.__module__ and kind.__module__ != "builtins":
            qualified = f"{kind.__module__}.{qualified}"
        described = {
            "exception.type": qualified,
            "exception.message": str(error),
            "exception.stacktrace": "".join(traceback.format_exception(error)),
            "exception.escaped": "False",
            **(attributes or {}),
        }
        self.add_event("exception", described, timestamp)

    def set_status(self, code: StatusCode, description: str | None = None) -> None:
        if self.attributes is not None:
            self.status = Status(code, description if code is StatusCode.ERROR else None)

    def end(self, end_time: int | None = None) -> None:
        """The span as it is now goes to the span processor (once: a span ends once), now or,
        where every processor batches, with the maker's next :meth:`SpanMaker.hand_over`."""
        attributes, self.attributes = self.attributes, None
        if attributes is None:
            return
        if end_time is None:
            end_time = time.time_ns()
        maker = self.maker
        ended = maker.ended
        if ended is None:
            maker.processor.on_end(self.finished(attributes, end_time))
            return
        ended.append((self, attributes, end_time))
        if len(ended) >= HAND_OVER_SPANS:
            maker.hand_over()
        elif len(ended) == 1:
            maker._held()

    def finished(self, attributes: dict[str, Any], end_time: int) -> FinishedSpan:
        """The span as the processors take it."""
        maker = self.maker
        events = self.events
        if maker.max_events is not None and len(events) > maker.max_events:
            events = events[len(events) - maker.max_events :]  # as the SDK's: the latest
        attributes = self._bounded(attributes)
        span = FinishedSpan(
            self.name,
            context=self.context,
            parent=self.parent,
            resource=maker.resource,
            attributes=attributes,
            events=events,
            kind=self.kind,
            status=self.status,
            start_time=self.start_time,
            end_time=end_time,
            instrumentation_scope=maker.scope,
        )
        span.fields = (
            self.ids,
            self.context.trace_state,
            self.parent,
            self.name,
            self.kind,
            self.start_time,
            end_time,
            attributes,
            events,
            self.status,
        )
        return span

    def _bounded(self, attributes: dict[str, Any] | None) -> dict[str, Any]:
        """``attributes`` with string values cut to ``OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT``."""
        limit = self.maker.max_length
        if not attributes or limit is None:
            return attributes or {}
        return {k: v[:limit] if isinstance(v, str) else v for k, v in attributes.items()}


class FinishedSpan(ReadableSpan):
    """A span :class:`SpanMaker` made, as the processors take it: the SDK's ``ReadableSpan``,
    whose fields :mod:`flux.otlp` also reads at once from :attr:`fields` (no property, copy
    or type check per field; nothing is dropped from them, no span has links)."""

    fields: tuple[
        tuple[int, int, TraceFlags],
        Any,
        SpanContext | None,
        str,
        SpanKind,
        int,
        int,
        dict[str, Any],
        list[Event],
        Status,
    ]
    """(trace id, span id, flags), trace state, parent, name, kind, start and end times,
    attributes, events, status."""


def _foreseen(sampler: Sampler) -> tuple[bool | None, bool]:
    """What ``sampler`` decides, where that is known without asking it: for the first span
    of a trace (keep, drop, or ``None``: ask), and for a child of a remote parent (``True``:
    as the parent decided, ``False``: ask). Known for the SDK's own static and parent-based
    samplers, and classes that keep both their decision and their description (which names
    the delegates) as the SDK wrote them, such as ``ParentBasedTraceIdRatio``: together,
    every sampler ``OTEL_TRACES_SAMPLER`` makes but ``traceidratio``."""
    kind = type(sampler)
    described = sampler.get_description()
    if _as_written(kind, StaticSampler) and described in _STATIC:
        # Decides the same for every span: a remote parent is followed only if it agrees.
        return _STATIC[described], False
    if _as_written(kind, ParentBased):
        root = described.removeprefix("ParentBased{root:").split(",", 1)[0]
        return _STATIC.get(root), _FOLLOWS_REMOTE in described
    return None, False


def _as_written(kind: type[Sampler], sdk: type[Sampler]) -> bool:
    return (
        issubclass(kind, sdk)
        and kind.should_sample is sdk.should_sample
        and kind.get_description is sdk.get_description
    )


def _batches(processor: SpanProcessor) -> bool:
    """Whether every processor of ``processor`` (the provider's, which calls each of its
    own in turn) batches spans before they are exported."""
    processors = getattr(processor, "_span_processors", (processor,))
    return bool(processors) and all(isinstance(p, BatchSpanProcessor) for p in processors)


def _hand_over_later(ref: weakref.ref[SpanMaker]) -> None:
    """A maker's timer: hands its spans over :data:`HOLD_SECONDS` after one was held."""
    while True:
        maker = ref()
        if maker is None:
            return
        due = maker._due
        del maker
        if not due.wait(HOLD_SECONDS * 60):
            continue
        due.clear()
        time.sleep(HOLD_SECONDS)
        maker = ref()
        if maker is None:
            return
        maker.hand_over()
        del maker


_holding: set[SpanMaker] = set()
"""Makers holding ended spans (kept alive until they hand them over, even if their owner
dropped them): all are handed over when the process exits, before the providers shut down
(their exit handlers were registered before this one's)."""


def _hand_over_all() -> None:
    for maker in list(_holding):
        maker.hand_over()
