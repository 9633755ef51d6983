"""A write transaction's handle: its connection and the notes to send when it commits."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import sqlalchemy as sa

__all__ = ["ResultTx", "Tx"]

C = TypeVar("C")


class Tx(Generic[C]):
    """A write transaction: its connection (``AsyncConnection`` from :meth:`Database.write`,
    ``Connection`` in :meth:`Database.run_write`) and the notes to send when it commits."""

    __slots__ = ("conn", "notes")

    def __init__(self, conn: C) -> None:
        self.conn = conn
        self.notes: list[str] = []

    def notify(self, note: str) -> None:
        """Deliver ``note`` once the transaction commits (once, however often it is made)."""
        if note not in self.notes:
            self.notes.append(note)


class ResultTx(Tx[sa.Connection]):
    """A backend's answer to a ``run_write``: the committed transaction's notes and what the
    write function returned."""

    __slots__ = ("result",)

    def __init__(self, conn: sa.Connection) -> None:
        super().__init__(conn)
        self.result: Any = None
