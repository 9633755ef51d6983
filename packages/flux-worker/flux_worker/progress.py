"""Progress from a worker's executions to the server (protocol 1.10), batched per execution.

What a task publishes (``flux.tasks.progress``) is queued here; one request per execution is
in flight at a time and takes everything queued meanwhile, in order. The task waits until the
request that carries its value is answered (at most :data:`WAIT_SECONDS`), so what it records
next cannot reach the server, and the execution's streams, before its progress. Progress is
ephemeral: a failed request drops its batch, nothing is retried, and while the server says
nobody watches the execution, what it publishes is dropped here for :data:`QUIET_SECONDS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from flux.protocol import ProgressItem

if TYPE_CHECKING:
    from flux.client import AsyncWorkerChannel
    from flux.tasks.progress import Progress

__all__ = ["MAX_BATCH", "MAX_PENDING", "QUIET_SECONDS", "WAIT_SECONDS", "ProgressSender"]

log = logging.getLogger("flux.worker")

MAX_BATCH = 64
"""Values per request (each at most 64 KiB: a request stays within a few MiB)."""
MAX_PENDING = 1024
"""Values queued for one execution while its request is in flight; more are dropped."""
QUIET_SECONDS = 1.0
"""How long an execution's progress is dropped after the server said nobody watches it."""
WAIT_SECONDS = 5.0
"""The longest a task waits for its progress to be delivered before it goes on anyway."""


class _Pending:
    __slots__ = ("items", "quiet_until", "task", "waiters")

    def __init__(self) -> None:
        self.items: list[ProgressItem] = []
        self.waiters: list[asyncio.Future[None]] = []
        self.quiet_until = 0.0
        self.task: asyncio.Task[None] | None = None


class ProgressSender:
    """Posts the progress of this worker's executions.

    Args:
        channel: the worker's channel now (it changes when the worker registers again).
    """

    def __init__(self, channel: Callable[[], AsyncWorkerChannel]) -> None:
        self._channel = channel
        self._by_id: dict[str, _Pending] = {}

    def sink(self, execution_id: str) -> Callable[[Progress], Awaitable[None] | None]:
        """What a run of ``execution_id`` hands its progress to (``WorkflowRun(on_progress=)``)."""
        return lambda item: self.publish(execution_id, item)

    def publish(self, execution_id: str, item: Progress) -> Awaitable[None] | None:
        """Queue ``item``; what to await for it to be delivered (``None``: it was dropped)."""
        pending = self._by_id.get(execution_id)
        if pending is None:
            pending = self._by_id[execution_id] = _Pending()
        loop = asyncio.get_running_loop()
        if loop.time() < pending.quiet_until or len(pending.items) >= MAX_PENDING:
            return None
        pending.items.append(
            ProgressItem(task=item.task, value=item.value, timestamp=item.timestamp)
        )
        delivered = loop.create_future()
        pending.waiters.append(delivered)
        if pending.task is None:
            pending.task = loop.create_task(self._send(execution_id, pending))
        return _wait(delivered)

    def forget(self, execution_id: str) -> None:
        """The execution no longer runs here (what it queued last is still sent)."""
        self._by_id.pop(execution_id, None)

    async def _send(self, execution_id: str, pending: _Pending) -> None:
        try:
            while pending.items:
                batch, pending.items = pending.items[:MAX_BATCH], pending.items[MAX_BATCH:]
                waiters = pending.waiters[: len(batch)]
                del pending.waiters[: len(batch)]
                try:
                    answer = await self._channel().progress(execution_id, batch)
                except Exception as exc:  # ephemeral: dropped, not retried
                    log.debug("progress of execution %s dropped: %s", execution_id, exc)
                else:
                    if not answer.listening:
                        pending.quiet_until = asyncio.get_running_loop().time() + QUIET_SECONDS
                finally:
                    for waiter in waiters:
                        if not waiter.done():
                            waiter.set_result(None)
        finally:
            pending.task = None
            for waiter in pending.waiters:  # left behind by a cancelled send
                if not waiter.done():
                    waiter.set_result(None)
            pending.waiters.clear()


async def _wait(delivered: asyncio.Future[None]) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(delivered), WAIT_SECONDS)
