"""Flux: durable workflows in plain async Python.

``@task`` and ``@workflow`` make async functions durable: every step is recorded, and a
crashed or paused execution resumes by replaying its log without redoing finished work.
"""

from typing import Any

from flux.context import ExecutionContext
from flux.domain import EventType, ExecutionEvent, ExecutionState
from flux.errors import (
    ExecutionError,
    ExecutionNotFoundError,
    ExecutionStateError,
    FluxError,
    NonDeterminismError,
    UsageError,
)
from flux.task import TaskMetadata, task
from flux.workflow import workflow

__version__ = "0.1.0"

__all__ = [
    "Configuration",
    "EventType",
    "ExecutionContext",
    "ExecutionError",
    "ExecutionEvent",
    "ExecutionNotFoundError",
    "ExecutionState",
    "ExecutionStateError",
    "FluxError",
    "NonDeterminismError",
    "ResourceRequest",
    "TaskMetadata",
    "UsageError",
    "__version__",
    "call",
    "cron",
    "interval",
    "once",
    "task",
    "workflow",
]

_LAZY = {
    "call": "flux.tasks.subworkflow",
    "cron": "flux.schedules",
    "interval": "flux.schedules",
    "once": "flux.schedules",
    "Configuration": "flux.config",
    "ResourceRequest": "flux.protocol.workflows",
}


def __getattr__(name: str) -> Any:
    # Schedules pull croniter, configuration pydantic-settings and ResourceRequest the
    # protocol's models: load them on first use so that `import flux` stays cheap.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'flux' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
