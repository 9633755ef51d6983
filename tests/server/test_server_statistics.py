"""Planner statistics of a young PostgreSQL database (``flux_server.db.statistics``): a
statement planned while ``executions`` was nearly empty scans the whole table once it has
grown, until the table is analyzed; the keeper analyzes it long before autovacuum would."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from flux_server.db import Database, upgrade
from flux_server.db.statistics import FIRST, LOCK, StatisticsKeeper
from flux_server.db.urls import sync_url
from server_support import Server

from tests.support.postgres import fresh_pg_database
from tests.support.waiting import wait_until_async

pytestmark = pytest.mark.postgres

# What a server asks when placing work (store/_offers.py): the executions its workers hold.
HELD = (
    "PREPARE held(text[]) AS SELECT worker_name, count(*) FROM executions "
    "WHERE worker_name = ANY($1) AND state IN ('CLAIMED', 'RUNNING', 'CANCELLING') "
    "GROUP BY worker_name"
)
WORKFLOW = uuid.uuid4().hex


@pytest.fixture
async def db() -> AsyncIterator[Database]:
    with fresh_pg_database("flux_stats") as url:
        db = Database(url)
        try:
            await upgrade(db)
            yield db
        finally:
            await db.dispose()


def _conninfo(db: Database) -> str:
    return sync_url(db.url).set(drivername="postgresql").render_as_string(hide_password=False)


def _add_executions(db: Database, n: int) -> None:
    _add_executions_at(_conninfo(db), n)


def _add_executions_at(url: str, n: int) -> None:
    """``n`` executions, inserted, claimed and finished (three changes of a row each), by a
    connection that is then closed (which reports its statistics)."""
    now = datetime.now(UTC)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO workflows (id, name, version, source, source_hash, options, created_at) "
            "VALUES (%s, 'w', 1, '', '', '{}', %s) ON CONFLICT DO NOTHING",
            (WORKFLOW, now),
        )
        conn.execute(
            "INSERT INTO executions (id, workflow_id, workflow_name, workflow_version, state, "
            "created_at, updated_at) SELECT md5(random()::text), %s, 'w', 1, 'SCHEDULED', %s, %s "
            "FROM generate_series(1, %s)",
            (WORKFLOW, now, now, n),
        )
        conn.execute(
            "UPDATE executions SET state = 'CLAIMED', worker_name = 'w0' WHERE state = 'SCHEDULED'"
        )
        conn.execute("UPDATE executions SET state = 'COMPLETED' WHERE state = 'CLAIMED'")


async def _changes_reported(db: Database, n: int) -> None:
    """Wait until PostgreSQL's statistics count ``n`` changes of ``executions`` (backends
    report theirs a moment after they commit)."""
    query = "SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'executions'"
    with psycopg.connect(_conninfo(db), autocommit=True) as conn:
        await wait_until_async(
            lambda: conn.execute(query).fetchone()[0] >= n,  # type: ignore[index]
            what=f"{n} changes reported",
        )


def _plan(conn: psycopg.Connection) -> str:
    rows = conn.execute("EXPLAIN EXECUTE held('{w0}')").fetchall()
    return "\n".join(row[0] for row in rows)


async def test_a_plan_made_on_a_young_table_is_replaced_once_it_grew(db: Database) -> None:
    keeper = StatisticsKeeper(db)
    with psycopg.connect(_conninfo(db), autocommit=True) as conn:
        _add_executions(db, 200)  # a young database
        conn.execute(HELD)
        for _ in range(6):  # PostgreSQL settles on one plan after five runs
            conn.execute("EXECUTE held('{w0}')")
        assert await keeper.check_once() == []  # nothing to look at yet

        _add_executions(db, FIRST)
        assert "Seq Scan on executions" in _plan(conn)  # planned for the young table

        assert await wait_until_async(keeper.check_once, what="an analysis") == ["executions"]
        plan = _plan(conn)
        assert "Seq Scan" not in plan, plan
        assert await keeper.check_once() == []  # the statistics are current now


async def test_few_changes_are_left_to_autovacuum(db: Database) -> None:
    _add_executions(db, FIRST // 4)
    await _changes_reported(db, 3 * (FIRST // 4))
    keeper = StatisticsKeeper(db)
    for _ in range(3):
        assert await keeper.check_once() == []


async def test_one_replica_analyzes_at_a_time(db: Database) -> None:
    _add_executions(db, FIRST)
    await _changes_reported(db, 3 * FIRST)
    keeper = StatisticsKeeper(db)
    with psycopg.connect(_conninfo(db), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK,))
        assert await keeper.check_once() == []  # another replica is at it
    assert await wait_until_async(keeper.check_once, what="an analysis") == ["executions"]


async def test_a_database_that_does_not_answer_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    db = Database("postgresql://postgres@127.0.0.1:1/nowhere")  # nothing listens on port 1
    keeper = asyncio.create_task(StatisticsKeeper(db, interval=0.01).run())
    try:
        with caplog.at_level(logging.DEBUG, logger="flux_server.db.statistics"):
            await wait_until_async(lambda: len(caplog.records) >= 3, what="three looks that failed")
    finally:
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        await db.dispose()
    levels = [r.levelno for r in caplog.records if r.name == "flux_server.db.statistics"]
    assert levels[0] == logging.WARNING
    assert set(levels[1:]) == {logging.DEBUG}


def _last_analysis(url: str) -> datetime | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT last_analyze FROM pg_stat_user_tables WHERE relname = 'executions'"
        ).fetchone()
    return None if row is None else row[0]


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_server_on_postgresql_analyzes_a_table_that_grew(server: Server) -> None:
    url = server.options.database_url
    before = _last_analysis(url)
    _add_executions_at(url, FIRST)

    def analyzed() -> bool:
        at = _last_analysis(url)
        return at is not None and (before is None or at > before)

    await wait_until_async(analyzed, what="the server's analysis of executions")
