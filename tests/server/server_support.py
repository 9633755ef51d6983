"""Helpers for the server tests: a :class:`Server` handle, fake workers made of the real client,
event records and a real worker in process. Waits come from :mod:`tests.support.waiting`.

A module of its own (not ``conftest``) so test modules can import it by a unique name.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from flux.client import AsyncFluxClient, AsyncWorkerChannel
from flux.domain import EventType, ExecutionEvent
from flux.errors import ApiError, ConflictError, NotFoundError, error_class
from flux.pauses import pause_value
from flux.protocol import (
    CheckpointItem,
    CheckpointResult,
    ClaimResponse,
    ConnectedFrame,
    ErrorBody,
    EventRecord,
    ExecutionCancelledFrame,
    ExecutionClaimedFrame,
    ExecutionScheduledFrame,
    GpuInfo,
    OutputRecord,
    PackageInfo,
    RegisterWorkerRequest,
    WorkerFrame,
    WorkerResources,
)
from flux_server import ServerOptions
from flux_server.runtime import Runtime

from tests.support.waiting import wait_until_async

JSON = {"content-type": "application/json"}
"""Headers of a request whose body is JSON (JSON endpoints refuse other bodies: 415)."""

BOOTSTRAP = "test-bootstrap-token"

HELLO = b"""
from flux import workflow

@workflow
async def hello(ctx):
    return f"Hello, {ctx.input}"
"""

GPU_FLOW = b"""
from flux import workflow

@workflow.with_options(requests={"gpu": 1, "memory": "1Gi"})
async def train(ctx):
    return "trained"
"""


@dataclass
class Server:
    """An in-process server: the real client, raw HTTP to the same app, its options and
    runtime, and the fake workers a test made."""

    client: AsyncFluxClient
    options: ServerOptions
    runtime: Runtime
    transport: httpx.AsyncBaseTransport
    """The in-process transport to the app, for clients of a test's own."""
    http: httpx.AsyncClient
    """Requests as the client sends them (protocol header included), for the ones it does not
    make: malformed bodies, other methods, raw answers."""
    workers: list[FakeWorker] = field(default_factory=list)

    async def worker(
        self,
        name: str = "w1",
        *,
        capacity: int = 4,
        resources: WorkerResources | None = None,
        connect: bool = True,
        packages: list[PackageInfo] | None = None,
        push: bool = False,
    ) -> FakeWorker:
        worker = FakeWorker(self.client, name, capacity, resources or cpu_box(), packages or [])
        worker.push = push
        await worker.register()
        if connect:
            await worker.connect()
        self.workers.append(worker)
        return worker

    async def register(self, source: bytes = HELLO) -> None:
        await self.client.register_workflows(source, filename="flows.py")


def cpu_box(cpus: int = 4) -> WorkerResources:
    return WorkerResources(
        cpu_count=cpus, memory_total=8 * 2**30, memory_available=6 * 2**30, disk_total=2**40
    )


def gpu_box() -> WorkerResources:
    box = cpu_box(16)
    return box.model_copy(
        update={"gpus": [GpuInfo(name="H100", memory_total=80 * 2**30, memory_free=80 * 2**30)]}
    )


def record(
    type: EventType, value: Any = None, *, name: str = "hello", source_id: str = "wf"
) -> EventRecord:
    return EventRecord.from_event(ExecutionEvent(type, source_id, name, value), "json")


def pause_events(name: str, source_id: str, data: Any = None, scope: str = "") -> list[EventRecord]:
    """A pause's two events as a run records them: its task started, then paused with
    ``data`` (``scope``: a branch's, as ``parallel`` gives them)."""
    started = record(EventType.TASK_STARTED, name, name="pause", source_id=source_id)
    paused = record(
        EventType.TASK_PAUSED, pause_value(name, data), name="pause", source_id=source_id
    )
    started.scope = paused.scope = scope
    return [started, paused]


