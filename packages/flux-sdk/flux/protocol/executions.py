"""Executions seen by clients: run, resume, status and cancel.

``POST /workflows/{name}/run/{mode}`` and ``POST /workflows/{name}/resume/{id}/{mode}`` take the
input as the raw JSON body (any JSON value; an empty body means ``None``). ``sync`` and ``async``
answer with an :class:`ExecutionStatus`; ``stream`` answers with Server-Sent Events whose data is
:class:`flux.protocol.frames.ExecutionFrame`. A run's ``?execution_id=`` and a resume's
``?resume_id=`` (protocol 1.12), ids the client chooses, make repeating the request change
nothing: a client that lost an answer sends the same request again, to any server.

Reading executions by id (protocol 1.5), no workflow name needed:

- ``GET /executions?workflow=&state=&created_after=&created_before=&updated_after=
  &updated_before=&worker=&schedule=&limit=&cursor=`` -> :class:`ExecutionList`, newest first.
- ``GET /executions/{id}?detailed=`` -> :class:`ExecutionStatus`.
- ``GET /executions/{id}/events?after=&limit=&types=&payloads=`` -> :class:`EventPage`.
- ``GET /executions/{id}/stream`` -> Server-Sent Events of :class:`ExecutionStreamFrame`, whose
  SSE ``id`` is the frame's ``position``; ``Last-Event-ID`` (or ``?after=``) resumes after it.
- ``POST /executions/{id}/rerun?new_id=`` -> :class:`ExecutionStatus` of a new execution.
- ``POST /executions/cancel`` with :class:`CancelBatchRequest` -> :class:`CancelBatchResponse`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, StrictFloat, StrictInt

from flux.domain import FINISHED_STATES, ExecutionState
from flux.protocol._base import UtcDateTime, WireModel
from flux.protocol.errors import ErrorBody
from flux.protocol.events import EventRecord
from flux.protocol.frames import ExecutionFrame

__all__ = [
    "EXECUTION_ID_PATTERN",
    "CancelBatchRequest",
    "CancelBatchResponse",
    "CancelMode",
    "CancelResult",
    "EventEntry",
    "EventPage",
    "ExecutionList",
    "ExecutionStatus",
    "ExecutionStreamFrame",
    "PauseInfo",
    "PruneRequest",
    "PruneResponse",
    "RunMode",
]

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
    workflow_version: StrictInt
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


class ExecutionList(WireModel):
    """A page of ``GET /executions`` (protocol 1.5): executions newest first (by creation, ties
    by id), without events or waiting pauses."""

    items: list[ExecutionStatus]
    next_cursor: str | None = None
    """Pass as ``cursor=`` with the same filters for the next page; ``None`` on the last one.
    Opaque: the server refuses one that was changed or that belongs to other filters."""
    counts: dict[ExecutionState, int] = {}
    """How many executions match the filters, per state (states with none are left out):
    across all pages, not only this one."""


class EventEntry(EventRecord):
    """An event of an execution's log with its ``position`` there: a number that grows along
    the log (not contiguous), what ``after=`` of the next page takes. ``value`` and ``view``
    are ``None`` unless payloads were asked for."""

    position: StrictInt


class EventPage(WireModel):
    """A page of ``GET /executions/{id}/events`` (protocol 1.5), oldest first."""

    items: list[EventEntry]
    next_after: StrictInt | None = None
    """``after=`` for the next page when more events match now; ``None`` when this page
    reached the end of the log as it is (a running execution may add more later: ask again
    from the last item's ``position``)."""


class ExecutionStreamFrame(ExecutionFrame):
    """A frame of ``GET /executions/{id}/stream`` (protocol 1.5): one per workflow-level event
    of the log, named as on a run's stream (``workflow.execution.<state>``).
    ``position`` is the event's position, also the SSE ``id``: a client that reconnects with
    it as ``Last-Event-ID`` (or ``?after=``) gets only the frames after it."""

    position: StrictInt


class CancelBatchRequest(WireModel):
    """``POST /executions/cancel``: the executions to cancel, by id."""

    execution_ids: list[str] = Field(min_length=1, max_length=1_000)


class CancelResult(WireModel):
    """What cancelling one execution did: its ``state`` after the request (CANCELLED, or
    CANCELLING while its worker unwinds it), or the ``error`` that left it as it was (code
    ``execution_not_found``, or ``execution_state`` when it had already finished)."""

    execution_id: str
    state: ExecutionState | None = None
    error: ErrorBody | None = None


class CancelBatchResponse(WireModel):
    """One result per distinct id of the request, in the request's order."""

    results: list[CancelResult]


MAX_AGE = 1000 * 366 * 86400.0
"""The largest ``older_than`` (a thousand years): a time that far back is no time at all."""


class PruneRequest(WireModel):
    """``POST /executions/prune``: delete finished executions last updated more than
    ``older_than`` seconds ago (of ``workflow``, or of every workflow), with their events and
    schedule history. Running, paused and queued executions are never touched."""

    older_than: StrictFloat = Field(gt=0, le=MAX_AGE)
    workflow: str | None = None


class PruneResponse(WireModel):
    """How many executions a prune deleted."""

    deleted: StrictInt
