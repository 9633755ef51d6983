"""Pauses: which ``await pause(...)`` points of an execution wait for input, and which one a
resume answers.

A pause records ``TASK_STARTED`` then ``TASK_PAUSED`` (value ``{"name", "data"}``) under its
task identity. A resume answers one waiting pause by recording that pause's ``TASK_COMPLETED``
with the resume input, then ``WORKFLOW_RESUMED``; replay hands each pause its own answer, so
several pauses may wait at once (in branches of ``parallel``) and each gets its own input.

The same rules serve the local store (events in memory) and the server (event rows whose
values it only knows as JSON views): both feed :func:`waiting_pauses` with
:class:`PauseRecord` tuples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from flux.domain import EventType
from flux.errors import ExecutionStateError

__all__ = [
    "PAUSE_TASK",
    "Pause",
    "PauseRecord",
    "choose_pause",
    "pause_value",
    "waiting_pauses",
]

PAUSE_TASK = "pause"
"""The task name every pause is recorded under."""

_ENDS = frozenset(
    {
        EventType.TASK_COMPLETED,
        EventType.TASK_FAILED,
        EventType.TASK_CANCELLED,
        EventType.TASK_FALLBACK_COMPLETED,
    }
)


class PauseRecord(NamedTuple):
    """What :func:`waiting_pauses` reads of one event of a pause task."""

    type: EventType
    source_id: str
    scope: str
    time: datetime
    value: Any
    """The TASK_PAUSED event's value (or its JSON view): ``{"name", "data"}``, or the bare
    name in histories recorded before pauses carried data."""


@dataclass(frozen=True, slots=True)
class Pause:
    """A pause point that waits for a resume."""

    name: str
    data: Any
    paused_at: datetime
    source_id: str
    scope: str

    def to_dict(self) -> dict[str, Any]:
        """``{name, data, paused_at}``: what an execution's status lists."""
        return {"name": self.name, "data": self.data, "paused_at": self.paused_at.isoformat()}


def pause_value(name: str, data: Any) -> dict[str, Any]:
    """The value a TASK_PAUSED event records."""
    return {"name": name, "data": data}


def waiting_pauses(records: Iterable[PauseRecord]) -> list[Pause]:
    """The pauses waiting for input, oldest first, from a pause task's events in log order."""
    waiting: dict[str, Pause] = {}
    for r in records:
        if r.type is EventType.TASK_PAUSED:
            value = r.value
            if isinstance(value, dict):
                name, data = str(value.get("name")), value.get("data")
            else:
                name, data = str(value), None
            waiting[r.source_id] = Pause(name, data, r.time, r.source_id, r.scope)
        elif r.type in _ENDS:
            waiting.pop(r.source_id, None)
    return sorted(waiting.values(), key=lambda p: p.paused_at)


def choose_pause(execution_id: str, waiting: Sequence[Pause], name: str | None) -> Pause | None:
    """The waiting pause a resume answers.

    ``name`` is required only when more than one pause waits. With no pause waiting (an
    execution paused because a subworkflow it called paused) the resume answers none and the
    input goes to whatever the body resumes. Two waiting pauses of the same name are answered
    oldest first.

    Raises:
        ExecutionStateError: ``name`` is missing while several pauses wait, or no waiting
            pause has that name; ``details["pauses"]`` lists the waiting names.
    """
    names = [p.name for p in waiting]
    if name is None:
        if len(waiting) <= 1:
            return waiting[0] if waiting else None
        raise ExecutionStateError(
            f"execution {execution_id!r} waits at {len(waiting)} pauses ({', '.join(names)}); "
            "name the one this resume answers",
            execution_id=execution_id,
            pauses=names,
        )
    for p in waiting:
        if p.name == name:
            return p
    waits = f"it waits at {', '.join(names)}" if names else "no pause of it waits for input"
    raise ExecutionStateError(
        f"execution {execution_id!r} has no waiting pause named {name!r}; {waits}",
        execution_id=execution_id,
        pauses=names,
    )
