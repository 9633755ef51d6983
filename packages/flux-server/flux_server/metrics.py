"""Prometheus metrics of a server process (``GET /metrics``): every metric's name and help
text, the facts writes record for them, and the exposition.

**Counted where the state changes.** A store operation that starts an execution, finishes
one, claims one or fires a schedule tick records a fact on its transaction
(``tx.record(Started(...))``); :class:`~flux_server.db.Database` hands the facts of a
committed transaction to :meth:`ServerMetrics.count`, never those of one that rolled back. A
worker's retried checkpoint finds the execution already finished and records nothing, and the
fast path (:mod:`flux_server.fastpath`) counts like the routes it shadows, since both call the
same store. Each replica counts the writes it committed: sum counters across replicas.

**Read at scrape time.** The gauges (executions per state, workers alive, their slots) come
from the database, read at most once per :data:`GAUGE_CACHE_SECONDS`, so every replica
answers the same.

Labels are bounded: workflow names, states, outcomes; never an execution, task or worker id.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from flux.domain import ExecutionState
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

__all__ = [
    "GAUGE_CACHE_SECONDS",
    "METRICS",
    "Claimed",
    "Fact",
    "Finished",
    "FireOutcome",
    "Fired",
    "Gauges",
    "MetricInfo",
    "ServerMetrics",
    "Started",
    "finished",
]

GAUGE_CACHE_SECONDS = 5.0
"""How long the gauges read from the database serve scrapes before they are read again."""


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """A metric as ``GET /metrics`` shows it (``docs/operations.md`` lists the same)."""

    name: str
    """Its name in the exposition (a counter's ends in ``_total``)."""
    kind: str
    labels: tuple[str, ...]
    help: str
    buckets: tuple[float, ...] = ()
    """A histogram's upper bounds in seconds (``+Inf`` is added)."""

    @property
    def base(self) -> str:
        """The name ``prometheus_client`` takes: a counter's without ``_total``."""
        return self.name.removesuffix("_total")


_SECONDS_TO_DAYS = (
    *(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    *(300.0, 900.0, 3600.0, 4 * 3600.0, 86400.0, 7 * 86400.0),
)
_MILLISECONDS_TO_MINUTES = (
    *(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
    *(1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0),
)

STARTED = MetricInfo(
    "flux_executions_started_total",
    "counter",
    ("workflow",),
    "Executions created (by a run request, a rerun or a schedule tick).",
)
FINISHED = MetricInfo(
    "flux_executions_finished_total",
    "counter",
    ("workflow", "state"),
    "Executions that reached a final state (completed, failed, cancelled).",
)
DURATION = MetricInfo(
    "flux_execution_duration_seconds",
    "histogram",
    ("workflow", "state"),
    "Seconds from an execution's creation to its final state, pauses included.",
    _SECONDS_TO_DAYS,
)
DISPATCH = MetricInfo(
    "flux_dispatch_latency_seconds",
    "histogram",
    (),
    "Seconds an execution waited in the queue (since created, resumed or released) until a "
    "worker claimed it.",
    _MILLISECONDS_TO_MINUTES,
)
FIRES = MetricInfo(
    "flux_schedule_fires_total",
    "counter",
    ("outcome",),
    "Schedule ticks taken: fired (an execution started), skipped (catch-up policy or too many "
    "unfinished executions), failed (the workflow is missing or the schedule cannot fire).",
)
EXECUTIONS = MetricInfo(
    "flux_executions",
    "gauge",
    ("state",),
    "Executions in each state now, read from the database (the same on every replica).",
)
WORKERS = MetricInfo(
    "flux_workers_connected",
    "gauge",
    (),
    "Workers alive now (a heartbeat within server.heartbeat_timeout), from the database.",
)
SLOTS = MetricInfo(
    "flux_worker_slots",
    "gauge",
    ("state",),
    "Execution slots of the workers alive: used (held executions) and available (capacity "
    "left), from the database.",
)

METRICS: tuple[MetricInfo, ...] = (
    STARTED,
    FINISHED,
    DURATION,
    DISPATCH,
    FIRES,
    EXECUTIONS,
    WORKERS,
    SLOTS,
)
"""Every metric of the server, in the order the docs list them."""


# -- facts: what a committed write counts ---------------------------------------------------------


class FireOutcome(StrEnum):
    """What became of a schedule tick (the ``outcome`` label of ``flux_schedule_fires_total``)."""

    FIRED = "fired"
    SKIPPED = "skipped"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Started:
    """An execution of ``workflow`` was created."""

    workflow: str


@dataclass(frozen=True, slots=True)
class Finished:
    """An execution of ``workflow`` reached the final ``state``, ``seconds`` after its
    creation."""

    workflow: str
    state: ExecutionState
    seconds: float


@dataclass(frozen=True, slots=True)
class Claimed:
    """A worker claimed an execution that had waited in the queue ``seconds``."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Fired:
    """A schedule tick was taken, with ``outcome``."""

    outcome: FireOutcome


Fact = Started | Finished | Claimed | Fired
"""What a write records with ``tx.record(...)``."""


def finished(workflow: str, state: ExecutionState, created_at: datetime, now: datetime) -> Finished:
    """The fact of an execution created at ``created_at`` that ended ``state`` at ``now``."""
    return Finished(workflow, state, max(0.0, (now - created_at).total_seconds()))


# -- the registry ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Gauges:
    """What the gauges show, read from the database at one moment."""

    executions: dict[ExecutionState, int] = field(default_factory=dict)
    workers: int = 0
    slots_used: int = 0
    slots_available: int = 0


class ServerMetrics:
    """The metrics of one server process, in a registry of its own (several apps in one
    process, as in tests, do not mix their counts).

    Args:
        read_gauges: reads :class:`Gauges` from the database.
    """

    def __init__(self, read_gauges: Callable[[], Awaitable[Gauges]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._started = _counter(STARTED, self.registry)
        self._finished = _counter(FINISHED, self.registry)
        self._duration = _histogram(DURATION, self.registry)
        self._dispatch = _histogram(DISPATCH, self.registry)
        self._fires = _counter(FIRES, self.registry)
        for outcome in FireOutcome:  # every outcome shown from the start, at 0
            self._fires.labels(outcome.value)
        # Each series' child, by its labels: ``labels()`` costs several times the count itself.
        self._started_by: dict[str, Any] = {}
        self._finished_by: dict[tuple[str, ExecutionState], tuple[Any, Any]] = {}
        self._read_gauges = read_gauges
        self._gauges = Gauges()
        self._read_at: float | None = None
        self._reading = asyncio.Lock()
        self.registry.register(_GaugeCollector(lambda: self._gauges))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    def count(self, facts: Sequence[Fact]) -> None:
        """Count the facts of a committed transaction (:attr:`Database.counter`)."""
        for fact in facts:
            if type(fact) is Started:
                started = self._started_by.get(fact.workflow)
                if started is None:
                    started = self._started_by[fact.workflow] = self._started.labels(fact.workflow)
                started.inc()
            elif type(fact) is Claimed:
                self._dispatch.observe(fact.seconds)
            elif type(fact) is Finished:
                key = (fact.workflow, fact.state)
                children = self._finished_by.get(key)
                if children is None:
                    labels = (fact.workflow, fact.state.value.lower())
                    children = (self._finished.labels(*labels), self._duration.labels(*labels))
                    self._finished_by[key] = children
                children[0].inc()
                children[1].observe(fact.seconds)
            elif type(fact) is Fired:
                self._fires.labels(fact.outcome.value).inc()

    async def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """What ``GET /metrics`` answers and its media type: the format the ``Accept`` header
        asks for (OpenMetrics, or Prometheus text by default). The gauges are read again when
        older than :data:`GAUGE_CACHE_SECONDS` (concurrent scrapes share one read)."""
        async with self._reading:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= GAUGE_CACHE_SECONDS:
                self._gauges = await self._read_gauges()
                self._read_at = time.monotonic()
        encode, media_type = choose_encoder(accept)
        return encode(self.registry), media_type


class _GaugeCollector(Collector):
    """The database-backed gauges, from the last :class:`Gauges` read."""

    def __init__(self, current: Callable[[], Gauges]) -> None:
        self._current = current

    def collect(self) -> Iterator[Metric]:
        gauges = self._current()
        executions = GaugeMetricFamily(EXECUTIONS.name, EXECUTIONS.help, labels=EXECUTIONS.labels)
        for state in ExecutionState:  # every state, 0 included: series do not come and go
            executions.add_metric([state.value.lower()], gauges.executions.get(state, 0))
        yield executions
        yield GaugeMetricFamily(WORKERS.name, WORKERS.help, value=gauges.workers)
        slots = GaugeMetricFamily(SLOTS.name, SLOTS.help, labels=SLOTS.labels)
        slots.add_metric(["used"], gauges.slots_used)
        slots.add_metric(["available"], gauges.slots_available)
        yield slots


def _counter(info: MetricInfo, registry: CollectorRegistry) -> Counter:
    return Counter(info.base, info.help, info.labels, registry=registry)


def _histogram(info: MetricInfo, registry: CollectorRegistry) -> Histogram:
    return Histogram(info.name, info.help, info.labels, registry=registry, buckets=info.buckets)
