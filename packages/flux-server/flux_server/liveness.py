"""What a lost process leaves behind, taken back.

- A lost worker: one silent longer than the heartbeat timeout is declared dead, its stream
  is closed and its executions go back to the queue (fenced by a new generation), to be
  replayed elsewhere from their stored events.
- A lost server: a parent paused by its subworkflows is resumed in the transaction after the
  one that finished its last child, on PostgreSQL's one-statement checkpoint; a server that
  ended between the two left it paused. Every replica looks for such parents when it starts
  and every :data:`PARENTS_EVERY` seconds (normally finding none).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from flux.domain import utcnow

from flux_server.store import ExecutionStore, WorkerStore

__all__ = ["PARENTS_EVERY", "Liveness"]

log = logging.getLogger(__name__)

PARENTS_EVERY = 60.0
"""Seconds between two looks for parents left paused (the first is at start)."""


class Liveness:
    def __init__(
        self,
        workers: WorkerStore,
        executions: ExecutionStore,
        timeout: float,
        interval: float,
    ) -> None:
        self._workers = workers
        self._executions = executions
        self._timeout = timeout
        self._interval = interval
        self._parents_due = 0.0
        """When (monotonic) to look for parents left paused next."""

    async def run(self) -> None:
        while True:
            await _guarded(self.check_parents, "looking for parents left paused")
            await asyncio.sleep(self._interval)
            await _guarded(self.check_once, "heartbeat check")

    async def check_once(self) -> list[str]:
        expired = await self._workers.expire(utcnow() - timedelta(seconds=self._timeout))
        for name in expired:
            log.warning(
                "worker %r sent no heartbeat for %.1fs: declared dead, its executions requeued",
                name,
                self._timeout,
            )
        return expired

    async def check_parents(self) -> list[str]:
        """Resume parents left paused, when due; the ids resumed."""
        if time.monotonic() < self._parents_due:
            return []
        self._parents_due = time.monotonic() + PARENTS_EVERY
        resumed = await self._executions.continue_stranded_parents()
        if resumed:
            log.warning(
                "%d parent execution(s) left paused after their subworkflows finished "
                "(a server ended between two transactions): resumed %s",
                len(resumed),
                ", ".join(resumed[:10]),
            )
        return resumed


async def _guarded(check: Callable[[], Awaitable[object]], what: str) -> None:
    """Run ``check``; a failure is logged, and the next round tries again."""
    try:
        await check()
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("%s failed; retrying", what)
