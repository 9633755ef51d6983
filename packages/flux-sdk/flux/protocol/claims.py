"""Claiming, checkpointing and releasing an execution: the worker's side of the work.

Fencing: a claim returns a ``generation``. Every checkpoint and release carries it; once the
execution has been claimed again (by anyone, after a heartbeat expiry, a release or a resume),
the old generation gets HTTP 409 and the worker must abandon its copy without further writes.

- ``POST /workers/{name}/claims`` with :class:`ClaimBatchRequest` -> :class:`ClaimBatchResponse`:
  several offered executions in one request and one transaction, each claimed or refused on
  its own (``conflict`` when someone else has it, it finished, it was cancelled). Sources whose
  hash the worker lists in ``known_sources`` are not sent again (``source`` is empty). With
  ``history_format="columns"`` each claim carries its history in ``history_columns``, the
  form a worker replays from (:meth:`ClaimResponse.history`); claims pushed on the worker's
  stream always do. A worker whose claim answer was lost may claim again while the execution
  is still CLAIMED by it (it gets a new generation). An execution the heartbeat lists in
  ``held`` that the worker does not run (and did not claim after sending that heartbeat) was
  claimed but never started there: release it.
- ``POST /workers/{name}/checkpoints`` with :class:`CheckpointBatchRequest` ->
  :class:`CheckpointBatchResponse` once committed: the checkpoints of several held executions
  in one request and one transaction; each item is fenced on its own (a stale one gets an
  ``error`` entry with code ``conflict`` and does not affect the others). Send only events not
  acknowledged before; resending an event (same ``id``) is harmless. The execution's state
  follows the last workflow-level event (``WORKFLOW_STARTED``/``RESUMED`` -> RUNNING,
  ``PAUSED``, ``COMPLETED``, ``FAILED``, ``CANCELLED``); a terminal or paused state ends the
  worker's hold.
- ``POST /workers/{name}/claim/{execution_id}`` -> :class:`ClaimResponse` (409 when not
  claimable) and ``POST /workers/{name}/checkpoint/{execution_id}`` with
  :class:`CheckpointRequest` -> :class:`CheckpointResponse`: the same, one execution at a time
  (a one-by-one claim sends its history as records, in ``events``).
- ``POST /workers/{name}/release/{execution_id}`` with :class:`ReleaseRequest` ->
  :class:`ReleaseResponse`: give an unfinished execution back to the queue (draining).
- ``GET /workers/{name}/secrets/{execution_id}?names=A,B`` -> :class:`SecretsResponse`, only for
  an execution the worker holds (403 otherwise; 404 naming missing secrets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, PrivateAttr, StrictInt

from flux.domain import ExecutionEvent, ExecutionState
from flux.errors import FluxError, ProtocolError, SerializationError
from flux.protocol._base import WireModel
from flux.protocol.errors import ErrorBody
from flux.protocol.events import EventRecord, HistoryColumns, OutputRecord, decode_columns
from flux.protocol.workflows import ResourceRequest

__all__ = [
    "CheckpointBatchRequest",
    "CheckpointBatchResponse",
    "CheckpointItem",
    "CheckpointRequest",
    "CheckpointResponse",
    "CheckpointResult",
    "ClaimBatchRequest",
    "ClaimBatchResponse",
    "ClaimResponse",
    "ClaimResult",
    "ReleaseRequest",
    "ReleaseResponse",
    "SecretsResponse",
]

HISTORY_STRINGS: Literal["keys"] = "keys"
"""``cache_strings`` for ``pydantic_core.from_json`` when the text carries a history: keys only.
A history is mostly short strings seen once (event ids, source ids), which only churn
pydantic's string cache (docs/benchmarks.md has the figures)."""


