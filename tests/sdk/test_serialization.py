"""Round trips of values through the log formats ("pkl" and tagged "json")."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum, IntEnum
from typing import Any
from uuid import UUID

import pytest
from flux.errors import ExecutionError, NonDeterminismError, SerializationError
from flux.serialization import dumps, loads, to_view


class Color(Enum):
    RED = "red"


class Level(IntEnum):
    HIGH = 3


@dataclass
class Box:
    items: tuple[int, ...]


class CodedError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class KeywordError(Exception):
    def __init__(self, message: str, *, request: str) -> None:
        super().__init__(message)
        self.request = request


VALUES: list[Any] = [
    None,
    True,
    3,
    2.5,
    "text",
    b"\x00\xff",
    [1, "a", None],
    {"a": [1, {"b": (2, 3)}]},
    {1: "int key", (1, 2): "tuple key", None: "none key"},
    {"__flux__": "a user key", "v": 1},
    (1, (2, [3])),
    {1, 2},
    frozenset({"a"}),
    datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    datetime(2024, 1, 2),
    date(2024, 2, 29),
    time(23, 59, 1),
    timedelta(days=10_000, microseconds=1),
    UUID(int=7),
    Decimal("1.10"),
    Color.RED,
    Level.HIGH,
    collections.OrderedDict(b=1, a=2),
    collections.Counter("aab"),
    Box((1, 2)),
]


@pytest.mark.parametrize("fmt", ["pkl", "json"])
@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_round_trip_keeps_type_and_value(fmt, value):
    back = loads(dumps(value, fmt))
    assert type(back) is type(value)
    assert back == value
    if isinstance(value, Decimal):
        assert str(back) == str(value)


@pytest.mark.parametrize("value", VALUES, ids=lambda v: type(v).__name__)
def test_plain_values_take_pickle_and_write_what_cloudpickle_writes(value):
    """Builtin scalars and flat containers of them skip cloudpickle: the bytes must be the
    very ones cloudpickle writes (a history written before reads back the same)."""
    import io

    from flux.serialization import _Pickler

    for v in (value, [value, 1], (value,), {"k": value}, {1: "a", "b": 2.5}):
        with io.BytesIO() as buffer:
            _Pickler(buffer, protocol=5).dump(v)
            assert dumps(v, "pkl") == b"p" + buffer.getvalue()
        assert loads(dumps(v, "pkl")) == v


def test_json_format_is_used_for_json_types_and_pickle_otherwise():
    assert dumps({"a": [1, (2,)]}, "json")[:1] == b"j"
    assert dumps(Color.RED, "json")[:1] == b"p"  # an Enum over a str is not a str
    assert dumps(Box((1,)), "json")[:1] == b"p"


@pytest.mark.parametrize("fmt", ["pkl", "json"])
@pytest.mark.parametrize(
    "exc",
    [
        ValueError("plain"),
        CodedError(42, "coded"),
        KeywordError("kw", request="GET /"),
        FileNotFoundError(2, "missing", "f.txt"),
        ExecutionError("wrapped", inner=KeyError("k"), step="charge"),
        NonDeterminismError("diverged", position=2),
    ],
    ids=lambda e: type(e).__name__,
)
def test_exceptions_keep_type_message_and_attributes(fmt, exc):
    back = loads(dumps(exc, fmt))
    assert type(back) is type(exc)
    assert str(back) == str(exc)
    assert back.args == exc.args
    for name, value in vars(exc).items():
        assert repr(getattr(back, name)) == repr(value), name


def test_unpicklable_value_raises_serialization_error():
    import threading

    with pytest.raises(SerializationError, match="'lock'"):
        dumps(threading.Lock())


def test_corrupt_data_raises_serialization_error():
    with pytest.raises(SerializationError, match="unknown serialized format"):
        loads(b"x123")
    with pytest.raises(SerializationError, match="cannot read a stored value back"):
        loads(b"j{not json")


def test_view_is_json_friendly():
    view = to_view(
        {"when": datetime(2024, 1, 1, tzinfo=UTC), "err": CodedError(1, "m"), "s": {2, 1}}
    )
    assert view == {
        "when": "2024-01-01T00:00:00+00:00",
        "err": {"type": "CodedError", "message": "m"},
        "s": [1, 2],
    }
