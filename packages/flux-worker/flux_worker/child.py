"""Subprocess isolation, the child's side: ``python -m flux_worker.child`` runs one execution.

It reads a :class:`~flux_worker.pipe.Header` from stdin, replays and runs the workflow exactly
as the in-process worker does, and speaks the messages of :mod:`flux_worker.pipe` with its
worker (:mod:`flux_worker.isolation` is the other side): events to checkpoint, flushes,
secrets, the end of the run. What the workflow prints goes to stderr.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, TypeVar

from flux import logs
from flux.context import ExecutionContext
from flux.domain import ExecutionEvent
from flux.errors import NonDeterminismError, SecretNotFoundError
from flux.observability import context_of, trace_id_of, tracer_provider, tracing_requested
from flux.protocol.events import EventRecord
from flux.runner import WorkflowRun

from flux_worker import pipe
from flux_worker.contexts import context_from_claim, failed_context
from flux_worker.modules import ModuleCache
from flux_worker.services import ExecutionServices

if TYPE_CHECKING:
    from flux.client import AsyncFluxClient, AsyncWorkerChannel, Call
    from flux.protocol import ExecutionStatus
    from flux.tasks.progress import Progress

__all__ = ["main"]

T = TypeVar("T")


class _Pipe:
    """Writes messages to the worker, and dispatches the worker's replies read from stdin."""

    def __init__(self, reader: asyncio.StreamReader, out: IO[bytes]) -> None:
        self.reader = reader
        self.out = out
        self.waiters: dict[int, asyncio.Future[pipe.Flushed | pipe.Secrets]] = {}
        self.counter = 0
        self.on_cancel: Callable[[], None] | None = None

    def send(self, message: pipe.ChildMessage) -> None:
        self.out.write(pipe.encode(message))
        self.out.flush()

    def progress(self, item: Progress) -> None:
        self.send(pipe.Progress(task=item.task, value=item.value, timestamp=item.timestamp))

    def next_id(self) -> int:
        self.counter += 1
        return self.counter

    async def request(self, message: pipe.Flush | pipe.GetSecrets) -> pipe.Flushed | pipe.Secrets:
        future: asyncio.Future[pipe.Flushed | pipe.Secrets] = (
            asyncio.get_running_loop().create_future()
        )
        self.waiters[message.id] = future
        self.send(message)
        return await future

    async def listen(self) -> None:
        while line := await self.reader.readline():
            message = pipe.read_parent_message(line)
            if isinstance(message, pipe.Cancel):
                if self.on_cancel is not None:
                    self.on_cancel()
                continue
            future = self.waiters.pop(message.id, None)
            if future is not None and not future.done():
                future.set_result(message)
        for future in self.waiters.values():  # the worker went away
            if not future.done():
                future.set_exception(ConnectionError("the worker closed the pipe"))

    async def secrets(self, names: list[str]) -> dict[str, Any]:
        reply = await self.request(pipe.GetSecrets(id=self.next_id(), names=names))
        assert isinstance(reply, pipe.Secrets)
        if reply.error is not None or reply.secrets is None:
            raise SecretNotFoundError(reply.error or "no secrets in the worker's answer")
        return dict(reply.secrets)


class _PipeCheckpointer:
    """The Checkpointer of the child's run: the worker's outbox stores the events."""

    def __init__(self, pipe_: _Pipe, serializer: str) -> None:
        self.pipe = pipe_
        self.serializer = serializer

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        records = [EventRecord.from_event(e, self.serializer) for e in events]
        self.pipe.send(pipe.Events(events=records))

    async def flush(self) -> None:
        await self.pipe.request(pipe.Flush(id=self.pipe.next_id()))

    async def finish(self, ctx: ExecutionContext[Any]) -> None:
        await self.flush()


class _Client:
    """The child's client for subworkflow calls, opened on first use (most runs make none,
    and a child should start fast); they go out with its worker's session."""

    def __init__(self, header: pipe.Header) -> None:
        self.header = header
        self.client: AsyncFluxClient | None = None

    def _channel(self) -> AsyncWorkerChannel:
        if self.client is None:
            from flux.client import AsyncFluxClient

            self.client = AsyncFluxClient(self.header.server_url)
        return self.client.worker(self.header.worker_name, self.header.session_token)

    async def run_child(self, name: str, input: Any, execution_id: str) -> ExecutionStatus:
        header = self.header
        return await self._channel().run_child(
            name,
            input,
            execution_id=execution_id,
            parent=header.claim.execution_id,
            traceparent=header.traceparent,
        )

    async def send(self, call: Call[T]) -> T:
        return await self._channel().send(call)

    async def aclose(self) -> None:
        if self.client is not None:
            await self.client.aclose()


async def _main(out: IO[bytes]) -> int:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    header = pipe.read_header(await reader.readline())
    claim = header.claim
    _continue_trace(header.traceparent)
    logs.bind(claim.execution_id, trace_id_of(header.traceparent))
    channel = _Pipe(reader, out)
    listener = loop.create_task(channel.listen())
    checkpointer = _PipeCheckpointer(channel, header.serializer)
    try:
        wf = ModuleCache().load(
            claim.workflow_name, claim.workflow_version, claim.source_hash, claim.source
        )
        ctx = context_from_claim(claim)
    except Exception as exc:  # the source does not load, the history does not read back
        print(f"execution {claim.execution_id} cannot run: {exc}", file=sys.stderr)
        failed = failed_context(claim, exc)
        checkpointer.save(failed, failed.events)
        await checkpointer.finish(failed)
        channel.send(pipe.Done())
        listener.cancel()
        return 0
    client = _Client(header)
    services = ExecutionServices(
        channel.secrets, client, home=header.home, serializer=header.serializer
    )
    wf_run = WorkflowRun(wf, ctx, checkpointer, services, channel.progress)
    channel.on_cancel = wf_run.cancel
    code = 0
    try:
        await wf_run.execute()
    except NonDeterminismError as exc:
        channel.send(pipe.NonDeterminism(message=str(exc)))
        code = 3
    finally:
        await client.aclose()
    channel.send(pipe.Done())
    listener.cancel()
    return code


def _continue_trace(traceparent: str | None) -> None:
    """Make the worker's segment the current span, so that spans the task code makes are its
    children (exported by this process's own provider, flushed when it exits)."""
    if traceparent is None or not tracing_requested():
        return
    if tracer_provider("flux-worker", make_global=True) is not None:
        from opentelemetry import context

        parent = context_of(traceparent)
        if parent is not None:
            context.attach(parent)


def main() -> None:
    # The pipe gets its own copy of stdout; fd 1 then points at stderr, so whatever the
    # workflow prints cannot corrupt the messages.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    raise SystemExit(asyncio.run(_main(out)))


if __name__ == "__main__":
    main()
