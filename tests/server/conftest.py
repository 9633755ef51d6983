"""Fixtures for the server tests: an in-process server on SQLite or PostgreSQL, a client, and
fake workers driven through :class:`flux.client.AsyncWorkerChannel`.

Tests wait on events or poll with a deadline (``eventually``); none sleeps to wait for state.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from flux.client import AsyncFluxClient, AsyncWorkerChannel
from flux.domain import EventType, ExecutionEvent
from flux.protocol import (
    ClaimResponse,
    ConnectedFrame,
    EventRecord,
    ExecutionCancelledFrame,
    ExecutionScheduledFrame,
    GpuInfo,
    OutputRecord,
    RegisterWorkerRequest,
    WorkerFrame,
    WorkerResources,
)
from flux_server import ServerOptions, create_app
from flux_server.runtime import Runtime
from flux_server.testing import serve_in_process

BOOTSTRAP = "test-bootstrap-token"
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TABLES = "events, executions, workers, workflows, secrets"

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


# -- databases ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at 127.0.0.1:5432 is unreachable: {exc}")
    name = f"flux_test_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"postgresql://postgres@127.0.0.1:5432/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _empty_pg(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('public.executions')").fetchone()
        if exists and exists[0] is not None:
            conn.execute(f"TRUNCATE {TABLES} CASCADE")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/db/flux.db"
    url: str = request.getfixturevalue("pg_database")
    _empty_pg(url)
    return url


# -- servers ------------------------------------------------------------------------------------


@dataclass
class Server:
    client: AsyncFluxClient
    options: ServerOptions
    runtime: Runtime
    workers: list[FakeWorker] = field(default_factory=list)

    async def worker(
        self,
        name: str = "w1",
        *,
        capacity: int = 4,
        resources: WorkerResources | None = None,
        connect: bool = True,
    ) -> FakeWorker:
        worker = FakeWorker(self.client, name, capacity, resources or cpu_box())
        await worker.register()
        if connect:
            await worker.connect()
        self.workers.append(worker)
        return worker

    async def register(self, source: bytes = HELLO) -> None:
        await self.client.register_workflows(source, filename="flows.py")


ServerFactory = Callable[..., Awaitable[Server]]


@pytest.fixture
def options(db_url: str, tmp_path: Path) -> ServerOptions:
    return ServerOptions(
        database_url=db_url,
        home=tmp_path / "home",
        bootstrap_token=BOOTSTRAP,
        encryption_key="test-encryption-key-material-0123456789",
        heartbeat_timeout=30.0,
        claim_timeout=30.0,
        sync_timeout=20.0,
        sse_keepalive=5.0,
        max_request_bytes=256 * 1024,
    )


@pytest.fixture
async def start_server(options: ServerOptions) -> AsyncIterator[ServerFactory]:
    """``await start_server(**option_overrides)`` -> a running :class:`Server`."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(**overrides: Any) -> Server:
            app = create_app(replace(options, **overrides))
            transport = await stack.enter_async_context(serve_in_process(app))
            client = await stack.enter_async_context(
                AsyncFluxClient("http://flux.test", transport=transport, timeout=30)
            )
            server = Server(client, app.state.runtime.options, app.state.runtime)
            stack.push_async_callback(_close_workers, server)
            return server

        yield start


async def _close_workers(server: Server) -> None:
    for worker in server.workers:
        await worker.close()


@pytest.fixture
async def server(start_server: ServerFactory) -> Server:
    return await start_server()


# -- fake workers -------------------------------------------------------------------------------


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


class FakeWorker:
    """A worker made of the real client: register, stream frames into a queue, claim, checkpoint."""

    def __init__(
        self, client: AsyncFluxClient, name: str, capacity: int, resources: WorkerResources
    ) -> None:
        self.client = client
        self.name = name
        self.capacity = capacity
        self.resources = resources
        self.channel: AsyncWorkerChannel | None = None
        self.frames: asyncio.Queue[WorkerFrame | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None

    @property
    def ch(self) -> AsyncWorkerChannel:
        assert self.channel is not None
        return self.channel

    async def register(self) -> None:
        session = await self.client.register_worker(
            RegisterWorkerRequest(name=self.name, capacity=self.capacity, resources=self.resources),
            bootstrap_token=BOOTSTRAP,
        )
        self.channel = self.client.worker(session.name, session.session_token)

    async def connect(self) -> None:
        self._reader = asyncio.create_task(self._read())
        first = await self.next_frame()
        assert isinstance(first, ConnectedFrame), first

    async def _read(self) -> None:
        try:
            async for frame in self.ch.connect():
                await self.frames.put(frame)
        finally:
            await self.frames.put(None)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None

    async def next_frame(self, timeout: float = 10) -> WorkerFrame | None:
        return await asyncio.wait_for(self.frames.get(), timeout)

    async def next_offer(self, timeout: float = 10) -> ExecutionScheduledFrame:
        while True:
            frame = await self.next_frame(timeout)
            if isinstance(frame, ExecutionScheduledFrame):
                return frame
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
        return await self.ch.claim(offer.execution_id)

    async def finish(self, claim: ClaimResponse, output: Any) -> None:
        """Run it to completion in one checkpoint: started + completed with ``output``."""
        await self.ch.checkpoint(
            claim.execution_id,
            claim.generation,
            [
                record(EventType.WORKFLOW_STARTED, name=claim.workflow_name),
                record(EventType.WORKFLOW_COMPLETED, output, name=claim.workflow_name),
            ],
            OutputRecord.from_value(output, "json"),
        )


async def eventually(
    check: Callable[[], Awaitable[Any]], timeout: float = 10, interval: float = 0.02
) -> Any:
    """Poll ``check`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(interval)
