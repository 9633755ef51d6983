"""Long-term memory (protocol 1.11): JSON values by scope and key, kept by the server so that every
worker sees the same memory (:mod:`flux.memory`).

- ``GET /memory/{scope}`` -> :class:`MemoryItems`: every key of the scope, by key.
- ``GET /memory/{scope}/{key}`` -> :class:`MemoryEntry` (404 when there is none).
- ``PUT /memory/{scope}/{key}`` with :class:`MemoryValue` -> :class:`MemoryEntry`: create or
  replace (413 for a value over 64 KiB as JSON).
- ``DELETE /memory/{scope}/{key}`` -> :class:`MemoryDeleted`.

Scopes and keys are at most 256 characters, without ``/`` (400 otherwise).
"""

from __future__ import annotations

from typing import Any

from flux.protocol._base import UtcDateTime, WireModel

__all__ = ["MemoryDeleted", "MemoryEntry", "MemoryItems", "MemoryValue"]


class MemoryValue(WireModel):
    value: Any = None


class MemoryEntry(WireModel):
    scope: str
    key: str
    value: Any = None
    updated_at: UtcDateTime


class MemoryItems(WireModel):
    scope: str
    items: list[MemoryEntry] = []


class MemoryDeleted(WireModel):
    deleted: bool
    """Whether there was a value."""
