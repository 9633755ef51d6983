"""Flux worker: claims executions from a Flux server and runs them.

``Worker`` loads on first use, so that a child process (``python -m flux_worker.child``), which
never needs it, starts without the worker's modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flux_worker.worker import Worker

__all__ = ["Worker"]


def __getattr__(name: str) -> Any:
    if name == "Worker":
        from flux_worker.worker import Worker

        return Worker
    raise AttributeError(f"module 'flux_worker' has no attribute {name!r}")
