"""A registered worker's side of the protocol, blocking: :class:`WorkerChannel`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from flux.client import _calls as calls
from flux.protocol import (
    CheckpointBatchResponse,
    CheckpointItem,
    CheckpointResponse,
    ClaimBatchResponse,
    ClaimResponse,
    EventRecord,
    HeartbeatResponse,
    LeaveResponse,
    OutputRecord,
    ReleaseResponse,
    WorkerFrame,
    WorkerResources,
)

if TYPE_CHECKING:
    from flux.client._sync import FluxClient

__all__ = ["WorkerChannel"]


class WorkerChannel:
    """Blocking twin of :class:`flux.client.AsyncWorkerChannel`."""

    def __init__(self, client: FluxClient, name: str, session_token: str) -> None:
        self.client = client
        self.name = name
        self.session_token = session_token

    def connect(self, *, push: bool = False, decode_history: bool = False) -> Iterator[WorkerFrame]:
        """See :meth:`AsyncWorkerChannel.connect`."""
        call = calls.connect(self.name, self.session_token, push)
        return self.client.events(call, calls.worker_frame_parser(decode_history))

    def claim(self, execution_id: str, *, decode_history: bool = False) -> ClaimResponse:
        """Take an offered execution on its own (its history comes as records, in ``events``)."""
        call = calls.claim(self.name, self.session_token, execution_id, decode_history)
        return self.client.send(call)

    def claims(
        self,
        execution_ids: Sequence[str],
        known_sources: Sequence[str] = (),
        *,
        decode_history: bool = False,
    ) -> ClaimBatchResponse:
        """See :meth:`AsyncWorkerChannel.claims`."""
        call = calls.claims(
            self.name, self.session_token, execution_ids, known_sources, decode_history
        )
        return self.client.send(call)

    def checkpoint(
        self,
        execution_id: str,
        generation: int,
        events: Sequence[EventRecord] = (),
        output: OutputRecord | None = None,
    ) -> CheckpointResponse:
        call = calls.checkpoint(
            self.name, self.session_token, execution_id, generation, events, output
        )
        return self.client.send(call)

    def checkpoints(self, items: Sequence[CheckpointItem]) -> CheckpointBatchResponse:
        """Checkpoints of several held executions in one request; each item is fenced alone
        (a stale one comes back with ``error.code == "conflict"``)."""
        call = calls.checkpoints(self.name, self.session_token, items)
        return self.client.send(call)

    def release(
        self, execution_id: str, generation: int, reason: str | None = None
    ) -> ReleaseResponse:
        call = calls.release(self.name, self.session_token, execution_id, generation, reason)
        return self.client.send(call)

    def heartbeat(
        self, resources: WorkerResources | None = None, running: Sequence[str] | None = None
    ) -> HeartbeatResponse:
        call = calls.heartbeat(self.name, self.session_token, resources, running)
        return self.client.send(call)

    def leave(self) -> LeaveResponse:
        return self.client.send(calls.leave(self.name, self.session_token))

    def get_secrets(self, execution_id: str, names: Sequence[str]) -> dict[str, Any]:
        call = calls.get_secrets(self.name, self.session_token, execution_id, names)
        return self.client.send(call).secrets
