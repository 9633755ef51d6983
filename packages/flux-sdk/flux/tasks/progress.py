"""Progress: ephemeral values a running task publishes to whoever watches its execution.

``await progress(value)`` is not a step of the workflow: nothing is recorded, replay publishes
nothing again, and a value nobody listens to is dropped. Local runs hand each value to the
``on_progress`` callback of ``workflow.run``; on a worker it goes to the server, which sends
it to every open stream of the execution as a ``task.progress`` frame.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flux._runtime import Run, current_run, current_scope
from flux.domain import MAX_PROGRESS_BYTES, utcnow
from flux.errors import UsageError

__all__ = ["MAX_PROGRESS_BYTES", "Progress", "progress"]


@dataclass(frozen=True, slots=True)
class Progress:
    """One published value: what an ``on_progress`` callback receives, and what a
    ``task.progress`` frame carries."""

    execution_id: str
    task: str
    """The name of the task that published it (the workflow's, from the workflow body)."""
    value: Any
    timestamp: datetime


async def progress(value: Any) -> None:
    """Publish ``value`` (JSON: dicts, lists, strings, numbers, booleans, None) as progress of
    the running task. Outside a workflow, or while the body replays recorded calls, it does
    nothing. On a worker it returns once the server has the value (or has said nobody
    watches), so what the task does next reaches the execution's streams after it.

    Raises:
        UsageError: ``value`` is not JSON, or is larger than 64 KiB as JSON.
    """
    run = current_run.get()
    if run is None:
        return
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise UsageError(
            f"progress({value!r:.80}): the value must be JSON (dicts, lists, strings, numbers, "
            "booleans, None)"
        ) from None
    size = len(text.encode())
    if size > MAX_PROGRESS_BYTES:
        raise UsageError(
            f"progress(...): the value is {size} bytes as JSON, over the limit of "
            f"{MAX_PROGRESS_BYTES} (64 KiB); publish less at a time"
        )
    sink = run.on_progress
    scope = current_scope.get()
    if sink is None or _replaying(run, scope):
        return
    task = scope.split(":", 1)[0] if ":" in scope else run.ctx.workflow_name
    delivered = sink(Progress(run.ctx.execution_id, task, value, utcnow()))
    if delivered is not None:
        # A worker's sink answers once the server has it: what the task records next
        # cannot overtake it on the way to the execution's streams.
        await delivered


def _replaying(run: Run, scope: str) -> bool:
    """Whether the calls made in ``scope`` so far are still the recorded ones: a value
    published there was published when they first ran."""
    recorded = run.order.get(scope)
    return recorded is not None and run.cursors.get(scope, 0) < len(recorded)
