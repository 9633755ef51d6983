"""Each claimed segment of an execution as spans, when the worker traces.

A segment is one claim's run: the first, a resume, a recovery after a crash. It is one span,
``flux.workflow.run <workflow>``, a child of the trace context the claim carries (the
execution's ``flux.execution.create`` span, stored by the server), so every segment of an
execution, on whichever worker and however much later, is in the same trace. Under it, one
``flux.task.run <task>`` span per task run in the segment, nested as the tasks were.

Task spans are derived from the events the run records, with the events' own times, as they
go to the outbox (:meth:`TracedSegment.observe`), in batches (at the segment's end, or about
a second after the events): the engine needs no hook, and runs in a child process
(subprocess isolation) are traced the same way from the events they send. A replayed task
(finished in an earlier segment) records nothing, so it makes no span; the segment's
``flux.replay`` event counts them. A segment of a trace the sampler leaves out
(:class:`Segment`) makes nothing.

Attributes never carry inputs, outputs or secrets: names, ids, attempts, outcomes, states;
a failure's exception (type, message and, in-process, its traceback) is recorded on the span
it ended. Spans the task code makes itself are children of the segment's span.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import re
import time
import weakref
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from flux.domain import WORKFLOW_EVENTS, EventType, ExecutionEvent
from flux.errors import FluxError
from flux.observability import span_context_of, tracer_provider

if TYPE_CHECKING:
    from flux._runtime import Checkpointer
    from flux.context import ExecutionContext
    from flux.protocol.claims import ClaimResponse
    from flux.protocol.events import EventRecord
    from flux.spans import OpenSpan
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import SpanContext

    Event = ExecutionEvent | EventRecord
    """What a segment observes: domain events (in-process runs) or records (a child's)."""

__all__ = ["SEGMENT_SPAN", "TASK_SPAN", "Segment", "TracedSegment", "WorkerTracer", "worker_tracer"]

log = logging.getLogger("flux.worker")

SEGMENT_SPAN = "flux.workflow.run"
TASK_SPAN = "flux.task.run"

_E = EventType
_TASK_OUTCOMES = {
    _E.TASK_COMPLETED: "completed",
    _E.TASK_FALLBACK_COMPLETED: "fallback",
    _E.TASK_FAILED: "failed",
    _E.TASK_CANCELLED: "cancelled",
    _E.TASK_PAUSED: "paused",
}
"""Events that end a task's run in a segment, and the outcome each one records."""
_FINISHED = frozenset({_E.TASK_COMPLETED, _E.TASK_FALLBACK_COMPLETED, _E.TASK_FAILED})
"""A task with one of these in the history is replayed, not run."""
_TASK_MARKS = {
    _E.TASK_RETRY_STARTED: "flux.task.retry",
    _E.TASK_FALLBACK_STARTED: "flux.task.fallback",
    _E.TASK_ROLLBACK_STARTED: "flux.task.rollback",
}
"""Events that become span events of their task's span."""
_TASK_FAILURES = frozenset({_E.TASK_RETRY_FAILED, _E.TASK_FALLBACK_FAILED, _E.TASK_ROLLBACK_FAILED})
"""Events whose exception is recorded on their task's span (which goes on)."""
_SEGMENT_ENDS = {
    _E.WORKFLOW_COMPLETED: "COMPLETED",
    _E.WORKFLOW_FAILED: "FAILED",
    _E.WORKFLOW_PAUSED: "PAUSED",
    _E.WORKFLOW_CANCELLED: "CANCELLED",
}
HOLD_NS = 1_000_000_000
"""How long a segment holds the events it observes before it makes their spans
(nanoseconds): checked when the next events come, and by the worker's timer every
``HOLD_NS``, so spans are made within twice that."""
HOLD_EVENTS = 1024
"""How many events a segment holds, at most, before it makes their spans."""
FINISH_SEGMENTS = 32
"""How many ended segments the worker holds, at most, before it makes their spans."""
_BRANCH = re.compile(r"(\[\d+\])+$")
"""The branch suffixes of a scope (``<task>[i]``, a branch of ``parallel`` in that task)."""


def worker_tracer(provider: TracerProvider | None, worker_name: str) -> WorkerTracer | None:
    """The worker's tracer: with ``provider``, else the process's from the ``OTEL_*``
    environment (:mod:`flux.observability`); ``None`` when the worker does not trace."""
    provider = provider or tracer_provider("flux-worker", make_global=True)
    return None if provider is None else WorkerTracer(provider, worker_name)


class WorkerTracer:
    """Opens a :class:`Segment` per claim a worker runs."""

    def __init__(self, provider: TracerProvider, worker_name: str) -> None:
        from flux.spans import SpanMaker
        from opentelemetry import context, trace

        # Held here: an import statement in each segment's code costs more than its spans'
        # bookkeeping, and OpenTelemetry is imported only once a worker traces.
        self.trace = trace
        self.context = context
        self.spans = SpanMaker(provider, "flux_worker")
        self.worker_name = worker_name
        self.holding: set[TracedSegment] = set()
        """Segments holding events whose spans are not made yet."""
        self.ended: list[tuple[TracedSegment, int]] = []
        """Segments that ended (and when) whose spans are not made yet."""
        self._ticker: asyncio.Task[None] | None = None
        # After the span maker's exit handler, so before it: segments' spans, then their
        # hand-over (a weak reference: a tracer that is gone has nothing left to make).
        atexit.register(_flush_at_exit, weakref.ref(self))

    def flush(self) -> None:
        """Hand every span of the segments that ended to the span processors."""
        self.finish()
        self.spans.hand_over()

    def finish(self) -> None:
        """Make the spans of every segment that ended."""
        ended, self.ended = self.ended, []
        for segment, at in ended:
            try:
                segment.finish(at)
            except Exception:  # a span is never worth a run: said, and left out
                log.exception("cannot make the spans of execution %s", segment.execution_id)

    def ending(self, segment: TracedSegment, at: int) -> None:
        """``segment`` ended at ``at``: its spans are made now, or, where the span processors
        batch anyway, with those of the next segments to end, or within about
        :data:`HOLD_NS`."""
        if self.spans.ended is None:
            segment.finish(at)
            return
        self.ended.append((segment, at))
        if len(self.ended) >= FINISH_SEGMENTS:
            self.finish()
        else:
            self._tick_soon()

    def hold(self, segment: TracedSegment) -> None:
        """``segment`` started holding events: they are made into spans within about
        :data:`HOLD_NS`, even if no other event comes before (a long task after short ones)."""
        self.holding.add(segment)
        self._tick_soon()

    def _tick_soon(self) -> None:
        if self._ticker is None or self._ticker.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop: spans are made with the next events, or at the end
                return
            self._ticker = loop.create_task(self._tick(), name="flux-spans")

    async def _tick(self) -> None:
        while self.holding or self.ended:
            await asyncio.sleep(HOLD_NS / 1e9)
            self.finish()
            due = time.monotonic_ns() - HOLD_NS
            for segment in [s for s in self.holding if s.held_since <= due]:
                try:
                    segment.make_spans()
                except Exception:  # a span is never worth a run: said, and left out
                    log.exception("cannot make the spans of execution %s", segment.execution_id)

    def segment(self, claim: ClaimResponse) -> Segment:
        """The claim's segment: a :class:`TracedSegment`, or, when the sampler is known to
        leave it out (the execution's trace is unsampled and the sampler follows a remote
        parent), a plain :class:`Segment`, which makes nothing: most segments, where one
        trace in N is sampled."""
        traceparent = claim.traceparent
        parent = span_context_of(traceparent)
        decided = self.spans.decided(parent)
        if traceparent and parent is not None and decided is False:
            return Segment(self, traceparent, parent)
        return TracedSegment(self, claim, parent, decided)


def _flush_at_exit(ref: weakref.ref[WorkerTracer]) -> None:
    tracer = ref()
    if tracer is not None:
        tracer.flush()


class _Task:
    """A task's run in this segment. Its span is made only once it is needed (the task
    ended, or a task it called needs a parent): most tasks end in the batch that starts
    them, and a task's span is then made and ended at once."""

    __slots__ = ("attempt", "name", "notes", "parent", "source_id", "span", "start")

    def __init__(
        self, name: str, source_id: str, start: int, attempt: int, parent: _Task | None
    ) -> None:
        self.name = name
        self.source_id = source_id
        self.start = start
        self.attempt = attempt
        self.parent = parent
        self.span: OpenSpan | None = None
        self.notes: list[tuple[Event, int]] = []
        """Retries, fallbacks, rollbacks and their failures (with the attempt then), for
        the span's events."""


class Segment:
    """A claimed segment whose spans the sampler leaves out, as known from the execution's
    trace context before anything is made (an unsampled trace, under a parent-based
    sampler): nothing is recorded. The trace is the current context while it runs, so that
    spans the task code makes are left out too, as children of an unsampled parent."""

    recording = False

    def __init__(self, tracer: WorkerTracer, traceparent: str, parent: SpanContext) -> None:
        self.api = tracer
        self.trace_id = f"{parent.trace_id:032x}"
        self.traceparent = traceparent
        trace = tracer.trace
        self._token = tracer.context.attach(
            trace.set_span_in_context(trace.NonRecordingSpan(parent))
        )

    def checkpointer(self, inner: Checkpointer) -> Checkpointer:
        """The run's checkpointer: ``inner``, or one that shows this segment every event
        saved when it makes spans of them."""
        return inner

    def observe(self, events: Sequence[Event]) -> None:
        """The events a run recorded (in order, each batch once): nothing to make here."""

    def end(self) -> None:
        """End the segment now: the trace stops being the current context."""
        self.api.context.detach(self._token)


class TracedSegment(Segment):
    """The spans of one claimed segment: its own, open from the claim until :meth:`end`,
    and one per task run in it, made from the events :meth:`observe` is shown. (Its
    sampler may still leave them out, when it has to be asked.)"""

    def __init__(
        self,
        tracer: WorkerTracer,
        claim: ClaimResponse,
        parent: SpanContext | None,
        decided: bool | None,
    ) -> None:
        """``decided``: what :meth:`flux.spans.SpanMaker.decided` says of ``parent``."""
        trace = tracer.trace
        self.api = tracer
        self.start = time.time_ns()
        self.execution_id = claim.execution_id
        self.unfinished: dict[str, list[int]] = {}
        """Tasks the history shows started and not finished: run again in this segment
        (from their start time and attempt so far)."""
        attributes = {
            "flux.workflow.name": claim.workflow_name,
            "flux.workflow.version": claim.workflow_version,
            "flux.execution.id": claim.execution_id,
            "flux.execution.segment": claim.generation,
            "flux.worker.name": tracer.worker_name,
        }
        self._claim: ClaimResponse | None = claim
        """The claim, until its history is read: with the segment's first spans, unless the
        sampler must be asked (it is shown every attribute known at the start)."""
        replayed = 0 if decided is not None else self._read_history(attributes)
        self.span = tracer.spans.start(
            f"{SEGMENT_SPAN} {claim.workflow_name}",
            parent,
            kind=trace.SpanKind.CONSUMER,
            start_time=self.start,
            attributes=attributes,
        )
        self.recording = self.span.is_recording()
        """Whether this segment's spans are kept (sampled): if not, no task span is made."""
        if self.recording:
            self._replayed(replayed)
        self.traceparent = traceparent = self.span.traceparent()
        """The segment's context: what a child process's spans (and logs) continue."""
        self.trace_id = traceparent[3:35]
        """The trace this segment is in, for log lines."""
        self.tasks: dict[str, _Task] = {}
        self.state: str | None = None
        self.held: list[Event] = []
        """Events observed whose spans are not made yet."""
        self.held_since = 0
        self._token = tracer.context.attach(self.span.as_current())

    def _read_history(self, attributes: dict[str, Any]) -> int:
        """What the claim's history says about this segment, once: whether it resumes the
        execution (into ``attributes``), which tasks it runs again (:attr:`unfinished`),
        and how many it replays (returned)."""
        claim, self._claim = self._claim, None
        if claim is None:
            return 0
        resumed = False
        replayed: set[str] = set()
        started: dict[str, list[int]] = {}
        for kind, source_id, at in _history(claim):  # nothing, for a first segment
            if kind in WORKFLOW_EVENTS:
                resumed = resumed or kind is _E.WORKFLOW_STARTED
            elif kind is _E.TASK_STARTED:
                started[source_id] = [at, 1]
            elif kind is _E.TASK_RETRY_STARTED and source_id in started:
                started[source_id][1] += 1
            elif kind in _FINISHED:
                replayed.add(source_id)
        self.unfinished = {k: v for k, v in started.items() if k not in replayed}
        attributes["flux.execution.resumed"] = resumed
        return len(replayed)

    def _history_onto_span(self) -> None:
        """:meth:`_read_history`, onto the segment's span (when its spans are made)."""
        if self._claim is not None:
            attributes: dict[str, Any] = {}
            self._replayed(self._read_history(attributes))
            self.span.set_attributes(attributes)

    def _replayed(self, count: int) -> None:
        if count:
            self.span.add_event("flux.replay", {"flux.replay.tasks": count}, timestamp=self.start)

    def checkpointer(self, inner: Checkpointer) -> Checkpointer:
        return _Observed(inner, self) if self.recording else inner

    def observe(self, events: Sequence[Event]) -> None:
        """Keep the events a run recorded: their spans are made when the segment ends, or
        once events have waited about a second (:data:`HOLD_NS`), all of them in one go.
        (Made one batch at a time, in between the run's own work, the same spans cost
        several times as much CPU: each would meet the code and data it needs gone from
        the processor's caches; docs/benchmarks.md, "Tracing".)"""
        if not self.recording:
            return
        held = self.held
        if not held:
            self.held_since = time.monotonic_ns()
            self.api.hold(self)
        held.extend(events)
        if len(held) >= HOLD_EVENTS or time.monotonic_ns() - self.held_since >= HOLD_NS:
            self.make_spans()

    def make_spans(self) -> None:
        """Spans of the events held so far, in their order."""
        events, self.held = self.held, []
        self.api.holding.discard(self)
        self._history_onto_span()
        for event in events:
            kind = event.type
            if kind in WORKFLOW_EVENTS:
                state = _SEGMENT_ENDS.get(kind)
                if state is not None:
                    self.state = state
                    if kind is _E.WORKFLOW_FAILED:
                        _record_failure(self.span, event)
                continue
            task = self.tasks.get(event.source_id) or self._open(event)
            outcome = _TASK_OUTCOMES.get(kind)
            if outcome is not None:
                del self.tasks[event.source_id]
                span = self._end(task, outcome)
                if kind is _E.TASK_FAILED:
                    _record_failure(span, event)
                span.end(end_time=_ns(event))
                continue
            if kind is _E.TASK_RETRY_STARTED:
                task.attempt += 1
            if kind in _TASK_MARKS or kind in _TASK_FAILURES:
                if task.span is None:
                    task.notes.append((event, task.attempt))
                else:
                    _note(task.span, event, task.attempt)

    def _open(self, event: Event) -> _Task:
        """The task ``event`` belongs to, from now on: it started at the event (its start),
        or, for a task an earlier segment started, when this segment started."""
        source_id = event.source_id
        if event.type is _E.TASK_STARTED:
            start, attempt = _ns(event), 1
        else:
            start, attempt = self.unfinished.get(source_id, (self.start, 1))
            start = max(start, self.start)
        scope = event.scope
        parent = self.tasks.get(_BRANCH.sub("", scope) if scope.endswith("]") else scope)
        task = self.tasks[source_id] = _Task(event.name, source_id, start, attempt, parent)
        return task

    def _started(self, task: _Task, attributes: dict[str, Any] | None = None) -> OpenSpan:
        """``task``'s span with ``attributes``, made now if it has not been (its parent's
        first)."""
        if task.span is None:
            parent = self.span if task.parent is None else self._started(task.parent)
            task.span = span = parent.child(
                f"{TASK_SPAN} {task.name}",
                start_time=task.start,
                attributes={"flux.task.id": task.source_id, **(attributes or {})},
            )
            for event, attempt in task.notes:
                _note(span, event, attempt)
            task.notes.clear()
        elif attributes:
            task.span.set_attributes(attributes)
        return task.span

    def _end(self, task: _Task, outcome: str) -> OpenSpan:
        return self._started(
            task, {"flux.task.attempt": task.attempt, "flux.task.outcome": outcome}
        )

    def end(self) -> None:
        """End the segment now (its spans are made a little later, with other segments'):
        tasks still open were interrupted (the run paused or was cancelled around them, or
        the worker let the execution go)."""
        self.api.context.detach(self._token)
        self.api.ending(self, time.time_ns())

    def finish(self, now: int) -> None:
        """Make the spans of the segment, which ended at ``now``."""
        self.api.holding.discard(self)
        if self.held:
            self.make_spans()
        elif self.recording:
            self._history_onto_span()
        for task in self.tasks.values():
            self._end(task, "interrupted").end(end_time=now)
        self.tasks.clear()
        state = self.state or "INTERRUPTED"
        self.span.set_attributes({"flux.execution.state": state})
        if state == "FAILED":
            self.span.set_status(self.api.trace.StatusCode.ERROR, "the execution failed")
        self.span.end(end_time=now)


class _Observed:
    """A run's checkpointer that shows its segment each batch of events once it is saved."""

    __slots__ = ("finish", "flush", "inner", "segment")

    def __init__(self, inner: Checkpointer, segment: Segment) -> None:
        self.inner = inner
        self.segment = segment
        self.flush = inner.flush  # the inner ones themselves: no coroutine of their own
        self.finish = inner.finish

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        self.inner.save(ctx, events)
        self.segment.observe(events)


def _history(claim: ClaimResponse) -> Iterable[tuple[EventType, str, int]]:
    """(type, source id, time in ns) of each event of the claim's history, read from the
    columns when the claim came with them undecoded (values are never unpickled here)."""
    columns = claim.history_columns
    if columns is not None:
        return zip(
            columns.types, columns.source_ids, (int(t * 1e9) for t in columns.times), strict=False
        )
    try:
        events = claim.history()
    except FluxError:  # unreadable: the run fails with the reason, and nothing replays
        return ()
    return ((e.type, e.source_id, _ns(e)) for e in events) if events else ()


def _ns(event: Event) -> int:
    return int(event.time.timestamp() * 1e9)


def _note(span: OpenSpan, event: Event, attempt: int) -> None:
    """A retry, fallback or rollback (started, or failed) of the span's task."""
    attributes = {"flux.task.attempt": attempt}
    mark = _TASK_MARKS.get(event.type)
    if mark is None:
        _record_exception(span, event, attributes)
    else:
        span.add_event(mark, attributes, timestamp=_ns(event))


def _record_failure(span: OpenSpan, event: Event) -> None:
    from opentelemetry.trace import StatusCode

    _record_exception(span, event, None)
    span.set_status(StatusCode.ERROR, _describe(event))


def _record_exception(span: OpenSpan, event: Event, attributes: dict[str, Any] | None) -> None:
    """The exception ``event`` carries, as the span's ``exception`` event: the exception
    itself in-process (with its traceback), its type and message from a child's record."""
    value = event.value
    at = _ns(event)
    if isinstance(value, BaseException):
        span.record_exception(value, attributes, timestamp=at)
        return
    view = getattr(event, "view", None)
    if isinstance(view, dict):
        span.add_event(
            "exception",
            {
                "exception.type": str(view.get("type", "")),
                "exception.message": str(view.get("message", "")),
                **(attributes or {}),
            },
            timestamp=at,
        )


def _describe(event: Event) -> str:
    value = event.value
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    view = getattr(event, "view", None)
    if isinstance(view, dict):
        return f"{view.get('type', '')}: {view.get('message', '')}"
    return event.type.value
