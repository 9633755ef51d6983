"""Server-Sent Event frames: the SSE ``event:`` name and the model of its JSON ``data:``.

Worker stream (``GET /workers/{name}/connect``):

====================== ========================== ==============================================
event                  data                       the worker should
====================== ========================== ==============================================
``connected``          :class:`ConnectedFrame`    note the heartbeat interval
``execution.scheduled`` :class:`ExecutionScheduledFrame` claim it (``POST .../claim/{id}``) if it
                                                  has room; a 409 means someone else has it
``execution.claimed``  :class:`ExecutionClaimedFrame` run it: it is already claimed for
                                                  this worker (only on a stream opened with
                                                  ``?push=true``, protocol 1.3); release it
                                                  (``POST .../release/{id}``) if it cannot
``execution.cancelled`` :class:`ExecutionCancelledFrame` cancel that execution if it runs it
``keepalive``          :class:`KeepaliveFrame`    nothing (it keeps proxies from closing)
====================== ========================== ==============================================

Frames can repeat (an unclaimed offer is offered again after the claim timeout; a cancel may be
sent more than once); handling them must be idempotent. Unknown event names must be ignored.

A worker that opens its stream with ``?push=true`` gets claims instead of offers: the server
offers and claims in one transaction and sends the whole claim, saving the worker a request and
the server a transaction per execution. The stream's claims carry each workflow source once:
later claims of a source already sent on the same stream come with ``source`` empty, so the
worker keeps the sources it was sent for as long as the stream lasts. A server older than 1.3
ignores the parameter and sends offers.

Execution stream (``POST /workflows/{name}/run/stream`` and ``.../resume/{id}/stream``): event
``workflow.execution.<state>`` for ``running``, ``paused``, ``completed``, ``failed`` and
``cancelled``, with :class:`ExecutionFrame` data. The stream ends after a finished or paused
frame; closing it early changes nothing in the execution.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import StrictFloat, StrictInt
from pydantic_core import from_json

from flux.domain import ExecutionState
from flux.protocol._base import UtcDateTime, WireModel
from flux.protocol.claims import HISTORY_STRINGS, ClaimResponse

__all__ = [
    "EXECUTION_FRAME_STATES",
    "ConnectedFrame",
    "ExecutionCancelledFrame",
    "ExecutionClaimedFrame",
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
    heartbeat_interval: StrictFloat
    server_time: UtcDateTime


class ExecutionScheduledFrame(WireModel):
    """An offer: this worker may claim the execution. Offers are hints; the claim decides."""

    EVENT: ClassVar[str] = "execution.scheduled"
    execution_id: str
    workflow_name: str
    workflow_version: StrictInt


class ExecutionClaimedFrame(WireModel):
    """A claim pushed to this worker (protocol 1.3): run it, or release it."""

    EVENT: ClassVar[str] = "execution.claimed"
    claim: ClaimResponse


class ExecutionCancelledFrame(WireModel):
    """Cancellation was requested for an execution this worker holds."""

    EVENT: ClassVar[str] = "execution.cancelled"
    execution_id: str


class KeepaliveFrame(WireModel):
    EVENT: ClassVar[str] = "keepalive"
    time: UtcDateTime


WorkerFrame = (
    ConnectedFrame
    | ExecutionScheduledFrame
    | ExecutionClaimedFrame
    | ExecutionCancelledFrame
    | KeepaliveFrame
)

_WORKER_FRAMES: dict[str, type[WireModel]] = {
    frame.EVENT: frame
    for frame in (
        ConnectedFrame,
        ExecutionScheduledFrame,
        ExecutionClaimedFrame,
        ExecutionCancelledFrame,
        KeepaliveFrame,
    )
}


def parse_worker_frame(
    event: str, data: str, *, decode_history: bool = False
) -> WorkerFrame | None:
    """The frame for an SSE ``event`` name and ``data`` text; ``None`` for an unknown name.
    ``decode_history``: a pushed claim's history goes straight to domain events, as in
    :meth:`ClaimResponse.from_wire`.

    Raises:
        pydantic.ValidationError: the data does not match the frame's model.
        ProtocolError, SerializationError: a pushed claim's event is malformed.
    """
    model = _WORKER_FRAMES.get(event)
    if model is None:
        return None
    if model is ExecutionClaimedFrame and decode_history:
        raw = from_json(data, cache_strings=HISTORY_STRINGS)
        claim = raw.get("claim") if isinstance(raw, dict) else None
        if isinstance(claim, dict):
            raw["claim"] = ClaimResponse.from_wire(claim, decode_history=True)
        return ExecutionClaimedFrame.model_validate(raw)
    return model.model_validate_json(data)  # type: ignore[return-value]


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
