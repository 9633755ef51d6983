"""Helpers for the worker's unit tests: a :class:`Server` handle with executions claimed from
it, encoded events and a :class:`Recording` of the real channel's checkpoint requests. Waits
come from :mod:`tests.support.waiting`.

A module of its own (not ``conftest``) so test modules can import it by a unique name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from flux.client import AsyncFluxClient, AsyncWorkerChannel
from flux.domain import EventType, ExecutionEvent, ExecutionState
from flux.protocol import (
    CheckpointBatchResponse,
    CheckpointItem,
    ClaimResponse,
    EventRecord,
    HistoryColumns,
    RegisterWorkerRequest,
)
from flux_server import ServerOptions

BOOTSTRAP = "test-bootstrap-token"
FLOWS = b"""
from flux import workflow

@workflow
async def hello(ctx):
    return ctx.input
"""


@dataclass
class Server:
    """The in-process server and its client."""

    client: AsyncFluxClient
    options: ServerOptions

    async def worker(self, name: str = "w1", capacity: int = 64) -> AsyncWorkerChannel:
        """A registered worker's channel (no stream: claims are taken by request)."""
        session = await self.client.register_worker(
            RegisterWorkerRequest(name=name, capacity=capacity), bootstrap_token=BOOTSTRAP
        )
        return self.client.worker(session.name, session.session_token)

    async def claims(self, channel: AsyncWorkerChannel, n: int) -> list[ClaimResponse]:
        """``n`` new executions of ``hello``, claimed for ``channel``'s worker."""
        runs = [await self.client.run("hello", i) for i in range(n)]
        answer = await channel.claims([r.execution_id for r in runs])
        claims = [r.claim for r in answer.results if r.claim is not None]
        assert len(claims) == n, answer
        return claims

    async def history(self, execution_id: str) -> list[EventRecord]:
        status = await self.client.status("hello", execution_id, detailed=True)
        return status.events or []

    async def state(self, execution_id: str) -> str:
        return str((await self.client.status("hello", execution_id)).state)


def record(
    value: Any = None, *, type: EventType = EventType.TASK_COMPLETED, n: int = 0
) -> EventRecord:
    """An encoded event of ``hello`` (a task's completion unless told otherwise)."""
    source = "hello" if type.name.startswith("WORKFLOW") else f"task_{n}"
    return EventRecord.from_event(ExecutionEvent(type, source, "hello", value), "json")


def columns(records: Sequence[EventRecord]) -> HistoryColumns:
    """``records`` column by column, as a claim carries a history."""
    return HistoryColumns(
        ids=[r.id for r in records],
        types=[r.type for r in records],
        source_ids=[r.source_id for r in records],
        names=[r.name for r in records],
        scopes=[r.scope for r in records],
        times=[r.time.timestamp() for r in records],
        values=[r.value for r in records],
    )


@dataclass
class Recording:
    """The worker's real channel, seen from the side: each request's items, how many requests
    are on the wire at once, and failures injected before the real call."""

    channel: AsyncWorkerChannel
    requests: list[list[CheckpointItem]] = field(default_factory=list)
    failures: list[BaseException] = field(default_factory=list)
    """Raised, in order, by the next requests instead of sending them."""
    in_flight: set[str] = field(default_factory=set)
    most_in_flight: int = 0
    """The most requests that were on the wire at the same time."""
    overlapped: list[str] = field(default_factory=list)
    """Executions that had two batches on the wire at once (must stay empty)."""
    _concurrent: int = 0
    before: Callable[[], Awaitable[None]] | None = None
    """Awaited after a request is recorded, before it is sent (a slow network)."""

    async def checkpoints(self, items: Sequence[CheckpointItem]) -> CheckpointBatchResponse:
        ids = [item.execution_id for item in items]
        self.requests.append(list(items))
        self.overlapped += [i for i in ids if i in self.in_flight]
        self.in_flight.update(ids)
        self._concurrent += 1
        self.most_in_flight = max(self.most_in_flight, self._concurrent)
        try:
            if self.before is not None:
                await self.before()
            if self.failures:
                raise self.failures.pop(0)
            return await self.channel.checkpoints(items)
        finally:
            self._concurrent -= 1
            self.in_flight.difference_update(ids)

    def event_ids(self, execution_id: str) -> list[list[str]]:
        """The event ids each request carried for ``execution_id``."""
        return [
            [e.id for e in item.events]
            for request in self.requests
            for item in request
            if item.execution_id == execution_id
        ]


def claim(**fields: Any) -> ClaimResponse:
    """A claim of execution ``e1`` of ``hello`` (generation 1, no history), with ``fields``
    in place of those."""
    defaults: dict[str, Any] = {
        "execution_id": "e1",
        "generation": 1,
        "workflow_id": "wf",
        "workflow_name": "hello",
        "workflow_version": 1,
        "source": "",
        "source_hash": "ab" * 32,
        "input": None,
        "events": [],
        "state": ExecutionState.CLAIMED,
    }
    return ClaimResponse(**{**defaults, **fields})
