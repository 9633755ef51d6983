"""Alembic: one head, upgrade from empty on both databases, schema equal to the tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flux_server.__main__ import main
from flux_server.db import Database, upgrade
from flux_server.db.migrate import VERSION_TABLE, heads
from flux_server.db.tables import metadata


def test_one_head() -> None:
    assert heads() == ["0012"]


async def test_upgrade_from_empty_matches_the_tables(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db)
        await upgrade(db)  # a second run is a no-op
        async with db.read() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={"compare_type": True}), metadata
                )
            )
            version = (
                await conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
            ).all()
    finally:
        await db.dispose()
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []
    assert version == [("0012",)]


async def test_on_postgresql_only_held_executions_are_indexed_by_worker(db_url: str) -> None:
    """Revision 0003: the (worker_name, state) index holds held executions only on
    PostgreSQL; SQLite, whose planner would not use such an index, keeps the full one."""
    db = Database(db_url)
    try:
        await upgrade(db)
        async with db.read() as conn:
            if db.dialect == "postgresql":
                query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
            else:
                query = "SELECT sql FROM sqlite_master WHERE name = :name"
            params = {"name": "ix_executions_worker_name_state"}
            [definition] = (await conn.execute(sa.text(query), params)).scalars().all()
    finally:
        await db.dispose()
    if db.dialect == "postgresql":
        assert "WHERE" in definition and "CANCELLING" in definition, definition
    else:
        assert "WHERE" not in definition.upper(), definition


def test_db_upgrade_command(tmp_path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/cli/flux.db"
    assert main(["db", "upgrade", "--database-url", url]) == 0
    assert "up to date" in capsys.readouterr().out
    assert (tmp_path / "cli" / "flux.db").exists()


def test_unsupported_database_url_is_a_clear_error(capsys) -> None:
    assert main(["db", "upgrade", "--database-url", "mysql://x/y"]) == 2
    assert "unsupported database_url" in capsys.readouterr().err


async def test_counts_add_up_across_the_count_trigger_revision(tmp_path) -> None:
    """Revision 0011 replaces SQLite's count triggers: executions counted by the old ones and
    changed under the new ones (and back, after a downgrade) still add up."""
    from alembic import command
    from flux_server.db.migrate import alembic_config

    db = Database(f"sqlite:///{tmp_path}/flux.db")

    async def to(revision: str, down: bool = False) -> None:
        move = command.downgrade if down else command.upgrade
        async with db.write() as tx:
            await tx.conn.run_sync(lambda c: move(alembic_config(c), revision))

    async def change(sql: str) -> None:
        async with db.write() as tx:
            await tx.conn.execute(sa.text(sql))

    async def counts() -> tuple[list[Any], list[Any]]:
        async with db.read() as conn:
            kept = await conn.execute(
                sa.text("SELECT workflow_name, state, n FROM execution_counts WHERE n != 0")
            )
            real = await conn.execute(
                sa.text(
                    "SELECT workflow_name, state, count(*) FROM executions "
                    "GROUP BY workflow_name, state"
                )
            )
            return sorted(map(tuple, kept)), sorted(map(tuple, real))

    try:
        await to("0010")
        await change(
            "INSERT INTO workflows (id, name, version, source, source_hash, options, created_at) "
            "VALUES ('w', 'flow', 1, '', '', '{}', 0)"
        )
        for i in range(4):
            await change(
                "INSERT INTO executions (id, workflow_id, workflow_name, workflow_version, state, "
                f"created_at, updated_at) VALUES ('e{i}', 'w', 'flow', 1, 'SCHEDULED', 0, 0)"
            )
        await change("UPDATE executions SET state = 'RUNNING' WHERE id IN ('e0', 'e1')")
        await to("head")
        await change("UPDATE executions SET state = 'COMPLETED' WHERE id = 'e0'")
        await change(
            "INSERT INTO executions (id, workflow_id, workflow_name, workflow_version, state, "
            "created_at, updated_at) VALUES ('e9', 'w', 'flow', 1, 'FAILED', 0, 0)"
        )
        kept, real = await counts()
        assert (
            kept
            == real
            == [
                ("flow", "COMPLETED", 1),
                ("flow", "FAILED", 1),
                ("flow", "RUNNING", 1),
                ("flow", "SCHEDULED", 2),
            ]
        )
        await to("0010", down=True)
        await change("UPDATE executions SET state = 'CANCELLED' WHERE id = 'e2'")
        await change("DELETE FROM executions WHERE id = 'e9'")
        kept, real = await counts()
        assert kept == real
        assert ("flow", "CANCELLED", 1) in kept and ("flow", "FAILED", 1) not in kept
    finally:
        await db.dispose()
