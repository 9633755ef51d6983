"""Prometheus metrics of a worker, on a port of its own when asked for (``flux-worker
--metrics-port N``, ``[flux.workers] metrics_port``; off by default): tasks by outcome, task
durations and checkpoint latency. Every metric's name and help text is here.

Counted from what the worker already sees, with no hook in the SDK's engine:

- the events the server acknowledged in a checkpoint answer: a task's start, its end
  (completed, by its fallback too; failed; cancelled) and each retry. Events are counted
  once the server took them, so a checkpoint sent again after a lost answer counts once, and
  the events of a run abandoned before they were stored count nothing;
- the history a claim brings: each task recorded as finished returns its result from the log
  when the run replays (``replayed``) instead of running again.

A task's duration runs from its start event to its end event (retries and their delays
included); one that started on another worker counts its end but no duration here.
``import flux_worker`` does not load this module (nor ``prometheus_client``) unless metrics
are served.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from flux._runtime import TERMINAL_TASK_EVENTS
from flux.domain import WORKFLOW_EVENTS, EventType
from flux.errors import UsageError
from flux.protocol.claims import CheckpointBatchResponse, CheckpointItem, ClaimResponse
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from flux_worker.outbox import CheckpointChannel

__all__ = ["METRICS", "MetricInfo", "WorkerMetrics"]


class MetricInfo(NamedTuple):
    """A metric as the worker's exposition shows it (``docs/operations.md`` lists the same)."""

    name: str
    """Its name in the exposition (a counter's ends in ``_total``)."""
    kind: str
    labels: tuple[str, ...]
    help: str


TASKS = MetricInfo(
    "flux_tasks_total",
    "counter",
    ("outcome",),
    "Tasks by outcome: completed (by the task or its fallback), failed, cancelled, retried "
    "(each attempt after a failure), replayed (a recorded result returned on replay instead "
    "of running again).",
)
TASK_DURATION = MetricInfo(
    "flux_task_duration_seconds",
    "histogram",
    ("workflow", "task", "outcome"),
    "Seconds from a task's start to its end (completed, failed, cancelled), retries included.",
)
CHECKPOINT_DURATION = MetricInfo(
    "flux_checkpoint_duration_seconds",
    "histogram",
    (),
    "Seconds a checkpoint request took, from sending it to the server's acknowledgement (one "
    "request carries the events of every execution ready to send).",
)
METRICS = (TASKS, TASK_DURATION, CHECKPOINT_DURATION)
"""Every metric of the worker, in the order the docs list them."""

MAX_TASK_SERIES = 1000
"""Distinct (workflow, task) pairs with a duration series of their own; later ones share
``task="other"`` (tasks named per call must not grow the exposition without bound)."""
_TRACKED_EXECUTIONS = 10_000
"""Executions whose running tasks' start times are kept (the oldest are dropped beyond it:
runs abandoned before their end is recorded)."""

