"""Alembic: one head, upgrade from empty on both databases, schema equal to the tables."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flux_server.__main__ import main
from flux_server.db import Database, upgrade
from flux_server.db.migrate import VERSION_TABLE, heads
from flux_server.db.tables import compared_on, metadata


def test_one_head() -> None:
    assert heads() == ["0014"]


async def test_upgrade_from_empty_matches_the_tables(db_url: str) -> None:
    db = Database(db_url)
    try:
        await upgrade(db)
        await upgrade(db)  # a second run is a no-op
        async with db.read() as conn:
            diff = await conn.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(
                        sync,
                        opts={
                            "compare_type": True,
                            "include_object": compared_on(sync.dialect.name),
                        },
                    ),
                    metadata,
                )
            )
            version = (
                await conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}"))
            ).all()
    finally:
        await db.dispose()
    diff = [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]
    assert diff == []
    assert version == [("0014",)]


_OFFERED_LOAD = (
    "SELECT offered_to, count(*) FROM executions WHERE offered_to IN ('a', 'b') "
    "AND state = 'SCHEDULED' GROUP BY offered_to"
)
_HELD_LOAD = (
    "SELECT worker_name, count(*) FROM executions WHERE worker_name IN ('a', 'b') "
    "AND state IN ('CLAIMED', 'RUNNING', 'CANCELLING') GROUP BY worker_name"
)


async def test_the_indexes_by_worker_hold_what_their_queries_read(db_url: str) -> None:
    """Revision 0013. PostgreSQL's (worker_name, state) index holds held executions only
    (revision 0003); SQLite has none, and answers a worker's held executions from the listing
    index (worker_name, state, created_at). On both, the (offered_to, state) index holds
    offered executions only, and SQLite's planner uses it for a worker's offers."""
    db = Database(db_url)
    try:
        await upgrade(db)
        async with db.read() as conn:
            if db.dialect == "postgresql":
                query = "SELECT indexdef FROM pg_indexes WHERE indexname = :name"
            else:
                query = "SELECT sql FROM sqlite_master WHERE name = :name"
            definitions = {
                name: (await conn.execute(sa.text(query), {"name": name})).scalars().all()
                for name in ("ix_executions_worker_name_state", "ix_executions_offered_to_state")
            }
            plans = {}
            if db.dialect == "sqlite":
                for sql in (_OFFERED_LOAD, _HELD_LOAD):
                    rows = (await conn.execute(sa.text(f"EXPLAIN QUERY PLAN {sql}"))).all()
                    plans[sql] = " ".join(str(row[-1]) for row in rows)
    finally:
        await db.dispose()
    [offered] = definitions["ix_executions_offered_to_state"]
    assert "offered_to IS NOT NULL" in offered, offered
    if db.dialect == "postgresql":
        [held] = definitions["ix_executions_worker_name_state"]
        assert "WHERE" in held and "CANCELLING" in held, held
    else:
        assert definitions["ix_executions_worker_name_state"] == []
        assert "ix_executions_offered_to_state" in plans[_OFFERED_LOAD], plans
        assert "ix_executions_worker_name_state_created_at" in plans[_HELD_LOAD], plans


async def test_revision_0013_comes_back_on_downgrade(db_url: str) -> None:
    from alembic import command
    from flux_server.db.migrate import alembic_config

    db = Database(db_url)
    names = ("ix_executions_worker_name_state", "ix_executions_offered_to_state")

    async def to(revision: str, down: bool = False) -> dict[str, bool]:
        """Each index: whether it is there, and partial (or absent: not in the answer)."""
        move = command.downgrade if down else command.upgrade
        async with db.write() as tx:
            await tx.conn.run_sync(lambda c: move(alembic_config(c), revision))
        if db.dialect == "postgresql":
            query = "SELECT indexname, indexdef FROM pg_indexes WHERE indexname IN :names"
        else:
            query = "SELECT name, sql FROM sqlite_master WHERE name IN :names"
        statement = sa.text(query).bindparams(sa.bindparam("names", expanding=True))
        async with db.read() as conn:
            found = await conn.execute(statement, {"names": names})
            return {name: "WHERE" in sql.upper() for name, sql in found}

    pg = db.dialect == "postgresql"
    try:
        # Ends at the head: PostgreSQL's test database is shared by the tests that follow.
        before = {names[0]: pg, names[1]: False}
        after = ({names[0]: True} if pg else {}) | {names[1]: True}
        assert await to("head") == after
        assert await to("0012", down=True) == before
        assert await to("head") == after
    finally:
        await db.dispose()


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
