"""Jittered exponential backoff, shared by reconnects, registration and checkpoint retries."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]

# 2**32 times any base is far past any cap: a longer outage must not grow the exponent until
# the float conversion overflows.
_MAX_EXPONENT = 32


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first): ``base`` doubled per
    attempt up to ``cap``, times a random factor in [0.5, 1] so that workers that failed
    together do not retry together."""
    return min(cap, base * 2 ** min(attempt, _MAX_EXPONENT)) * random.uniform(0.5, 1.0)
