"""A per-execution checkpoint outbox: the worker's Checkpointer.

``save`` encodes events at once (so later mutation cannot change what is sent) and queues
them; one sender task per execution posts them in order, batching whatever queued while the
previous request was in flight. Transport failures retry with jittered backoff and resend the
same event ids (the server merges idempotently). A 409 means the execution was claimed again
elsewhere: the outbox is fenced, drops what it holds and tells the worker to abandon the run.
``finish`` returns once the server acknowledged everything, the terminal checkpoint included.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

from flux.context import ExecutionContext
from flux.domain import FINISHED_STATES, ExecutionEvent, ExecutionState
from flux.errors import ApiError, ConflictError
from flux.protocol.events import EventRecord, OutputRecord

__all__ = ["FencedError", "Outbox"]

log = logging.getLogger("flux.worker")

MAX_BATCH = 5_000
# Refusals that resending cannot fix; everything else (unreachable = status 0, 401 while the
# worker registers again, 5xx, 429) is retried.
_FATAL = frozenset({400, 403, 404, 413, 422, 426})


class FencedError(BaseException):
    """The server gave this execution to someone else; this copy must stop writing.

    A BaseException, like cancellation: a task's ``except Exception`` (or its fallback and
    rollback handling) must never treat losing the execution as a task failure.
    """


class Outbox:
    def __init__(
        self,
        channel: Callable[[], Any],
        execution_id: str,
        generation: int,
        serializer: str = "pkl",
        on_fenced: Callable[[], None] | None = None,
        max_backoff: float = 5.0,
    ) -> None:
        self.channel = channel
        self.execution_id = execution_id
        self.generation = generation
        self.serializer = serializer
        self.on_fenced = on_fenced
        self.max_backoff = max_backoff
        self._queue: list[EventRecord] = []
        self._output: OutputRecord | None = None
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._sender: asyncio.Task[None] | None = None
        self.fenced = False
        self.closed = False
        self.state: ExecutionState | None = None

    # -- Checkpointer --------------------------------------------------------------------------

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        if self.fenced:
            raise FencedError(
                f"execution {self.execution_id} was claimed again elsewhere; "
                "this worker stopped writing it"
            )
        fmt = self.serializer
        self._queue.extend(EventRecord.from_event(e, fmt) for e in events)
        if ctx.state in FINISHED_STATES and any(e.type.is_workflow for e in events):
            self._output = OutputRecord.from_value(ctx.output, fmt)
        self._idle.clear()
        self._wake.set()
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def flush(self) -> None:
        """Wait until the server acknowledged everything saved so far."""
        await self._idle.wait()
        if self.fenced:
            raise FencedError(f"execution {self.execution_id} was claimed again elsewhere")

    async def finish(self, ctx: ExecutionContext[Any]) -> None:
        if self._sender is None:
            return
        await self._idle.wait()
        self.closed = True
        self._sender.cancel()
        if self.fenced:
            raise FencedError(f"execution {self.execution_id} was claimed again elsewhere")

    def abandon(self) -> None:
        """Drop everything queued and stop sending (the execution is no longer ours)."""
        self.fenced = True
        self._queue.clear()
        self._idle.set()
        if self._sender is not None:
            self._sender.cancel()

    # -- sending -------------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        attempt = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                output = self._output if len(batch) == len(self._queue) else None
                try:
                    response = await self.channel().checkpoint(
                        self.execution_id, self.generation, batch, output
                    )
                except ConflictError as exc:
                    log.warning("execution %s fenced: %s", self.execution_id, exc)
                    self.abandon()
                    if self.on_fenced is not None:
                        self.on_fenced()
                    return
                except (ApiError, OSError) as exc:
                    if isinstance(exc, ApiError) and exc.status_code in _FATAL:
                        log.error("checkpoint of %s refused: %s", self.execution_id, exc)
                        self.abandon()
                        if self.on_fenced is not None:
                            self.on_fenced()
                        return
                    attempt += 1
                    delay = min(self.max_backoff, 0.05 * 2**attempt) * random.uniform(0.5, 1.0)
                    log.info(
                        "checkpoint of %s failed (%s); retry in %.2fs",
                        self.execution_id,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                attempt = 0
                del self._queue[: len(batch)]
                if output is not None:
                    self._output = None
                self.state = response.state
            self._idle.set()
