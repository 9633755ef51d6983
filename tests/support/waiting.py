"""Poll with a deadline, from a thread or on the event loop: no test sleeps to wait for state.

Both waits return the predicate's first truthy value, so a test can wait for a thing and use it::

    done = wait_until(lambda: client.status("hello", eid).state == "COMPLETED", what="the run")
    (info,) = await wait_until_async(connected, what="the worker to connect")
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

TIMEOUT = 30.0
"""Seconds a wait allows by default: a generous bound, reached only when a test fails."""


def wait_until(
    predicate: Callable[[], T],
    *,
    what: str | None = None,
    timeout: float = TIMEOUT,
    interval: float = 0.05,
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns something truthy, and
    return that.

    Raises:
        AssertionError: after ``timeout`` seconds, naming ``what`` (by default the predicate's
            name) and the last value seen. An exception the predicate raises goes through.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(_timed_out(predicate, what, timeout, value))
        time.sleep(interval)  # the polling period, not a wait for state


async def wait_until_async(
    check: Callable[[], Awaitable[T] | T],
    *,
    what: str | None = None,
    timeout: float = TIMEOUT,
    interval: float = 0.02,
) -> T:
    """:func:`wait_until` on the event loop: ``check`` may be a coroutine function or a plain
    callable, and the loop runs between calls. A check that hangs counts against ``timeout``.

    Raises:
        AssertionError: after ``timeout`` seconds, naming ``what`` and the last value seen.
    """
    value: Any = None
    limit = asyncio.timeout(timeout)
    try:
        async with limit:
            while True:
                value = check()
                if inspect.isawaitable(value):
                    value = await value
                if value:
                    return value
                await asyncio.sleep(interval)  # the polling period, not a wait for state
    except TimeoutError:
        if not limit.expired():
            raise  # the check's own timeout, not this wait's
        raise AssertionError(_timed_out(check, what, timeout, value)) from None


def _timed_out(predicate: Callable[..., Any], what: str | None, timeout: float, last: Any) -> str:
    what = what or getattr(predicate, "__name__", repr(predicate))
    return f"timed out after {timeout:g} s waiting for {what} (last: {last!r})"
