"""Calls for long-term memory (``/memory``, protocol 1.11)."""

from __future__ import annotations

from flux.client._calls._base import JSON, Call, parse_model, seg
from flux.protocol import MemoryDeleted, MemoryEntry, MemoryItems

__all__ = ["memory_delete", "memory_get", "memory_items", "memory_put"]


def memory_items(scope: str) -> Call[MemoryItems]:
    return Call("GET", f"/memory/{seg(scope)}", parse_model(MemoryItems))


def memory_get(scope: str, key: str) -> Call[MemoryEntry]:
    return Call("GET", f"/memory/{seg(scope)}/{seg(key)}", parse_model(MemoryEntry))


def memory_put(scope: str, key: str, text: str) -> Call[MemoryEntry]:
    """``text``: the value as JSON already (see :func:`flux.memory.json_text`)."""
    return Call(
        "PUT",
        f"/memory/{seg(scope)}/{seg(key)}",
        parse_model(MemoryEntry),
        content=b'{"value":' + text.encode() + b"}",
        content_type=JSON,
    )


def memory_delete(scope: str, key: str) -> Call[MemoryDeleted]:
    return Call("DELETE", f"/memory/{seg(scope)}/{seg(key)}", parse_model(MemoryDeleted))
