"""Garbage-collector settings for Flux's long-running processes (server, worker)."""

from __future__ import annotations

import gc

__all__ = ["settle_startup_objects"]


def settle_startup_objects() -> None:
    """Call once start-up has imported everything.

    Replaying a long history allocates tens of thousands of objects per request; with the
    default thresholds each burst sets off collections that rescan every object of the
    process, modules included. Start-up objects are frozen out of those scans, and the
    youngest generation is collected every 10,000 allocations instead of 700 (the effect on
    a long resume is in docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)
