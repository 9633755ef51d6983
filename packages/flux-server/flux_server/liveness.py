"""Heartbeat expiry: a worker silent longer than the heartbeat timeout is declared dead, its
stream is closed and its executions go back to the queue (fenced by a new generation), to be
replayed elsewhere from their stored events."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from flux.domain import utcnow

from flux_server.store import WorkerStore

__all__ = ["Liveness"]

log = logging.getLogger(__name__)


class Liveness:
    def __init__(self, workers: WorkerStore, timeout: float, interval: float) -> None:
        self._workers = workers
        self._timeout = timeout
        self._interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("heartbeat check failed; retrying")

    async def check_once(self) -> list[str]:
        expired = await self._workers.expire(utcnow() - timedelta(seconds=self._timeout))
        for name in expired:
            log.warning(
                "worker %r sent no heartbeat for %.1fs: declared dead, its executions requeued",
                name,
                self._timeout,
            )
        return expired
