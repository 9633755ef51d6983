"""Alembic: one head, upgrade from empty on both databases, schema equal to the tables."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flux_server.__main__ import main
from flux_server.db import Database, upgrade
from flux_server.db.migrate import VERSION_TABLE, heads
from flux_server.db.tables import metadata


def test_one_head() -> None:
    assert heads() == ["0010"]


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
    assert version == [("0010",)]


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
