"""A registered worker's side of the protocol over asyncio: :class:`AsyncWorkerChannel`."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from flux.client import _calls as calls
from flux.client._calls import Call
from flux.protocol import (
    CheckpointBatchResponse,
    CheckpointItem,
    ClaimBatchResponse,
    ExecutionStatus,
    HeartbeatResponse,
    LeaveResponse,
    ProgressItem,
    ProgressResponse,
    ReleaseResponse,
    WorkerFrame,
    WorkerResources,
)

if TYPE_CHECKING:
    from flux.client._async_base import AsyncClientBase

__all__ = ["AsyncWorkerChannel"]

T = TypeVar("T")


class AsyncWorkerChannel:
    """A registered worker's side of the protocol (see :mod:`flux.protocol.claims`).

    Every call raises :class:`flux.errors.ApiError` 401 (bad session token: register again),
    403 (not this worker's execution), :class:`flux.errors.ConflictError` 409 (fenced: abandon
    the execution) or a retryable error (see :func:`flux.client.is_retryable`).
    """

    def __init__(self, client: AsyncClientBase, name: str, session_token: str) -> None:
        self.client = client
        self.name = name
        self.session_token = session_token

    def connect(
        self, *, push: bool = False, decode_history: bool = False
    ) -> AsyncIterator[WorkerFrame]:
        """Open the worker's event stream and yield its frames (unknown events are skipped).

        ``push``: ask for claims instead of offers (``execution.claimed`` frames, protocol
        1.3). ``decode_history`` as in :meth:`claims`, for the pushed claims (which always
        carry their history column by column).

        The stream ends when the server closes it (restart, or this worker was declared dead):
        reconnect with backoff. Close the iterator to disconnect.
        """
        call = calls.connect(self.name, self.session_token, push)
        return self.client.events(call, calls.worker_frame_parser(decode_history))

    async def claims(
        self,
        execution_ids: Sequence[str],
        known_sources: Sequence[str] = (),
        *,
        history_format: Literal["events", "columns"] = "columns",
        decode_history: bool = False,
    ) -> ClaimBatchResponse:
        """Take several offered executions in one request; each is claimed or refused alone
        (``error.code == "conflict"`` when it is not claimable). Claims of a source whose hash
        is in ``known_sources`` come with ``source`` empty.

        ``history_format``: ``"columns"`` (what :meth:`ClaimResponse.history` replays from,
        in the worker or in a child process it hands the claim to) or ``"events"`` (records,
        for display). ``decode_history``: decode the columns straight into domain events
        (:meth:`ClaimResponse.history`) while reading the answer, leaving
        ``history_columns`` empty.
        """
        call = calls.claims(
            self.name,
            self.session_token,
            execution_ids,
            known_sources,
            decode_history,
            history_format=history_format,
        )
        return await self.client.send(call)

    async def checkpoints(self, items: Sequence[CheckpointItem]) -> CheckpointBatchResponse:
        """Store the new events of several held executions (each with its output when it
        carries the terminal event) in one request, idempotent by event id; each item is
        fenced alone (a stale one comes back with ``error.code == "conflict"``: abandon that
        execution)."""
        call = calls.checkpoints(self.name, self.session_token, items)
        return await self.client.send(call)

    async def release(
        self, execution_id: str, generation: int, reason: str | None = None
    ) -> ReleaseResponse:
        """Give an unfinished execution back to the queue (it replays elsewhere)."""
        call = calls.release(self.name, self.session_token, execution_id, generation, reason)
        return await self.client.send(call)

    async def heartbeat(
        self, resources: WorkerResources | None = None, running: Sequence[str] | None = None
    ) -> HeartbeatResponse:
        """Report liveness, optionally with fresh resources and the executions running here
        (see :class:`flux.protocol.HeartbeatRequest`)."""
        call = calls.heartbeat(self.name, self.session_token, resources, running)
        return await self.client.send(call)

    async def leave(self) -> LeaveResponse:
        """Say this worker stops (protocol 1.14): it is shown disconnected at once, and what it
        still holds goes back to the queue (normally nothing, after a drain)."""
        return await self.client.send(calls.leave(self.name, self.session_token))

    async def progress(self, execution_id: str, items: Sequence[ProgressItem]) -> ProgressResponse:
        """Hand over what a held execution's tasks published (protocol 1.10); the server
        sends it to the execution's open streams, if any (``listening``)."""
        call = calls.progress(self.name, self.session_token, execution_id, items)
        return await self.client.send(call)

    async def get_secrets(self, execution_id: str, names: Sequence[str]) -> dict[str, Any]:
        """Secret values for a held execution.

        Raises:
            NotFoundError: a secret does not exist (``details['error_details']['missing']``).
            ApiError: 403 when this worker does not hold the execution.
        """
        call = calls.get_secrets(self.name, self.session_token, execution_id, names)
        return (await self.client.send(call)).secrets

    async def send(self, call: Call[T]) -> T:
        """Send any call as this worker (its session token in place of the client's key):
        what a worker's execution reads and writes on the server, long-term memory say."""
        return await self.client.send(dataclasses.replace(call, token=self.session_token))

    async def run_child(
        self,
        name: str,
        input: Any,
        *,
        execution_id: str,
        parent: str,
        traceparent: str | None = None,
    ) -> ExecutionStatus:
        """Start (or, when it exists, wait for) the child ``execution_id`` of the execution
        ``parent`` this worker holds, in sync mode: what a subworkflow call does. A server
        with authentication on lets a worker start children of what it holds only.
        ``traceparent`` (the parent's segment) puts the child's trace in the parent's.

        Raises:
            ApiError: 403 when this worker does not hold ``parent``.
        """
        call = calls.run(
            name,
            input,
            "sync",
            execution_id,
            parent=parent,
            token=self.session_token,
            traceparent=traceparent,
        )
        return await self.client.send(call)
