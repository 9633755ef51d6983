"""The worker's metrics (:mod:`flux_worker.metrics`), counted from the checkpoints the server
acknowledged through the real sender and channel (in-process server): each event once, even
when a request is sent again after its answer was lost; nothing for a refused one; replays
from a claim's history; bounded task labels."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from flux.domain import EventType, ExecutionEvent, ExecutionState, utcnow
from flux.errors import ApiError
from flux.protocol import (
    CheckpointBatchResponse,
    CheckpointItem,
    CheckpointResult,
    EventRecord,
)
from flux_worker import metrics as worker_metrics
from flux_worker.metrics import METRICS, WorkerMetrics
from flux_worker.outbox import CheckpointSender, Outbox
from prometheus_client import generate_latest
from worker_support import Server, columns

from tests.support.prometheus import Scrape, parse

T0 = utcnow()


def event(type: EventType, task: str = "step", seconds: float = 0.0) -> EventRecord:
    """An encoded event of the task ``task`` (its source id is its name), ``seconds`` after
    :data:`T0`."""
    happened = ExecutionEvent(type, task, task, None, time=T0 + timedelta(seconds=seconds))
    return EventRecord.from_event(happened, "json")


def read(metrics: WorkerMetrics) -> Scrape:
    return parse(generate_latest(metrics.registry).decode())


class LostAnswer:
    """The real channel, except that the first request's answer is lost on the way back (the
    server stored it; the worker sees a network error and sends it again)."""

    def __init__(self, channel) -> None:
        self.channel = channel
        self.lost = 0

    async def checkpoints(self, items: Sequence[CheckpointItem]) -> CheckpointBatchResponse:
        answer = await self.channel.checkpoints(items)
        if self.lost == 0:
            self.lost += 1
            raise ApiError("connection reset", 0)
        return answer


async def test_events_count_once_though_a_request_is_sent_again(server: Server) -> None:
    channel = await server.worker()
    (claim,) = await server.claims(channel, 1)
    lost = LostAnswer(channel)
    metrics = WorkerMetrics(lambda execution_id: "hello")
    sender = CheckpointSender(metrics.checkpoints_through(lambda: lost), max_backoff=0.05)
    box = Outbox(sender, claim.execution_id, claim.generation, "json")
    try:
        box.enqueue(
            [
                event(EventType.WORKFLOW_STARTED, "hello"),
                event(EventType.TASK_STARTED),
                event(EventType.TASK_RETRY_STARTED, seconds=0.5),
                event(EventType.TASK_COMPLETED, seconds=2.0),
                event(EventType.TASK_STARTED, "other"),
                event(EventType.TASK_FAILED, "other", seconds=0.25),
            ]
        )
        await box.flush()
    finally:
        await sender.close()
    assert lost.lost == 1
    now = read(metrics)
    assert now.value("flux_tasks_total", outcome="completed") == 1
    assert now.value("flux_tasks_total", outcome="retried") == 1
    assert now.value("flux_tasks_total", outcome="failed") == 1
    step = {"workflow": "hello", "task": "step", "outcome": "completed"}
    assert now.value("flux_task_duration_seconds_count", **step) == 1
    assert now.value("flux_task_duration_seconds_sum", **step) == 2.0
    other = {"workflow": "hello", "task": "other", "outcome": "failed"}
    assert now.value("flux_task_duration_seconds_sum", **other) == 0.25
    assert now.value("flux_checkpoint_duration_seconds_count") == 1  # the answered request


async def test_a_refused_checkpoint_counts_nothing(server: Server) -> None:
    channel = await server.worker()
    (claim,) = await server.claims(channel, 1)
    metrics = WorkerMetrics(lambda execution_id: "hello")
    stale = CheckpointItem(
        execution_id=claim.execution_id,
        generation=claim.generation + 1,  # not this claim's: fenced
        events=[event(EventType.TASK_STARTED), event(EventType.TASK_COMPLETED)],
    )
    answer = await metrics.checkpoints_through(lambda: channel)().checkpoints([stale])
    assert answer.results[0].error is not None
    assert read(metrics).value("flux_tasks_total", outcome="completed") == 0


async def test_a_claims_finished_tasks_count_as_replayed(server: Server) -> None:
    """Each task whose end the history holds replays from it (once, however many events it
    has); one that only started runs again."""
    channel = await server.worker()
    (claim,) = await server.claims(channel, 1)
    history = [
        event(EventType.TASK_STARTED, "a"),
        event(EventType.TASK_RETRY_STARTED, "a"),
        event(EventType.TASK_COMPLETED, "a"),
        event(EventType.TASK_STARTED, "b"),
        event(EventType.TASK_FAILED, "b"),
        event(EventType.TASK_STARTED, "c"),
    ]
    metrics = WorkerMetrics(lambda execution_id: "hello")
    metrics.claimed(claim.model_copy(update={"history_columns": columns(history)}))
    metrics.claimed(claim.model_copy(update={"history_columns": None, "events": history}))
    assert read(metrics).value("flux_tasks_total", outcome="replayed") == 4


def test_task_labels_are_bounded(monkeypatch) -> None:
    """Past MAX_TASK_SERIES (workflow, task) pairs, durations share ``task="other"``."""
    monkeypatch.setattr(worker_metrics, "MAX_TASK_SERIES", 2)
    metrics = WorkerMetrics(lambda execution_id: "flow")
    for n in range(4):
        name = f"task_{n}"
        events = [event(EventType.TASK_STARTED, name), event(EventType.TASK_COMPLETED, name)]
        item = CheckpointItem(execution_id="e1", generation=1, events=events)
        stored = CheckpointResult(execution_id="e1", acknowledged=2, state=ExecutionState.RUNNING)
        metrics.acknowledged([item], CheckpointBatchResponse(results=[stored]), 0.01)
    tasks = {
        dict(labels)["task"]
        for (name, labels) in read(metrics).samples
        if name == "flux_task_duration_seconds_count"
    }
    assert tasks == {"task_0", "task_1", "other"}


def test_every_metric_is_exposed_with_its_type_and_help() -> None:
    families = read(WorkerMetrics(lambda execution_id: None)).families
    for name, kind, _, text in METRICS:
        assert families[name.removesuffix("_total")] == (kind, text), name
