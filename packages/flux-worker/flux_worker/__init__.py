"""Flux worker: claims executions from a Flux server and runs them in-process."""

from flux_worker.worker import Worker

__all__ = ["Worker"]
