"""An execution's timeline: one bar per task call, drawn from its events' heads.

A task call is its ``source_id`` (the task's identity in the history): it starts with its first
``TASK_STARTED`` and ends with the event that settles it. Retries and failed attempts are
counted on the bar; a call without an end is pending (running, or waiting at a pause). Bars are
placed as fractions of the execution's span, so the page draws them without any script.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flux.domain import EVENT_TYPES, EventType

__all__ = ["MAX_BARS", "Bar", "Timeline", "build"]

MAX_BARS = 200
"""The most bars a timeline draws: the first and the last half of them when there are more
(where an execution began, and the work still pending)."""

_E = EventType
_ENDS: dict[EventType, str] = {
    _E.TASK_COMPLETED: "completed",
    _E.TASK_FAILED: "failed",
    _E.TASK_FALLBACK_COMPLETED: "fallback",
    _E.TASK_CANCELLED: "cancelled",
    _E.TASK_PAUSED: "paused",
}
_FAILURES = frozenset(
    {_E.TASK_FAILED, _E.TASK_RETRY_FAILED, _E.TASK_FALLBACK_FAILED, _E.TASK_ROLLBACK_FAILED}
)


@dataclass(slots=True)
class Bar:
    """One task call."""

    name: str
    source_id: str
    started: datetime
    ended: datetime | None = None
    outcome: str = "pending"
    """completed, failed, fallback, cancelled, paused, or pending (no end recorded yet)."""
    retries: int = 0
    failures: int = 0
    offset: float = 0.0
    """Where the bar starts, as a percentage of the execution's span."""
    width: float = 0.0
    """Its length, as a percentage of the span (at least a sliver, so it shows)."""

    @property
    def seconds(self) -> float | None:
        return None if self.ended is None else (self.ended - self.started).total_seconds()


@dataclass(slots=True)
class Timeline:
    """The bars to draw, oldest call first, and what was left out."""

    bars: list[Bar] = field(default_factory=list)
    hidden: int = 0
    """Calls between the first and the last :data:`MAX_BARS` halves, not drawn."""
    hidden_at: int = 0
    """The index in ``bars`` before which the hidden calls belong."""
    tasks: int = 0
    failed: int = 0
    retries: int = 0
    pending: int = 0
    truncated: bool = False
    """The history is longer than what was read: later calls are missing."""
    start: datetime | None = None
    end: datetime | None = None


def build(
    rows: Iterable[Sequence[Any]], now: datetime, running: bool, truncated: bool = False
) -> Timeline:
    """The timeline of event heads ``(seq, id, type, source_id, name, scope, time)`` in log
    order; ``now`` ends the span of a ``running`` execution and of its pending calls."""
    calls: dict[str, Bar] = {}
    start = end = None
    for row in rows:
        kind, source_id, name, time = EVENT_TYPES[row[2]], row[3], row[4], row[6]
        if start is None:
            start = time
        end = time
        if kind is _E.TASK_STARTED:
            if source_id not in calls:
                calls[source_id] = Bar(name, source_id, time)
            continue
        bar = calls.get(source_id)
        if bar is None:
            continue  # a workflow event, or an end without its start
        if kind is _E.TASK_RETRY_STARTED:
            bar.retries += 1
        if kind in _FAILURES:
            bar.failures += 1
        outcome = _ENDS.get(kind)
        if outcome is not None:
            bar.outcome, bar.ended = outcome, time
        elif kind is _E.TASK_FALLBACK_FAILED:
            bar.outcome, bar.ended = "failed", time
    timeline = Timeline(start=start, truncated=truncated)
    if start is None:
        return timeline
    span_end = now if running and not truncated else end
    assert span_end is not None
    timeline.end = span_end
    span = max((span_end - start).total_seconds(), 1e-6)
    bars = list(calls.values())
    for bar in bars:
        stop = bar.ended or span_end
        bar.offset = max(0.0, (bar.started - start).total_seconds() / span * 100)
        bar.width = max(0.4, (stop - bar.started).total_seconds() / span * 100)
        bar.offset = min(bar.offset, 100 - bar.width) if bar.width < 100 else 0.0
        timeline.failed += bar.outcome == "failed"
        timeline.pending += bar.ended is None
        timeline.retries += bar.retries
    timeline.tasks = len(bars)
    if len(bars) > MAX_BARS:
        half = MAX_BARS // 2
        timeline.hidden = len(bars) - MAX_BARS
        timeline.hidden_at = half
        bars = bars[:half] + bars[-half:]
    timeline.bars = bars
    return timeline
