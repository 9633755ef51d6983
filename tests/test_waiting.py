"""The shared waits (tests.support.waiting): they return the predicate's first truthy value,
and fail naming what they waited for and the last value seen."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from tests.support.waiting import wait_until, wait_until_async


def test_wait_until_returns_the_first_truthy_value() -> None:
    values = iter([0, [], "ready", "later"])
    assert wait_until(lambda: next(values), interval=0) == "ready"


def test_wait_until_names_what_it_waited_for() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the sky \(last: 0\)"):
        wait_until(lambda: 0, what="the sky", timeout=0.05, interval=0.01)

    def nothing_yet() -> None:
        return None

    with pytest.raises(AssertionError, match=r"waiting for nothing_yet \(last: None\)"):
        wait_until(nothing_yet, timeout=0.05, interval=0.01)


async def test_wait_until_async_polls_plain_and_async_checks() -> None:
    counter = itertools.count()
    assert await wait_until_async(lambda: next(counter) >= 3 and "three", interval=0) == "three"

    async def answered() -> list[int]:
        await asyncio.sleep(0)
        return [1]

    assert await wait_until_async(answered) == [1]


async def test_wait_until_async_fails_on_a_false_or_a_hanging_check() -> None:
    with pytest.raises(AssertionError, match=r"waiting for the count \(last: False\)"):
        await wait_until_async(lambda: False, what="the count", timeout=0.05)

    async def hangs() -> bool:
        await asyncio.Event().wait()
        return True

    with pytest.raises(AssertionError, match="waiting for hangs"):
        await wait_until_async(hangs, timeout=0.05)


async def test_a_check_raising_timeout_error_is_not_taken_for_the_deadline() -> None:
    async def times_out() -> bool:
        raise TimeoutError("the check's own")

    with pytest.raises(TimeoutError, match="the check's own"):
        await wait_until_async(times_out)
