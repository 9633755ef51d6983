"""Events and values as they travel: serialized bytes in base64 plus a JSON view for display.

``value`` is ``flux.serialization.dumps(...)`` bytes in base64. It is opaque to the server, which
stores and returns it byte for byte and never unpickles it; only the worker that replays the
execution reads it back. ``view`` is ``flux.serialization.to_view(...)``: what people see.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flux.domain import EventType, ExecutionEvent
from flux.protocol._base import UtcDateTime, WireModel
from flux.serialization import b64decode, b64encode, dumps, loads, to_view

__all__ = ["EventRecord", "OutputRecord"]


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
        return cls(
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
