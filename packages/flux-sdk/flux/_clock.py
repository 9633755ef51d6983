"""The clock the engine reads: real time, or a virtual clock in tests (``flux.testing``)."""

from __future__ import annotations

import asyncio
from contextvars import ContextVar
from datetime import UTC, datetime


class Clock:
    """Real time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def timestamp(self) -> float:
        return self.now().timestamp()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


_REAL = Clock()
current_clock: ContextVar[Clock | None] = ContextVar("flux_clock", default=None)


def clock() -> Clock:
    return current_clock.get() or _REAL
