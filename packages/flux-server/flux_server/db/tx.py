"""A write transaction's handle: its connection, the notes to send when it commits, and the
facts it records for metrics."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import sqlalchemy as sa

__all__ = ["ResultTx", "Tx"]

C = TypeVar("C")


class Tx(Generic[C]):
    """A write transaction: its connection (``AsyncConnection`` from :meth:`Database.write`,
    ``Connection`` in :meth:`Database.run_write`), the notes to send when it commits and the
    facts it recorded (:mod:`flux_server.metrics`), counted once it commits."""

    __slots__ = ("conn", "facts", "notes")

    def __init__(self, conn: C) -> None:
        self.conn = conn
        self.notes: list[str] = []
        self.facts: list[Any] = []

    def notify(self, note: str) -> None:
        """Deliver ``note`` once the transaction commits (once, however often it is made)."""
        if note not in self.notes:
            self.notes.append(note)

    def record(self, fact: Any) -> None:
        """Count ``fact`` (a :data:`flux_server.metrics.Fact`) once the transaction commits.

        Bound to the transaction, not to the write function: a group-committed write that
        runs again alone (its batch rolled back) starts with a fresh one, so nothing is
        counted twice, and a write that fails counts nothing.
        """
        self.facts.append(fact)


class ResultTx(Tx[sa.Connection]):
    """A backend's answer to a ``run_write``: the committed transaction's notes and what the
    write function returned."""

    __slots__ = ("result",)

    def __init__(self, conn: sa.Connection) -> None:
        super().__init__(conn)
        self.result: Any = None