class FakeWorker:
    """A worker made of the real client: register, stream frames into a queue, claim, checkpoint."""

    def __init__(
        self,
        client: AsyncFluxClient,
        name: str,
        capacity: int,
        resources: WorkerResources,
        packages: list[PackageInfo] | None = None,
    ) -> None:
        self.client = client
        self.name = name
        self.capacity = capacity
        self.resources = resources
        self.packages = packages or []
        self.channel: AsyncWorkerChannel | None = None
        self.frames: asyncio.Queue[WorkerFrame | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._beats: asyncio.Task[None] | None = None
        self.push = False
        """Connect asking for pushed claims (``execution.claimed``) instead of offers."""

    @property
    def ch(self) -> AsyncWorkerChannel:
        assert self.channel is not None
        return self.channel

    async def register(self) -> None:
        session = await self.client.register_worker(
            RegisterWorkerRequest(
                name=self.name,
                capacity=self.capacity,
                resources=self.resources,
                packages=self.packages,
            ),
            bootstrap_token=BOOTSTRAP,
        )
        self.channel = self.client.worker(session.name, session.session_token)

    async def connect(self) -> None:
        self._reader = asyncio.create_task(self._read())
        first = await self.next_frame()
        assert isinstance(first, ConnectedFrame), first

    async def _read(self) -> None:
        try:
            async for frame in self.ch.connect(push=self.push):
                await self.frames.put(frame)
        finally:
            await self.frames.put(None)

    def keep_alive(self, interval: float = 0.1) -> None:
        """Send heartbeats in the background, as a live worker does."""

        async def beat() -> None:
            while True:
                await self.ch.heartbeat()
                await asyncio.sleep(interval)  # the heartbeat period, not a wait for state

        self._beats = asyncio.create_task(beat())

    async def close(self) -> None:
        """Stop heartbeats and close the stream (the server sees a disconnect)."""
        for task in (self._beats, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._beats = self._reader = None
        self.frames = asyncio.Queue()  # a later connect() starts from its own frames

    async def next_frame(self, timeout: float = 10) -> WorkerFrame | None:
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def next_offer(self, timeout: float = 10) -> ExecutionScheduledFrame:
        while True:
            frame = await self.next_frame(timeout)
            if isinstance(frame, ExecutionScheduledFrame):
                return frame
            assert frame is not None, "stream closed"

    async def next_claimed(self, timeout: float = 10) -> ClaimResponse:
        """The next claim pushed on the stream (a worker connected with ``push``)."""
        while True:
            frame = await self.next_frame(timeout)
            if isinstance(frame, ExecutionClaimedFrame):
                return frame.claim
            assert frame is not None, "stream closed"

    async def next_cancel(self, timeout: float = 10) -> ExecutionCancelledFrame:
        while True:
            frame = await self.next_frame(timeout)
            if isinstance(frame, ExecutionCancelledFrame):
                return frame
            assert frame is not None, "stream closed"

    async def take(self, timeout: float = 10) -> ClaimResponse:
        """Wait for an offer and claim it."""
        offer = await self.next_offer(timeout)
        return await self.claim(offer.execution_id)

    async def claim(self, execution_id: str) -> ClaimResponse:
        """Claim one execution (a batch of one, history in columns).

        Raises:
            NotFoundError, ConflictError: its refusal, as the server gave it.
        """
        [result] = (await self.ch.claims([execution_id])).results
        if result.claim is None:
            raise refusal(result.error)
        return result.claim

    async def checkpoint(
        self,
        execution_id: str,
        generation: int,
        events: Sequence[EventRecord] = (),
        output: OutputRecord | None = None,
    ) -> CheckpointResult:
        """Checkpoint one execution (a batch of one).

        Raises:
            NotFoundError, ConflictError: its refusal, as the server gave it.
        """
        item = CheckpointItem(
            execution_id=execution_id, generation=generation, events=list(events), output=output
        )
        [result] = (await self.ch.checkpoints([item])).results
        if result.error is not None:
            raise refusal(result.error)
        return result

    async def finish(self, claim: ClaimResponse, output: Any) -> None:
        """Run it to completion in one checkpoint: started + completed with ``output``."""
        await self.checkpoint(
            claim.execution_id,
            claim.generation,
            [
                record(EventType.WORKFLOW_STARTED, name=claim.workflow_name),
                record(EventType.WORKFLOW_COMPLETED, output, name=claim.workflow_name),
            ],
            OutputRecord.from_value(output, "json"),
        )


_STATUSES = ((NotFoundError, 404), (ConflictError, 409))


def refusal(error: ErrorBody | None) -> ApiError:
    """The exception for an item a batch refused, as a request for that item alone raises it
    (the class its code names, with the status of that class)."""
    assert error is not None, "an item without a claim or state carries an error"
    named = error_class(error.code)
    cls = named if named is not None and issubclass(named, ApiError) else ApiError
    status = next((n for kind, n in _STATUSES if issubclass(cls, kind)), None)
    return cls(error.message, status, error_code=error.code, error_details=error.details)


@contextlib.asynccontextmanager
async def running_worker(client: AsyncFluxClient, **options: Any) -> AsyncIterator[Any]:
    """A real ``flux_worker.Worker`` named ``w1`` serving the in-process server behind
    ``client`` (``options`` go to ``Worker``), stopped and drained at the end."""
    from flux_worker import Worker

    worker = Worker("w1", "http://flux.test", BOOTSTRAP, home=".", client=client, **options)
    task = asyncio.create_task(worker.run())

    async def connected() -> bool:
        return any(w.connected for w in await client.list_workers())

    try:
        await wait_until_async(connected, what="the worker to connect")
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 60)
