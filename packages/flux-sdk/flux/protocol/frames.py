"""Server-Sent Event frames: the SSE ``event:`` name and the model of its JSON ``data:``.

Worker stream (``GET /workers/{name}/connect``):

====================== ========================== ==============================================
event                  data                       the worker should
====================== ========================== ==============================================
``connected``          :class:`ConnectedFrame`    note the heartbeat interval
``execution.scheduled`` :class:`ExecutionScheduledFrame` claim it (``POST .../claim/{id}``) if it
                                                  has room; a 409 means someone else has it
``execution.cancelled`` :class:`ExecutionCancelledFrame` cancel that execution if it runs it
``keepalive``          :class:`KeepaliveFrame`    nothing (it keeps proxies from closing)
====================== ========================== ==============================================

Frames can repeat (an unclaimed offer is offered again after the claim timeout; a cancel may be
sent more than once); handling them must be idempotent. Unknown event names must be ignored.

Execution stream (``POST /workflows/{name}/run/stream`` and ``.../resume/{id}/stream``): event
``workflow.execution.<state>`` for ``running``, ``paused``, ``completed``, ``failed`` and
``cancelled``, with :class:`ExecutionFrame` data. The stream ends after a finished or paused
frame; closing it early changes nothing in the execution.
"""

from __future__ import annotations

from typing import Any, ClassVar

from flux.domain import ExecutionState
from flux.protocol._base import UtcDateTime, WireModel

__all__ = [
    "EXECUTION_FRAME_STATES",
    "ConnectedFrame",
    "ExecutionCancelledFrame",
    "ExecutionFrame",
    "ExecutionScheduledFrame",
    "KeepaliveFrame",
    "WorkerFrame",
    "execution_frame_event",
    "parse_execution_frame",
    "parse_worker_frame",
]


class ConnectedFrame(WireModel):
    """First frame of a worker stream."""

    EVENT: ClassVar[str] = "connected"
    name: str
    heartbeat_interval: float
    server_time: UtcDateTime


class ExecutionScheduledFrame(WireModel):
    """An offer: this worker may claim the execution. Offers are hints; the claim decides."""

    EVENT: ClassVar[str] = "execution.scheduled"
    execution_id: str
    workflow_name: str
    workflow_version: int


class ExecutionCancelledFrame(WireModel):
    """Cancellation was requested for an execution this worker holds."""

    EVENT: ClassVar[str] = "execution.cancelled"
    execution_id: str


class KeepaliveFrame(WireModel):
    EVENT: ClassVar[str] = "keepalive"
    time: UtcDateTime


WorkerFrame = ConnectedFrame | ExecutionScheduledFrame | ExecutionCancelledFrame | KeepaliveFrame

_WORKER_FRAMES: dict[str, type[WireModel]] = {
    frame.EVENT: frame
    for frame in (ConnectedFrame, ExecutionScheduledFrame, ExecutionCancelledFrame, KeepaliveFrame)
}


def parse_worker_frame(event: str, data: str) -> WorkerFrame | None:
    """The frame for an SSE ``event`` name and ``data`` text; ``None`` for an unknown name.

    Raises:
        pydantic.ValidationError: the data does not match the frame's model.
    """
    model = _WORKER_FRAMES.get(event)
    return None if model is None else model.model_validate_json(data)  # type: ignore[return-value]


class ExecutionFrame(WireModel):
    """A state change of an execution; ``output`` (its view) is set once it has finished."""

    execution_id: str
    state: ExecutionState
    output: Any = None
    timestamp: UtcDateTime


EXECUTION_FRAME_STATES: dict[ExecutionState, str] = {
    ExecutionState.RUNNING: "workflow.execution.running",
    ExecutionState.PAUSED: "workflow.execution.paused",
    ExecutionState.COMPLETED: "workflow.execution.completed",
    ExecutionState.FAILED: "workflow.execution.failed",
    ExecutionState.CANCELLED: "workflow.execution.cancelled",
}
"""The states that produce a frame on an execution stream, and the frame's event name."""


def execution_frame_event(state: ExecutionState) -> str | None:
    """The SSE event name for ``state``; ``None`` for states that are not streamed."""
    return EXECUTION_FRAME_STATES.get(state)


def parse_execution_frame(event: str, data: str) -> ExecutionFrame | None:
    """The frame for an execution-stream event; ``None`` for names that are not frames."""
    if not event.startswith("workflow.execution."):
        return None
    return ExecutionFrame.model_validate_json(data)
