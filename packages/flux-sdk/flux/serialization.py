"""Values in and out of the event log.

Every stored value is bytes whose first byte names the format: ``p`` for cloudpickle (lossless
for any picklable Python value, the default ``serializer = "pkl"``) and ``j`` for tagged JSON
(readable by any language, lossless for JSON types plus datetime, date, time, timedelta, UUID,
Decimal, bytes, tuple, set and frozenset). ``to_view`` makes the JSON view that servers, the CLI
and logs display; servers never unpickle worker data.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import pickle
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

import cloudpickle

from flux.errors import SerializationError

__all__ = ["b64decode", "b64encode", "dumps", "loads", "to_view"]

_PICKLE = b"p"
_JSON = b"j"
_SIMPLE = (str, int, float, bool, type(None), bytes)


def dumps(value: Any, fmt: str = "pkl") -> bytes:
    """Serialize ``value`` in format ``fmt`` ("pkl" or "json")."""
    if fmt == "json":
        try:
            return _JSON + json.dumps(_tag(value), separators=(",", ":")).encode()
        except (TypeError, ValueError):
            pass  # not JSON-representable: fall through to pickle, still lossless
    try:
        if _plain(value):  # the same bytes as cloudpickle's, several times faster
            return _PICKLE + pickle.dumps(value, protocol=5)
        with io.BytesIO() as buffer:
            _Pickler(buffer, protocol=5).dump(value)
            return _PICKLE + buffer.getvalue()
    except Exception as exc:
        raise SerializationError(
            f"cannot serialize a value of type {type(value).__qualname__!r}: {exc}; "
            "return picklable values from tasks and workflows"
        ) from exc


def _plain(value: Any) -> bool:
    """Whether ``value`` is a builtin scalar, or a list, tuple or dict of them (a task's
    arguments, most results): nothing cloudpickle would write differently from pickle."""
    t = type(value)
    if t in _SIMPLE:
        return True
    if t is list or t is tuple:
        return all(type(v) in _SIMPLE for v in value)
    if t is dict:
        return all(type(k) in _SIMPLE and type(v) in _SIMPLE for k, v in value.items())
    return False


class _Pickler(cloudpickle.Pickler):
    """cloudpickle, except that exceptions come back without calling their ``__init__``.

    Pickle rebuilds an exception as ``cls(*exc.args)``, which fails at load time for the
    common ``__init__(self, code, message)`` or keyword-only signatures and would make the
    whole execution unreadable. Their type, args and attributes are restored directly instead.
    """

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, BaseException) and _rebuilt_directly(type(obj)):
            return _rebuild_exception, (type(obj), obj.args, obj.__dict__ or None)
        return super().reducer_override(obj)


def _rebuilt_directly(cls: type[BaseException]) -> bool:
    # Only Python classes with their own __init__ and the default pickling: built-in
    # exceptions and classes with a custom __reduce__ (FluxError, OSError) pickle fine.
    return (
        cls.__module__ != "builtins"
        and cls.__init__ is not BaseException.__init__
        and cls.__reduce__ is BaseException.__reduce__
        and cls.__reduce_ex__ is BaseException.__reduce_ex__
    )


def _rebuild_exception(
    cls: type[BaseException], args: tuple[Any, ...], state: dict[str, Any] | None
) -> BaseException:
    exc = cls.__new__(cls, *args)
    exc.args = args
    if state:
        exc.__dict__.update(state)
    return exc


def loads(data: bytes | None) -> Any:
    """Read back a value written by :func:`dumps`."""
    if data is None:
        return None
    head, body = data[:1], data[1:]
    try:
        if head == _PICKLE:
            return pickle.loads(body)
        if head == _JSON:
            return _untag(json.loads(body))
    except Exception as exc:
        raise SerializationError(f"cannot read a stored value back: {exc}") from exc
    raise SerializationError(f"unknown serialized format {head!r}")


def b64encode(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def b64decode(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _tag(value: Any) -> Any:
    # Exact types only: a subclass (an Enum over str or int, an OrderedDict, a namedtuple, a
    # pandas Timestamp) would come back as its base type, so it goes to pickle instead.
    t = type(value)
    if value is None or t is bool or t is int or t is float or t is str:
        return value
    if t is list:
        return [_tag(v) for v in value]
    if t is dict:
        if all(type(k) is str for k in value) and "__flux__" not in value:
            return {k: _tag(v) for k, v in value.items()}
        return {"__flux__": "dict", "v": [[_tag(k), _tag(v)] for k, v in value.items()]}
    if t is tuple:
        return {"__flux__": "tuple", "v": [_tag(v) for v in value]}
    if t is set or t is frozenset:
        return {"__flux__": t.__name__, "v": [_tag(v) for v in value]}
    if t is datetime or t is date or t is time:
        return {"__flux__": t.__name__, "v": value.isoformat()}
    if t is timedelta:
        return {"__flux__": "timedelta", "v": [value.days, value.seconds, value.microseconds]}
    if t is UUID:
        return {"__flux__": "uuid", "v": str(value)}
    if t is Decimal:
        return {"__flux__": "decimal", "v": str(value)}
    if t is bytes:
        return {"__flux__": "bytes", "v": base64.b64encode(value).decode()}
    raise TypeError(t.__qualname__)


def _timedelta(v: Any) -> timedelta:
    if isinstance(v, list):
        days, seconds, microseconds = v
        return timedelta(days=days, seconds=seconds, microseconds=microseconds)
    return timedelta(seconds=v)  # written by earlier versions as total seconds


_UNTAG: dict[str, Callable[[Any], Any]] = {
    "dict": lambda v: {_untag(k): _untag(x) for k, x in v},
    "tuple": lambda v: tuple(_untag(x) for x in v),
    "set": lambda v: {_untag(x) for x in v},
    "frozenset": lambda v: frozenset(_untag(x) for x in v),
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "timedelta": _timedelta,
    "uuid": UUID,
    "decimal": Decimal,
    "bytes": base64.b64decode,
}


def _untag(value: Any) -> Any:
    if isinstance(value, list):
        return [_untag(v) for v in value]
    if isinstance(value, dict):
        kind = value.get("__flux__")
        if kind is not None and len(value) == 2 and "v" in value:
            return _UNTAG[kind](value["v"])
        return {k: _untag(v) for k, v in value.items()}
    return value


def to_view(value: Any, _depth: int = 0) -> Any:
    """A JSON-able rendering of ``value`` for display. Lossy by design; never read back."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else str(value)
        )
    if _depth > 20:
        return repr(value)
    if isinstance(value, dict):
        return {str(k): to_view(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_view(v, _depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        items = [to_view(v, _depth + 1) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, Enum):
        return to_view(value.value, _depth + 1)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: to_view(getattr(value, f.name), _depth + 1) for f in dataclasses.fields(value)
        }
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump(mode="json")
        except Exception:
            pass
    return repr(value)
