"""Waiting for an execution to change (sync mode, streams) without polling the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Watchers"]


class Watchers:
    """Per-execution wake-ups, set after a state change commits (here or on a replica)."""

    def __init__(self) -> None:
        self._by_id: dict[str, set[asyncio.Event]] = {}

    @contextmanager
    def watch(self, execution_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``execution_id`` changes; clear it before each re-read."""
        event = asyncio.Event()
        self._by_id.setdefault(execution_id, set()).add(event)
        try:
            yield event
        finally:
            waiting = self._by_id.get(execution_id)
            if waiting is not None:
                waiting.discard(event)
                if not waiting:
                    del self._by_id[execution_id]

    def changed(self, execution_id: str) -> None:
        for event in self._by_id.get(execution_id, ()):
            event.set()

    def __len__(self) -> int:
        return len(self._by_id)