class ClaimResponse(WireModel):
    """Everything needed to (re)play the execution from the top."""

    execution_id: str
    generation: StrictInt
    workflow_id: str
    workflow_name: str
    workflow_version: StrictInt
    source: str
    """The Python source of the registered file that defines the workflow; empty in a batched
    claim when the worker listed ``source_hash`` among its ``known_sources``."""
    source_hash: str
    input: str | None
    """base64 of ``flux.serialization.dumps(input)`` (JSON format for inputs sent over HTTP)."""
    events: list[EventRecord]
    """The full history so far as records, oldest first, as a one-by-one claim sends it;
    empty when it came as ``history_columns``."""
    state: ExecutionState
    history_columns: HistoryColumns | None = None
    """The full history so far column by column, as a batched claim that asks for it and a
    pushed claim send it: what :meth:`history` replays from."""
    requests: ResourceRequest | None = None
    """The workflow version's resource requests (protocol 1.3): the worker assigns the GPUs
    they ask for to this execution."""
    traceparent: str | None = None
    """The W3C trace context the execution's trace continues from (protocol 1.9): the
    worker's spans of this segment are its children. ``None``: no trace."""

    _history: list[ExecutionEvent] | None = PrivateAttr(default=None)
    _unreadable: FluxError | None = PrivateAttr(default=None)

    def history(self) -> list[ExecutionEvent]:
        """The history as domain events, decoded from :attr:`history_columns`, ready to
        replay (values unpickled: only for the worker that runs the execution).

        Raises:
            SerializationError: a value cannot be read back here (the message names the event).
            ProtocolError: the history is malformed, or did not come column by column.
        """
        # Read from pydantic's store of private values directly: each read of a private
        # attribute goes through pydantic's __getattr__, and a worker reads this for every
        # run it starts (its context, its trace, its metrics).
        private = self.__pydantic_private__
        assert private is not None
        history: list[ExecutionEvent] | None = private["_history"]
        if history is not None:
            return history
        if private["_unreadable"] is not None:
            raise private["_unreadable"]
        if self.history_columns is None:
            raise ProtocolError(
                f"the claim of execution {self.execution_id!r} carries no history columns; "
                "claim with history_format='columns' (claims pushed on the stream have them)"
            )
        history = private["_history"] = decode_columns(self.history_columns.model_dump())
        return history

    @classmethod
    def from_wire(cls, data: dict[str, Any], *, decode_history: bool = False) -> ClaimResponse:
        """Read a parsed claim answer. With ``decode_history`` the history columns go straight
        into :meth:`history` (domain events) and ``history_columns`` stays empty: a worker
        replaying a long history skips building the columns' model.

        A history that cannot be decoded (a value that does not read back here, a malformed
        or missing column) does not fail the answer, which may carry other claims:
        :meth:`history` raises the error instead, and the worker ends that execution with it.

        Raises:
            pydantic.ValidationError: the answer is malformed.
        """
        if not decode_history:
            return cls.model_validate(data)
        columns = data.get("history_columns")
        claim = cls.model_validate({**data, "history_columns": None})
        if isinstance(columns, Mapping):
            try:
                claim._history = decode_columns(columns)
            except (ProtocolError, SerializationError) as exc:
                claim._unreadable = exc
        return claim


class ClaimBatchRequest(WireModel):
    execution_ids: list[str] = Field(min_length=1, max_length=1_000)
    known_sources: list[str] = Field(default_factory=list, max_length=10_000)
    """Source hashes this worker has loaded: claims of those sources come without ``source``."""
    history_format: Literal["events", "columns"] = "events"
    """``columns``: send each history as :class:`HistoryColumns` (protocol 1.2)."""


class ClaimResult(WireModel):
    """The outcome of one id, in request order: ``claim`` when taken, else ``error`` (code
    ``conflict`` when another worker has it or it is no longer claimable, ``not_found``)."""

    execution_id: str
    claim: ClaimResponse | None = None
    error: ErrorBody | None = None


class ClaimBatchResponse(WireModel):
    results: list[ClaimResult]


class CheckpointRequest(WireModel):
    generation: StrictInt
    events: list[EventRecord] = Field(default_factory=list, max_length=100_000)
    output: OutputRecord | None = None
    """The workflow's output; sent with the terminal event (else that event's value is used)."""


class CheckpointResponse(WireModel):
    acknowledged: StrictInt
    """How many of the request's events are now stored (duplicates included)."""
    state: ExecutionState


class CheckpointItem(CheckpointRequest):
    """One execution's checkpoint inside a batch."""

    execution_id: str


class CheckpointBatchRequest(WireModel):
    items: list[CheckpointItem] = Field(default_factory=list, max_length=10_000)


class CheckpointResult(WireModel):
    """The outcome of one item, in request order: ``state`` when stored, else ``error``."""

    execution_id: str
    acknowledged: StrictInt = 0
    state: ExecutionState | None = None
    error: ErrorBody | None = None


class CheckpointBatchResponse(WireModel):
    results: list[CheckpointResult]


class ReleaseRequest(WireModel):
    generation: StrictInt
    reason: str | None = None


class ReleaseResponse(WireModel):
    state: ExecutionState


class SecretsResponse(WireModel):
    secrets: dict[str, Any]
    """Secret values by name (any JSON value, usually a string)."""
