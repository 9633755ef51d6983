"""Executions seen by clients: run, resume, status and cancel.

``POST /workflows/{name}/run/{mode}`` and ``POST /workflows/{name}/resume/{id}/{mode}`` take the
input as the raw JSON body (any JSON value; an empty body means ``None``). ``sync`` and ``async``
answer with an :class:`ExecutionStatus`; ``stream`` answers with Server-Sent Events whose data is
:class:`flux.protocol.frames.ExecutionFrame`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from flux.domain import FINISHED_STATES, ExecutionState
from flux.protocol._base import UtcDateTime, WireModel
from flux.protocol.events import EventRecord

__all__ = ["EXECUTION_ID_PATTERN", "CancelMode", "ExecutionStatus", "PauseInfo", "RunMode"]

EXECUTION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,35}$"
"""What a client may choose as an execution's id (``?execution_id=`` of a run): up to 36
letters, digits and ``_ . : -``. Server-made ids are 32 hex digits."""


class RunMode(StrEnum):
    SYNC = "sync"
    """Wait until the execution finishes or pauses (bounded by the server's sync timeout)."""
    ASYNC = "async"
    """Answer at once with the scheduled execution."""
    STREAM = "stream"
    """Server-Sent Events, one frame per state change, until it finishes or pauses."""


class CancelMode(StrEnum):
    SYNC = "sync"
    """Wait until the execution has finished cancelling."""
    ASYNC = "async"
    """Answer at once (the state may be CANCELLING)."""


class PauseInfo(WireModel):
    """A pause point that waits for a resume: its name, the JSON ``data`` the workflow gave
    it (``await pause(name, data=...)``) and when it paused."""

    name: str
    data: Any = None
    paused_at: UtcDateTime


class ExecutionStatus(WireModel):
    """An execution as clients see it: state, input and output views, and (when ``detailed``)
    its events, oldest first."""

    execution_id: str
    workflow_id: str
    workflow_name: str
    workflow_version: int
    state: ExecutionState
    input: Any = None
    output: Any = None
    created_at: UtcDateTime
    updated_at: UtcDateTime
    worker: str | None = None
    pauses: list[PauseInfo] = []
    """The pauses waiting for a resume, oldest first (empty unless PAUSED). A resume names
    the one it answers with ``?pause=<name>`` when more than one waits."""
    events: list[EventRecord] | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES
