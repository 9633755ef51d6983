"""An execution's timeline: one bar per task call, placed on the execution's span.

The calls come from :func:`flux_server.store.history.task_calls`, grouped and counted by the
database: a long history draws its first and last :data:`EDGE` calls (where it began, and the
work still pending) and says how many it left out. Bars are placed as percentages of the span,
so the page draws them as SVG without any script or inline style.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flux_server.store.history import TaskCall, TaskCalls

__all__ = ["EDGE", "Bar", "Timeline", "build"]

EDGE = 100
"""Bars drawn at each end of a long history: at most ``2 * EDGE`` in all."""


@dataclass(frozen=True, slots=True)
class Bar:
    """One task call, and where its bar goes."""

    call: TaskCall
    offset: float
    """Where the bar starts, as a percentage of the execution's span."""
    width: float
    """Its length, as a percentage of the span (at least a sliver, so it shows)."""

    @property
    def seconds(self) -> float | None:
        ended = self.call.ended
        return None if ended is None else (ended - self.call.started).total_seconds()


@dataclass(slots=True)
class Timeline:
    """The bars to draw, oldest call first, and the totals over every call."""

    bars: list[Bar] = field(default_factory=list)
    hidden: int = 0
    """Calls not drawn, between the first and the last :data:`EDGE`."""
    hidden_at: int = 0
    """The index in ``bars`` the hidden calls come before."""
    tasks: int = 0
    failed: int = 0
    retries: int = 0
    pending: int = 0
    start: datetime | None = None
    end: datetime | None = None


def build(calls: TaskCalls, now: datetime, running: bool) -> Timeline:
    """The timeline of ``calls``; ``now`` ends the span of a ``running`` execution and the bars
    of its pending calls."""
    timeline = Timeline(
        hidden=calls.hidden,
        hidden_at=EDGE if calls.hidden else 0,
        tasks=calls.total,
        failed=calls.failed,
        retries=calls.retries,
        pending=calls.pending,
        start=calls.start,
        end=max(now, calls.end) if running and calls.end else calls.end,
    )
    if timeline.start is None or timeline.end is None:
        return timeline
    start, end = timeline.start, timeline.end
    span = max((end - start).total_seconds(), 1e-6)
    for call in calls.calls:
        stop = call.ended or end
        width = max(0.4, (stop - call.started).total_seconds() / span * 100)
        offset = max(0.0, (call.started - start).total_seconds() / span * 100)
        timeline.bars.append(Bar(call, min(offset, max(0.0, 100 - width)), min(width, 100.0)))
    return timeline
