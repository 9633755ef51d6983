"""The database handle: transactions, post-commit notes, and the guard against nesting."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from flux_server.db import Database, upgrade
from flux_server.db.tables import secrets

ROW = {"name": "K", "value": b"x", "updated_at": datetime(2025, 1, 1, tzinfo=UTC)}


async def test_notes_follow_commits_and_errors_roll_back(db_url: str) -> None:
    db = Database(db_url)
    notes: list[str] = []
    db.sink = notes.append
    try:
        await upgrade(db)
        await db.run_write(lambda tx: tx.conn.execute(sa.delete(secrets)))

        def failing(tx):
            tx.conn.execute(sa.insert(secrets).values(ROW))
            tx.notify("never")
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            await db.run_write(failing)
        count = sa.select(sa.func.count()).select_from(secrets)
        assert await db.run_read(lambda conn: conn.execute(count).scalar()) == 0
        assert notes == []

        def insert(tx):
            tx.notify("dispatch")
            tx.notify("dispatch")  # the same note twice in a transaction is sent once
            return tx.conn.execute(sa.text("SELECT 1")).scalar()

        assert await db.run_write(insert) == 1
        assert notes == ["dispatch"]

        async with db.write() as tx:
            with pytest.raises(RuntimeError, match="inside"):
                await db.run_write(lambda tx: None)
            await tx.conn.execute(sa.insert(secrets).values(ROW))
            tx.notify("async")
        assert notes == ["dispatch", "async"]
        assert await db.run_read(lambda conn: conn.execute(count).scalar()) == 1
    finally:
        await db.dispose()
