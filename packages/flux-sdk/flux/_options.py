"""What ``@task`` and ``@workflow`` share about their options."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from flux.errors import UsageError

__all__ = ["check_option_names", "options_method"]


class options_method:
    """``task.with_options(...)`` on the class makes a decorator; on a task, a variant."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __get__(self, obj: Any, cls: type) -> Callable[..., Any]:
        return functools.partial(self.fn, cls, obj)


def check_option_names(kind: str, cls: Any, options: dict[str, Any]) -> None:
    """Refuse option names the decorator does not know, listing the ones it does."""
    known = [p for p in inspect.signature(cls).parameters if p != "func"]
    for name in options:
        if name not in known:
            raise UsageError(f"unknown {kind} option {name!r}; the options are {', '.join(known)}")
