"""Calling one workflow from another."""

from __future__ import annotations

import hashlib
from typing import Any

from flux._runtime import current_scope, require_run
from flux.domain import EventType
from flux.errors import ExecutionPaused, NonDeterminismError

__all__ = ["call"]


async def call(target: Any, input: Any = None) -> Any:
    """Run ``target`` (a workflow object, or a registered workflow's name on a server) as a
    child execution and return its output. The call is recorded like a task: replay returns
    the child's output without running it again, and a crash mid-child resumes the same child.
    """
    run = require_run("call()")
    name = target if isinstance(target, str) else target.name
    label = f"call:{name}"
    source_id, scope = run.identify(label, (input,), {})
    done = run.terminal.get(source_id)
    if done is not None:
        if done.type is EventType.TASK_FAILED:
            raise done.value
        return done.value
    child_id = hashlib.sha256(f"{run.ctx.execution_id}/{source_id}".encode()).hexdigest()[:32]
    if source_id not in run.history:
        run.emit(EventType.TASK_STARTED, source_id, label, {"execution_id": child_id}, scope)
    if run.services is None:
        from flux.errors import UsageError

        raise UsageError("call() needs a run with services (local or worker)")
    await run.settle()
    token = current_scope.set(source_id)
    try:
        output = await run.services.call_workflow(target, input, child_id)
    except ExecutionPaused:
        raise
    except NonDeterminismError as exc:  # the child cannot replay: neither can this run
        run.diverged = exc
        raise
    except Exception as exc:
        run.emit(EventType.TASK_FAILED, source_id, label, exc, scope)
        await run.commit()
        raise
    finally:
        current_scope.reset(token)
    run.emit(EventType.TASK_COMPLETED, source_id, label, output, scope)
    await run.commit()
    return output
