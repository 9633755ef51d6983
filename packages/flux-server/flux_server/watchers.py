"""Waiting for an execution to change (sync mode, streams) without polling the database."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from flux.protocol import ExecutionStatus

__all__ = ["Watch", "Watchers"]


class Watch:
    """One waiter: ``event`` is set on every change; ``state`` is the state the last change
    announced (``None`` when unknown), so a waiter can skip reading states it does not want."""

    __slots__ = ("event", "state", "status")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.state: str | None = None
        self.status: ExecutionStatus | None = None
        """The execution's status as it finished or paused, when this process committed that
        (saves a read); ``None`` otherwise."""


class Watchers:
    """Per-execution wake-ups, set after a state change commits (here or on a replica)."""

    def __init__(self) -> None:
        self._by_id: dict[str, set[Watch]] = {}

    @contextmanager
    def watch(self, execution_id: str) -> Iterator[Watch]:
        """Subscribe to ``execution_id``; clear ``event`` before each wait."""
        watch = self.open(execution_id)
        try:
            yield watch
        finally:
            self.close(execution_id, watch)

    def open(self, execution_id: str) -> Watch:
        """Subscribe to ``execution_id`` until :meth:`close` (:meth:`watch` as two calls, for
        a subscription that begins in a request and ends in its response's stream)."""
        watch = Watch()
        self._by_id.setdefault(execution_id, set()).add(watch)
        return watch

    def close(self, execution_id: str, watch: Watch) -> None:
        waiting = self._by_id.get(execution_id)
        if waiting is not None:
            waiting.discard(watch)
            if not waiting:
                del self._by_id[execution_id]

    def changed(self, execution_id: str, state: str | None = None) -> None:
        for watch in self._by_id.get(execution_id, ()):
            watch.state = state
            watch.event.set()

    def wake_all(self) -> None:
        """Wake every waiter (the server drains: each looks at why it waits again)."""
        for watches in self._by_id.values():
            for watch in watches:
                watch.state = None
                watch.event.set()

    def watching(self, execution_id: str) -> bool:
        """Whether anyone waits for ``execution_id`` (safe to ask from the writer thread)."""
        return execution_id in self._by_id

    def settled(self, status: ExecutionStatus) -> None:
        for watch in self._by_id.get(status.execution_id, ()):
            watch.status = status

    def __len__(self) -> int:
        return len(self._by_id)
