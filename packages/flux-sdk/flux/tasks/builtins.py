"""Built-in tasks. Anything not deterministic is a recorded task, so replay sees the same value."""

from __future__ import annotations

import asyncio
import json
import random
import uuid as _uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from flux._clock import clock
from flux._runtime import current_run, current_scope
from flux.domain import EventType
from flux.errors import ExecutionPaused, UsageError
from flux.pauses import PAUSE_TASK, pause_value
from flux.task import task

__all__ = ["choice", "now", "pause", "randint", "randrange", "sleep", "uuid4"]


@task.with_options(name="now")
async def now() -> datetime:
    """The current time (UTC, aware); replay returns the recorded instant."""
    return clock().now()


@task.with_options(name="uuid4")
async def uuid4() -> _uuid.UUID:
    return _uuid.uuid4()


@task.with_options(name="randint")
async def randint(a: int, b: int) -> int:
    return random.randint(a, b)


@task.with_options(name="randrange")
async def randrange(start: int, stop: int | None = None, step: int = 1) -> int:
    """A recorded ``random.randrange``: replay returns the recorded number."""
    return random.randrange(start, stop, step)


@task.with_options(name="choice")
async def choice(options: Sequence[Any]) -> Any:
    return random.choice(list(options))


async def sleep(duration: float | timedelta) -> None:
    """A durable sleep: after a crash or pause the resumed run waits only for the time left."""
    seconds = duration.total_seconds() if isinstance(duration, timedelta) else duration
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise UsageError(f"sleep({duration!r}): give a number of seconds >= 0 or a timedelta")
    run = current_run.get()
    if run is None:
        await clock().sleep(seconds)
        return
    source_id, scope = run.identify("sleep", (seconds,), {})
    history = run.history.get(source_id)
    if history is not None:
        if source_id in run.terminal:
            return
        until = history[0].value["until"]
    else:
        until = clock().timestamp() + seconds
        run.emit(
            EventType.TASK_STARTED, source_id, "sleep", {"seconds": seconds, "until": until}, scope
        )
        run.write()
    token = current_scope.set(source_id)
    try:
        left = until - clock().timestamp()
        if left > 0:
            await clock().sleep(left)
    except asyncio.CancelledError:
        run.emit(EventType.TASK_CANCELLED, source_id, "sleep", None, scope)
        run.write()
        raise
    finally:
        current_scope.reset(token)
    run.emit(EventType.TASK_COMPLETED, source_id, "sleep", None, scope)
    await run.commit()


async def pause(name: str, data: Any = None) -> Any:
    """Pause the workflow here until a resume answers this pause; returns the resume's input.

    ``data`` (JSON: dicts, lists, strings, numbers, booleans, None) travels with the pause to
    whoever resumes it: it is listed with the execution's waiting pauses. Several pauses may
    wait at once (in branches of ``parallel``); each is answered by name and gets its own input.
    """
    if not isinstance(name, str) or not name:
        raise UsageError(f"pause({name!r}): give the pause point a non-empty name")
    try:
        json.dumps(data)
    except (TypeError, ValueError):
        raise UsageError(
            f"pause({name!r}, data={data!r}): data must be JSON (dicts, lists, strings, numbers, "
            "booleans, None) so that whoever resumes the pause can read it"
        ) from None
    run = current_run.get()
    if run is None:
        raise UsageError("pause() can only be awaited inside a running workflow")
    source_id, scope = run.identify(PAUSE_TASK, (name,), {})
    done = run.terminal.get(source_id)
    if done is not None:
        return done.value
    history = run.history.get(source_id)
    paused = next((e for e in history or () if e.type is EventType.TASK_PAUSED), None)
    if paused is not None:
        # A resume that named no pause (recorded before resumes answered pauses one by one,
        # or by a server that does not): it answers the pauses waiting when it came.
        resumed, value = run.resume_value_after(paused)
        if resumed:
            run.emit(EventType.TASK_COMPLETED, source_id, PAUSE_TASK, value, scope)
            await run.commit()
            return value
    else:
        if history is None:
            run.emit(EventType.TASK_STARTED, source_id, PAUSE_TASK, name, scope)
        run.emit(EventType.TASK_PAUSED, source_id, PAUSE_TASK, pause_value(name, data), scope)
    raise ExecutionPaused(name)
