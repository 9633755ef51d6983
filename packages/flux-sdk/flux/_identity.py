"""Deterministic task identity: name + SHA-256 of canonical arguments + occurrence counter.

Never Python's ``hash()`` (salted per process) and never object addresses: the same call must
get the same identity in every process that replays the execution.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PRIMITIVES = (str, int, float, bool, type(None), bytes)
_PRIMITIVE_SET = frozenset(_PRIMITIVES)


def canonical(value: Any, _depth: int = 0) -> str:
    """A stable text form of ``value``: equal values give equal text in any process."""
    t = type(value)
    if t in _PRIMITIVES:
        return repr(value)
    if _depth > 32:
        return _ADDRESS.sub("", repr(value))
    d = _depth + 1
    if t is list or t is tuple:
        # Primitives inline (the same text, without a call each): a task's arguments are
        # digested on every call, replayed ones included.
        prim = _PRIMITIVE_SET
        inner = ",".join([repr(v) if type(v) in prim else canonical(v, d) for v in value])
        return f"[{inner}]" if t is list else f"({inner})"
    if t is dict:
        items = sorted(f"{canonical(k, d)}:{canonical(v, d)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, set | frozenset):
        return "set{" + ",".join(sorted(canonical(v, d) for v in value)) + "}"
    if isinstance(value, Enum):
        return f"{t.__qualname__}.{value.name}"
    if isinstance(value, datetime | date | time | timedelta | UUID | Decimal):
        return f"{t.__name__}:{value!r}"
    if isinstance(value, list | tuple | dict):  # subclasses: namedtuple, OrderedDict...
        base = list if isinstance(value, list) else tuple if isinstance(value, tuple) else dict
        return t.__qualname__ + canonical(base(value), d)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ",".join(
            f"{f.name}={canonical(getattr(value, f.name), d)}" for f in dataclasses.fields(value)
        )
        return f"{t.__qualname__}({fields})"
    stable = getattr(value, "__flux_identity__", None)
    if callable(stable):
        return f"{t.__qualname__}<{stable()}>"
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return f"{t.__qualname__}{canonical(dump(), d)}"
        except Exception:
            pass
    if callable(value):
        module = getattr(value, "__module__", "") or ""
        return f"fn:{module}.{getattr(value, '__qualname__', t.__qualname__)}"
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):
        return f"{t.__qualname__}{canonical(attrs, d)}"
    return _ADDRESS.sub("", repr(value))


def call_digest(scope: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    # No argument, or one primitive (most calls): canonical's text without the call to it.
    if not args:
        positional = "()"
    elif len(args) == 1 and type(args[0]) in _PRIMITIVE_SET:
        positional = f"({args[0]!r})"
    else:
        positional = canonical(args)
    text = f"{scope}\x00{name}\x00{positional}\x00{canonical(kwargs) if kwargs else ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]
