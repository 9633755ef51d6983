"""Statements sent straight to the driver (flux_server.db.raw) store and read values exactly
as the SQLAlchemy column types do, and fail with SQLAlchemy's exceptions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from flux_server.db import Database, upgrade
from flux_server.db.raw import Statement
from flux_server.db.tables import executions, workflows

WHEN = datetime(2026, 11, 29, 1, 2, 3, 456789, tzinfo=UTC)
VIEWS = [None, 4, 1.5, "4", "ü\u2028", [1, {"b": None, "a": [True]}], {"z": 1, "a": 2}]

_INSERT = Statement(
    "INSERT INTO executions (id, workflow_id, workflow_name, workflow_version, state, "
    "input_view, created_at, updated_at) "
    "VALUES (:id, 'wf', 'w', 1, 'SCHEDULED', :view, :at, :at)",
    times=("at",),
    json=("view",),
)
_READ = Statement(
    "SELECT id, input_view, created_at FROM executions WHERE id IN (:ids) ORDER BY id",
    lists=("ids",),
    columns=("id", "input_view", "created_at"),
    time_columns=("created_at",),
    json_columns=("input_view",),
)


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    db = Database(db_url)
    try:
        await upgrade(db)

        def workflow(tx):
            tx.conn.execute(sa.delete(executions))
            tx.conn.execute(sa.delete(workflows))
            tx.conn.execute(
                sa.insert(workflows).values(
                    id="wf", name="w", version=1, source="", source_hash="h", options={},
                    created_at=WHEN,
                )
            )  # fmt: skip

        await db.run_write(workflow)
        yield db
    finally:
        await db.dispose()


async def test_values_read_back_as_sqlalchemy_reads_them(db: Database) -> None:
    ids = [f"e{i}" for i in range(len(VIEWS))]
    await db.run_write(
        lambda tx: _INSERT.executemany(
            tx.conn, [{"id": i, "view": v, "at": WHEN} for i, v in zip(ids, VIEWS, strict=True)]
        )
    )
    c = executions.c
    query = sa.select(c.id, c.input_view, c.created_at).order_by(c.id)
    through_core = await db.run_read(lambda conn: conn.execute(query).all())
    assert [(r.id, r.input_view, r.created_at) for r in through_core] == [
        (i, v, WHEN) for i, v in zip(ids, VIEWS, strict=True)
    ]
    raw = await db.run_read(lambda conn: _READ.execute(conn, {"ids": ids[::-1]}))
    assert [tuple(r) for r in raw] == [tuple(r) for r in through_core]
    assert raw[0].created_at.tzinfo is not None
    assert await db.run_read(lambda conn: _READ.execute(conn, {"ids": []})) == []


async def test_driver_errors_are_sqlalchemy_errors(db: Database) -> None:
    row = {"id": "same", "view": None, "at": WHEN}
    await db.run_write(lambda tx: _INSERT.execute(tx.conn, row))
    with pytest.raises(sa.exc.IntegrityError):
        await db.run_write(lambda tx: _INSERT.execute(tx.conn, row))
    # The failed transaction rolled back and the thread's connection still serves.
    found = await db.run_read(lambda conn: _READ.execute(conn, {"ids": ["same"]}))
    assert [r.id for r in found] == ["same"]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_on_the_event_loop_statements_read_and_fail_as_in_threads(db: Database) -> None:
    """``execute_async`` (psycopg's async connection, through ``Database.run_statement``)
    reads rows back as ``execute`` does, and fails with the same SQLAlchemy exceptions."""
    ids = [f"e{i}" for i in range(len(VIEWS))]
    rows = [{"id": i, "view": v, "at": WHEN} for i, v in zip(ids, VIEWS, strict=True)]
    for row in rows:
        assert await db.run_statement(lambda tx, row=row: _INSERT.execute_async(tx.conn, row)) == []
    in_thread = await db.run_read(lambda conn: _READ.execute(conn, {"ids": ids}))
    on_loop = await db.run_statement(lambda tx: _READ.execute_async(tx.conn, {"ids": ids}))
    assert on_loop == in_thread
    assert [(r.id, r.input_view, r.created_at) for r in on_loop] == [
        (i, v, WHEN) for i, v in zip(ids, VIEWS, strict=True)
    ]
    with pytest.raises(sa.exc.IntegrityError):
        await db.run_statement(lambda tx: _INSERT.execute_async(tx.conn, rows[0]))
    bad_json = {"id": "bad", "view": float("nan"), "at": WHEN}
    with pytest.raises(sa.exc.DBAPIError):
        await db.run_statement(lambda tx: _INSERT.execute_async(tx.conn, bad_json))
    found = await db.run_statement(lambda tx: _READ.execute_async(tx.conn, {"ids": ["bad"]}))
    assert found == []


def test_raw_json_is_spliced_byte_for_byte_and_stays_one_line() -> None:
    import json

    from flux_server.rawjson import _MARK, RawJson, to_json

    built = '{"ids" : ["a", "b"],\n "values" : [null, "x\\ny"]}'
    value = {"claim": {"source": _MARK[:-1], "history": RawJson(built)}, "n": [RawJson("1")]}
    data = to_json(value)
    assert b"\n" not in data  # an SSE data: line
    assert json.loads(data) == {
        "claim": {"source": _MARK[:-1], "history": {"ids": ["a", "b"], "values": [None, "x\ny"]}},
        "n": [1],
    }
    assert to_json({"plain": [1, "two"]}) == b'{"plain":[1,"two"]}'
    with pytest.raises(Exception, match="not JSON serializable"):
        to_json({"x": object()})
