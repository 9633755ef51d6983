"""Subprocess isolation, the worker's side: one execution per child process.

With ``isolation = "subprocess"`` the worker runs each execution in ``python -m
flux_worker.child`` (:mod:`flux_worker.child` is the other side) and speaks the messages of
:mod:`flux_worker.pipe` with it. The worker keeps the session, the outbox and the server
connection, so a crash of the child (a segfault in a native library, memory exhaustion) costs
only that execution's current attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux.errors import FluxError, NonDeterminismError
from flux.protocol.claims import ClaimResponse
from flux.tasks.progress import Progress

from flux_worker import pipe
from flux_worker import resources as res
from flux_worker.outbox import FencedError, Outbox
from flux_worker.services import SecretSource

if TYPE_CHECKING:
    from flux_worker.tracing import Segment

__all__ = ["ChildCrashed", "ChildRun"]


class ChildCrashed(FluxError):
    """The child process exited before its run ended (the execution is released)."""

    code = "child_crashed"


class ChildRun:
    """An execution run by a child process: the worker's end of the pipe.

    Args:
        claim: what to run (its history undecoded: the child decodes it).
        outbox: where the child's events go.
        gpus: the GPUs the child may see (``[]``: all of them).
        secrets: secret values for this execution, asked for by the child.
        serializer, home, server_url: as the worker has them.
        session: the worker's name and session token, for the child's subworkflow calls.
        segment: the run's spans when the worker traces: it is shown the child's events, and
            the child continues its trace.
        on_progress: where the progress the child's tasks publish goes.
    """

    def __init__(
        self,
        claim: ClaimResponse,
        outbox: Outbox,
        gpus: list[int],
        secrets: SecretSource,
        *,
        serializer: str,
        home: str | Path,
        server_url: str,
        session: tuple[str, str],
        segment: Segment | None = None,
        on_progress: Callable[[Progress], Awaitable[None] | None] | None = None,
    ) -> None:
        self.claim = claim
        self.on_progress = on_progress
        self.outbox = outbox
        self.gpus = gpus
        self.secrets = secrets
        self.segment = segment
        self.header = pipe.Header(
            claim=claim,
            serializer=serializer,
            home=str(home),
            server_url=server_url,
            worker_name=session[0],
            session_token=session[1],
            traceparent=claim.traceparent if segment is None else segment.traceparent,
        )
        self.proc: asyncio.subprocess.Process | None = None
        self._cancel_requested = False
        self._replies: set[asyncio.Task[None]] = set()

    def cancel(self) -> None:
        self._cancel_requested = True
        self._send(pipe.Cancel())

    async def execute(self) -> None:
        """Run the child to its end and flush what it recorded.

        Raises:
            NonDeterminismError: the child's run diverged from its history.
            ChildCrashed: the child exited before its run ended.
            FencedError: the execution was given to someone else meanwhile.
        """
        self.proc = proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flux_worker.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **res.gpu_env(self.gpus)} if self.gpus else None,
        )
        assert proc.stdout is not None
        self._send(self.header)
        if self._cancel_requested:
            self._send(pipe.Cancel())
        done = False
        nondeterminism: str | None = None
        try:
            while line := await proc.stdout.readline():
                match pipe.read_child_message(line):
                    case pipe.Events(events=events):
                        self.outbox.enqueue(events)
                        if self.segment is not None:
                            self.segment.observe(events)
                    case pipe.Flush(id=request_id):
                        self._reply(self._flushed(request_id))
                    case pipe.GetSecrets() as request:
                        self._reply(self._secrets(request))
                    case pipe.NonDeterminism(message=message):
                        nondeterminism = message
                    case pipe.Progress() as published:
                        await self._progress(published)
                    case pipe.Done():
                        done = True
            await proc.wait()
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if nondeterminism is not None:
            raise NonDeterminismError(nondeterminism)
        if not done:
            raise ChildCrashed(
                f"the child process of execution {self.claim.execution_id} exited with "
                f"{proc.returncode} before the run ended"
            )
        await self.outbox.flush()

    async def _progress(self, published: pipe.Progress) -> None:
        """Hand a value the child published on; the child's next messages (its checkpoints)
        wait until it is delivered, so they cannot overtake it."""
        if self.on_progress is None:
            return
        item = Progress(
            self.claim.execution_id, published.task, published.value, published.timestamp
        )
        delivered = self.on_progress(item)
        if delivered is not None:
            await delivered

    def _send(self, message: pipe.Header | pipe.ParentMessage) -> None:
        proc = self.proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(pipe.encode(message))

    def _reply(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._replies.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._replies.discard)

    async def _flushed(self, request_id: int) -> None:
        with contextlib.suppress(FencedError):
            await self.outbox.flush()
        self._send(pipe.Flushed(id=request_id))

    async def _secrets(self, request: pipe.GetSecrets) -> None:
        try:
            secrets = await self.secrets(request.names)
        except FluxError as exc:
            self._send(pipe.Secrets(id=request.id, error=str(exc)))
        else:
            self._send(pipe.Secrets(id=request.id, secrets=secrets))
