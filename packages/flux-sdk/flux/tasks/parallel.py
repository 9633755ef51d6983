"""Structured concurrency for tasks: ``parallel`` and ``pipeline``."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from flux._runtime import current_run, current_scope

__all__ = ["parallel", "pipeline"]


async def parallel(*awaitables: Awaitable[Any] | Iterable[Awaitable[Any]]) -> list[Any]:
    """Await every argument concurrently; results in argument order.

    When one branch fails, pauses or is cancelled, the others are cancelled and awaited
    before the error propagates, so no branch outlives the call. Accepts the awaitables as
    arguments or as one iterable.
    """
    items: list[Any]
    if len(awaitables) == 1 and not inspect.isawaitable(awaitables[0]):
        items = list(awaitables[0])  # type: ignore[arg-type]
    else:
        items = list(awaitables)
    if not items:
        return []
    loop = asyncio.get_running_loop()
    coros = [aw if asyncio.iscoroutine(aw) else _as_coroutine(aw) for aw in items]
    run = current_run.get()
    if run is None:
        tasks = [loop.create_task(coro) for coro in coros]
    else:
        # Each branch is a scope of its own: replay checks a branch's calls in the order that
        # branch made them, however the branches interleave (replayed calls return at once).
        scope = current_scope.get()
        tasks = []
        for i, coro in enumerate(coros):
            context = contextvars.copy_context()
            context.run(current_scope.set, f"{scope}[{i}]")
            tasks.append(loop.create_task(coro, context=context))
        run.branches += len(tasks)

        def finished(_: asyncio.Task[Any]) -> None:
            run.branches -= 1

        for t in tasks:
            t.add_done_callback(finished)
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    except asyncio.CancelledError:
        await _cancel_all(tasks)
        raise
    failed = next((t for t in tasks if t.done() and not t.cancelled() and t.exception()), None)
    if failed is None:
        failed = next((t for t in tasks if t.done() and t.cancelled()), None)
    if failed is not None:
        await _cancel_all(tasks)
        if failed.cancelled():
            raise asyncio.CancelledError()
        raise failed.exception()  # type: ignore[misc]
    return [t.result() for t in tasks]


async def _cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    for t in tasks:
        if not t.done():
            t.cancel()
    # Wait for every branch to unwind; a second cancel of the caller must not leave orphans.
    while True:
        try:
            await asyncio.gather(*tasks, return_exceptions=True)
            return
        except asyncio.CancelledError:
            continue


async def _as_coroutine(aw: Awaitable[Any]) -> Any:
    return await aw


async def pipeline(*steps: Callable[[Any], Awaitable[Any]], input: Any) -> Any:
    """Feed ``input`` through ``steps`` in order; each step gets the previous result."""
    value = input
    for step in steps:
        value = await step(value)
    return value
