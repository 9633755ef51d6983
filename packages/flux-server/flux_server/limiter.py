"""Failed authentications, counted per client address: past a limit, the address is told to
wait (HTTP 429 with ``Retry-After``) instead of having its guesses checked.

Only failures are counted, so callers with good credentials never pay for it. The count is per
process (each replica keeps its own), in a fixed window that starts at an address's first
failure.
"""

from __future__ import annotations

import math
import time

__all__ = ["FailureLimiter"]

_MAX_ADDRESSES = 10_000
"""Addresses remembered at most; past that, windows that ended are forgotten first."""


class FailureLimiter:
    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._clock = time.monotonic
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window start, count)

    def __bool__(self) -> bool:
        """Whether any address has failures counted (if none, none waits)."""
        return bool(self._failures)

    def retry_after(self, address: str) -> int | None:
        """Seconds ``address`` must wait before its credentials are checked again; ``None``
        when they are checked now."""
        entry = self._failures.get(address)
        if entry is None:
            return None
        start, count = entry
        left = start + self.window - self._clock()
        if left <= 0:
            del self._failures[address]
            return None
        return max(1, math.ceil(left)) if count >= self.limit else None

    def failed(self, address: str) -> None:
        """Count one failed authentication from ``address``."""
        now = self._clock()
        start, count = self._failures.get(address, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        elif address not in self._failures and len(self._failures) >= _MAX_ADDRESSES:
            self._forget_ended(now)
        self._failures[address] = (start, count + 1)

    def _forget_ended(self, now: float) -> None:
        ended = [a for a, (start, _) in self._failures.items() if now - start >= self.window]
        for address in ended:
            del self._failures[address]
        if len(self._failures) >= _MAX_ADDRESSES:  # all still counting: drop the oldest
            oldest = min(self._failures, key=lambda a: self._failures[a][0])
            del self._failures[oldest]