_OUTCOMES = {
    EventType.TASK_COMPLETED: "completed",
    EventType.TASK_FALLBACK_COMPLETED: "completed",
    EventType.TASK_FAILED: "failed",
    EventType.TASK_CANCELLED: "cancelled",
}
_DURATION_BUCKETS = (
    *(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    *(30.0, 60.0, 300.0, 900.0, 3600.0),
)
_CHECKPOINT_BUCKETS = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


class WorkerMetrics:
    """The metrics of one worker, in a registry of its own.

    Args:
        workflow_of: the workflow name of an execution running here (``None`` if unknown).
    """

    def __init__(self, workflow_of: Callable[[str], str | None]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self._tasks = Counter(
            TASKS.name.removesuffix("_total"), TASKS.help, TASKS.labels, registry=registry
        )
        # Every outcome shown from the start, at 0; each series' child kept by its labels
        # (``labels()`` costs several times the count itself).
        self._outcomes = {
            outcome: self._tasks.labels(outcome)
            for outcome in ("completed", "failed", "cancelled", "retried", "replayed")
        }
        self._durations_by: dict[tuple[str, str, str], Any] = {}
        self._durations = _histogram(TASK_DURATION, registry, _DURATION_BUCKETS)
        self._checkpoints = _histogram(CHECKPOINT_DURATION, registry, _CHECKPOINT_BUCKETS)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._workflow_of = workflow_of
        self._started: dict[str, dict[str, datetime | float]] = {}
        """Per execution: when each of its tasks running here started."""
        self._task_labels: set[tuple[str, str]] = set()
        self._server: Any = None

    # -- serving --------------------------------------------------------------------------------

    def serve(self, host: str, port: int) -> int:
        """Serve ``GET /metrics`` on ``host:port`` in a thread; the port bound (``0`` picks one).

        Raises:
            UsageError: the address cannot be bound.
        """
        try:
            self._server, _ = start_http_server(port, host, self.registry)
        except OSError as exc:
            raise UsageError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}; choose another "
                "--metrics-port (workers.metrics_port)"
            ) from None
        return int(self._server.server_address[1])

    def close(self) -> None:
        """Stop serving (if serving)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    # -- counting -------------------------------------------------------------------------------

    def claimed(self, claim: ClaimResponse) -> None:
        """Count the tasks the claim's history has finished: the run replays their results."""
        try:
            done = {s for t, s in _history(claim) if t in TERMINAL_TASK_EVENTS}
        except Exception:  # an unreadable history fails the run, with its own message
            return
        if done:
            self._outcomes["replayed"].inc(len(done))

    def checkpoints_through(
        self, channel: Callable[[], CheckpointChannel]
    ) -> Callable[[], CheckpointChannel]:
        """``channel`` (a worker's current checkpoint channel), its requests timed and their
        acknowledged events counted."""
        timed = _CountingChannel(self, channel)
        return lambda: timed

    def acknowledged(
        self, items: Sequence[CheckpointItem], response: CheckpointBatchResponse, seconds: float
    ) -> None:
        """Count a checkpoint request the server answered in ``seconds``: the events of each
        item it stored."""
        self._checkpoints.observe(seconds)
        for item, result in zip(items, response.results, strict=False):
            if result.error is None:
                self._events(item.execution_id, item.events)

    def _events(self, execution_id: str, records: Iterable[Any]) -> None:
        started = self._started.get(execution_id)
        for record in records:
            kind = record.type
            if kind == EventType.TASK_STARTED:
                if started is None:
                    started = self._track(execution_id)
                started[record.source_id] = record.time
            elif kind == EventType.TASK_RETRY_STARTED:
                self._outcomes["retried"].inc()
            elif kind in _OUTCOMES:
                outcome = _OUTCOMES[kind]
                self._outcomes[outcome].inc()
                began = None if started is None else started.pop(record.source_id, None)
                if began is not None:
                    seconds = max(0.0, _seconds(record.time) - _seconds(began))
                    self._duration(execution_id, record.name, outcome).observe(seconds)
            elif kind in WORKFLOW_EVENTS and kind != EventType.WORKFLOW_STARTED:
                # The run ended or paused here: what it left started (a pause) is not ours.
                self._started.pop(execution_id, None)
                started = None

    def _track(self, execution_id: str) -> dict[str, datetime | float]:
        if len(self._started) >= _TRACKED_EXECUTIONS:
            del self._started[next(iter(self._started))]
        started: dict[str, datetime | float] = {}
        self._started[execution_id] = started
        return started

    def _duration(self, execution_id: str, task: str, outcome: str) -> Any:
        """The duration series of ``task`` of the execution's workflow ending ``outcome``."""
        key = (self._workflow_of(execution_id) or "", task, outcome)
        series = self._durations_by.get(key)
        if series is None:
            workflow = key[0]
            if (workflow, task) not in self._task_labels:
                if len(self._task_labels) >= MAX_TASK_SERIES:
                    task = "other"
                else:
                    self._task_labels.add((workflow, task))
            series = self._durations.labels(workflow, task, outcome)
            if task != "other":  # "other" stands for tasks that get no entry of their own
                self._durations_by[key] = series
        return series


class _CountingChannel:
    """A checkpoint channel that times each request and counts what it stored."""

    def __init__(self, metrics: WorkerMetrics, channel: Callable[[], CheckpointChannel]) -> None:
        self._metrics = metrics
        self._channel = channel

    async def checkpoints(self, items: Sequence[CheckpointItem]) -> CheckpointBatchResponse:
        began = time.perf_counter()
        response = await self._channel().checkpoints(items)
        self._metrics.acknowledged(items, response, time.perf_counter() - began)
        return response


def _history(claim: ClaimResponse) -> Iterable[tuple[EventType | str, str]]:
    """(type, source id) of each event of the claim's history, however it came (decoded
    events are used as they are: the worker's own decode, not a second one)."""
    columns = claim.history_columns
    if columns is not None:
        return zip(columns.types, columns.source_ids, strict=True)
    if claim.events:
        return ((e.type, e.source_id) for e in claim.events)
    return ((e.type, e.source_id) for e in claim.history())


def _histogram(
    info: MetricInfo, registry: CollectorRegistry, buckets: tuple[float, ...]
) -> Histogram:
    return Histogram(info.name, info.help, info.labels, registry=registry, buckets=buckets)


def _seconds(value: datetime | float) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)
