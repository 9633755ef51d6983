"""Events and values as they travel: serialized bytes in base64 plus a JSON view for display.

``value`` is ``flux.serialization.dumps(...)`` bytes in base64. It is opaque to the server, which
stores and returns it byte for byte and never unpickles it; only the worker that replays the
execution reads it back. ``view`` is ``flux.serialization.to_view(...)``: what people see.
"""

from __future__ import annotations

import binascii
from binascii import a2b_base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import Field

from flux.domain import EVENT_TYPES, EventType, ExecutionEvent
from flux.errors import ProtocolError, SerializationError
from flux.protocol._base import UtcDateTime, WireModel
from flux.serialization import b64decode, b64encode, dumps, loads, to_view

__all__ = [
    "EventRecord",
    "HistoryColumns",
    "OutputRecord",
    "decode_columns",
    "unreadable_history",
]


class EventRecord(WireModel):
    """One event of an execution's log on the wire.

    ``id`` is unique per event and makes checkpoints idempotent: the server ignores an id it
    already stored.
    """

    id: str = Field(min_length=1, max_length=128)
    type: EventType
    source_id: str
    name: str
    scope: str = ""
    time: UtcDateTime
    value: str | None = None
    """base64 of ``flux.serialization.dumps`` bytes; ``None`` for an event without a value."""
    view: Any = None

    @classmethod
    def from_event(cls, event: ExecutionEvent, serializer: str = "pkl") -> EventRecord:
        """Encode a domain event; ``serializer`` is ``"pkl"`` or ``"json"``.

        Raises:
            SerializationError: the event's value cannot be serialized.
        """
        raw = None if event.value is None else dumps(event.value, serializer)
        # Every field comes from a domain event, already of its type: no validation needed.
        return cls.model_construct(
            id=event.id,
            type=event.type,
            source_id=event.source_id,
            name=event.name,
            scope=event.scope,
            time=event.time,
            value=b64encode(raw),
            view=to_view(event.value),
        )

    def to_event(self) -> ExecutionEvent:
        """Decode into a domain event (unpickles ``value``: only for the replaying worker).

        Raises:
            SerializationError: the value cannot be read back.
        """
        return ExecutionEvent(
            type=self.type,
            source_id=self.source_id,
            name=self.name,
            value=loads(b64decode(self.value)),
            time=self.time,
            id=self.id,
            scope=self.scope,
        )


class HistoryColumns(WireModel):
    """An execution's history column by column (protocol 1.2): event ``i`` is item ``i`` of
    every list. The same events as a list of :class:`EventRecord` without views, cheaper to
    write and to parse when the history is long (no keys repeated per event, times as
    numbers)."""

    ids: list[str] = []
    types: list[EventType] = []
    source_ids: list[str] = []
    names: list[str] = []
    scopes: list[str] = []
    times: list[float] = []
    """Seconds since the epoch (UTC)."""
    values: list[str | None] = []
    """base64 of ``flux.serialization.dumps`` bytes, ``None`` for an event without a value."""


class OutputRecord(WireModel):
    """A workflow's output: serialized ``value`` (base64) and its JSON ``view``."""

    value: str | None = None
    view: Any = None

    @classmethod
    def from_value(cls, value: Any, serializer: str = "pkl") -> OutputRecord:
        """Encode ``value``.

        Raises:
            SerializationError: the value cannot be serialized.
        """
        raw = None if value is None else dumps(value, serializer)
        return cls(value=b64encode(raw), view=to_view(value))

    def load(self) -> Any:
        """Decode the value (unpickles: only for trusted readers such as the worker)."""
        return loads(b64decode(self.value))


def decode_columns(columns: Mapping[str, Any]) -> list[ExecutionEvent]:
    """:class:`HistoryColumns` (parsed JSON, or the model's dump) straight into domain
    events: the replay path, which skips a model per event. Unpickles values, so it is only
    for the worker that replays the execution.

    Raises:
        ProtocolError: a column is missing, malformed or of another length than the others.
        SerializationError: a value cannot be read back.
    """
    try:
        ids = columns["ids"]
        names = ("types", "source_ids", "names", "scopes", "times", "values")
        if any(len(columns[name]) != len(ids) for name in names):
            raise ProtocolError("the history's columns differ in length")
        kinds = [EVENT_TYPES[t] for t in columns["types"]]
        times = [datetime.fromtimestamp(t, UTC) for t in columns["times"]]
        try:
            values = [None if v is None else loads(a2b_base64(v)) for v in columns["values"]]
        except SerializationError:
            raise unreadable_history(
                columns["values"], columns["types"], columns["source_ids"]
            ) from None
        return list(
            map(
                ExecutionEvent,
                kinds,
                columns["source_ids"],
                columns["names"],
                values,
                times,
                ids,
                columns["scopes"],
            )
        )
    except (SerializationError, ProtocolError):
        raise
    except (KeyError, TypeError, ValueError, binascii.Error, OverflowError, OSError) as exc:
        raise ProtocolError(f"malformed history in the server's answer: {exc!r}") from None


def unreadable_history(
    values: list[Any], types: list[Any], sources: list[Any]
) -> SerializationError:
    """The error for a history whose values do not all read back: which event's does not,
    and why, from the events' values (base64), types and source ids. Decodes the values one
    by one again: only called once one has failed."""
    for i, text in enumerate(values):
        try:
            loads(b64decode(text))
        except SerializationError as exc:
            return SerializationError(
                f"event #{i + 1} of the history ({types[i]} of {sources[i]!r}) cannot be read "
                f"back on this worker: {exc}"
            )
        except (TypeError, ValueError):
            break
    return SerializationError("a value of the history cannot be read back on this worker")
