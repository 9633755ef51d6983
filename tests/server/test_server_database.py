"""The database handle: transactions, post-commit notes and facts, and the guard against
nesting.

The contract tests run every way in (``run_write``, ``run_write(insert_only=True)``,
``run_statement``, ``async with db.write()``) on both backends: what callers rely on without
asking which dialect they run on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from flux_server.db import Database, upgrade
from flux_server.db.notifier import NOTIFY_CHANNEL, listener_name
from flux_server.db.raw import Statement
from flux_server.db.tables import secrets
from flux_server.db.urls import sync_url

from tests.support.waiting import wait_until_async

ROW = {"name": "K", "value": b"x", "updated_at": datetime(2025, 1, 1, tzinfo=UTC)}


class _Noted(Database):
    """A database that records the notes it sends and the facts it counts."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.notes: list[str] = []
        self.sink = self.notes.append
        self.facts: list[Any] = []
        self.counter = self.facts.extend


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[_Noted]:
    """A migrated database with an empty ``secrets`` table."""
    db = _Noted(db_url)
    try:
        await upgrade(db)
        await db.run_write(lambda tx: tx.conn.execute(sa.delete(secrets)))
        yield db
    finally:
        await db.dispose()


async def test_notes_follow_commits_and_errors_roll_back(db: _Noted) -> None:
    notes = db.notes

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


@pytest.mark.parametrize("insert_only", [False, True], ids=["writes", "insert-only"])
async def test_concurrent_writes_succeed_or_fail_each_on_its_own(
    db: _Noted, insert_only: bool
) -> None:
    """Many writes queued at once (on SQLite, and insert-only ones on PostgreSQL, they share a
    transaction): one that fails rolls back alone; the others are committed, their notes sent
    and their facts counted once each (those of a batch that rolled back and ran again too),
    their answers their own."""
    notes = db.notes

    def insert(i: int):
        def write(tx):
            tx.conn.execute(sa.insert(secrets).values({**ROW, "name": f"K{i}"}))
            tx.notify(f"wrote {i}")
            tx.record(i)
            if i == 7:
                raise ValueError("seven fails")
            return i

        return write

    def same_key(tx):
        tx.conn.execute(sa.insert(secrets).values(ROW))

    outcomes = await asyncio.gather(
        *(db.run_write(insert(i), insert_only=insert_only) for i in range(20)),
        db.run_write(same_key, insert_only=insert_only),
        db.run_write(same_key, insert_only=insert_only),
        return_exceptions=True,
    )
    assert outcomes[:7] == list(range(7)) and outcomes[8:20] == list(range(8, 20))
    assert isinstance(outcomes[7], ValueError)
    # The same key twice: one of the two fails (the second in line, on SQLite).
    assert sum(isinstance(o, sa.exc.IntegrityError) for o in outcomes[20:]) == 1
    names = sa.select(secrets.c.name).order_by(secrets.c.name)
    stored = await db.run_read(lambda conn: conn.execute(names).scalars().all())
    assert sorted(stored) == sorted(["K", *(f"K{i}" for i in range(20) if i != 7)])
    assert sorted(notes) == sorted(f"wrote {i}" for i in range(20) if i != 7)
    assert sorted(db.facts) == [i for i in range(20) if i != 7]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_loop_statements_deliver_notes_even_when_the_caller_leaves(db: _Noted) -> None:
    """``run_statement``: a statement's notes are delivered after it commits, also when the
    caller was cancelled while it ran; a failed one sends none and its connection is not
    reused; more callers than connections wait their turn."""
    notes = db.notes
    insert = "INSERT INTO secrets (name, value, updated_at) VALUES (%s, %s, %s)"

    async def slow_insert(tx, name: str) -> str:
        await tx.conn.execute("SELECT pg_sleep(0.3)")
        await tx.conn.execute(insert, (name, b"x", "2025-01-01"))
        tx.notify(f"wrote {name}")
        return name

    caller = asyncio.ensure_future(db.run_statement(lambda tx: slow_insert(tx, "left")))
    await asyncio.sleep(0.1)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await wait_until_async(lambda: notes, what="the cancelled caller's note")
    assert notes == ["wrote left"]

    async def failing(tx) -> None:
        tx.notify("never")
        await tx.conn.execute("SELECT 1/0")

    broken = []

    async def keep(tx) -> None:
        broken.append(tx.conn)
        await failing(tx)

    for _ in range(6):  # more failures than connections: each failed one freed its slot
        with pytest.raises(sa.exc.DataError):  # the driver's error, as SQLAlchemy's
            await db.run_statement(keep)
    assert all(conn.closed for conn in broken)
    assert notes == ["wrote left"]

    used = await asyncio.gather(
        *(db.run_statement(lambda tx, i=i: slow_insert(tx, f"K{i}")) for i in range(10))
    )
    assert sorted(used) == sorted(f"K{i}" for i in range(10))
    assert sorted(notes[1:]) == sorted(f"wrote K{i}" for i in range(10))
    names = sa.select(secrets.c.name)
    stored = await db.run_read(lambda conn: conn.execute(names).scalars().all())
    assert sorted(stored) == sorted(["left", *(f"K{i}" for i in range(10))])


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_other_replicas_hear_committed_notes_only(db: _Noted) -> None:
    """Through NOTIFY: hints (sent just after the commit) and the other notes (sent inside the
    transaction) alike, tagged with this process's origin; nothing of a rolled-back write."""
    conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    async with await psycopg.AsyncConnection.connect(
        conninfo, autocommit=True, application_name=listener_name("another-replica")
    ) as listener:
        await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")

        def failing(tx):
            tx.notify("dispatch")
            tx.notify("token:lost")
            raise ValueError("boom")

        with pytest.raises(ValueError):
            await db.run_write(failing)

        def write(tx):
            tx.notify("exec:e1:COMPLETED")
            tx.notify("token:abc")

        await db.run_write(write)
        await db.run_write(lambda tx: tx.notify("dispatch"), insert_only=True)
        heard: list[str] = []
        async with asyncio.timeout(10):
            async for notice in listener.notifies():
                heard.append(notice.payload)
                if len(heard) == 3:
                    break
    assert sorted(heard) == sorted(
        f"{db.origin}|{n}" for n in ("exec:e1:COMPLETED", "token:abc", "dispatch")
    )


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_hints_go_out_only_while_another_replica_listens(db: _Noted) -> None:
    """A single server sends no hint notes (nobody else would hear them); the rare notes go
    out regardless. Once another replica's listener is connected, hints follow."""
    db._backend.notifier.RECHECK = 0  # look up the listeners for every batch
    conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)

    async def heard(listener: psycopg.AsyncConnection, count: int) -> list[str]:
        got: list[str] = []
        async with asyncio.timeout(10):
            async for notice in listener.notifies():
                got.append(notice.payload.partition("|")[2])
                if len(got) == count:
                    return got
        return got

    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as plain:
        await plain.execute(f"LISTEN {NOTIFY_CHANNEL}")  # not a replica's listener
        await db.run_write(lambda tx: tx.notify("exec:e1:COMPLETED"))
        await asyncio.to_thread(db._backend.notifier.flush)  # dropped by now, or sent
        await db.run_write(lambda tx: tx.notify("token:abc"))
        assert await heard(plain, 1) == ["token:abc"]  # the hint was dropped

        async with await psycopg.AsyncConnection.connect(
            conninfo, autocommit=True, application_name=listener_name("another-replica")
        ):
            await db.run_write(lambda tx: tx.notify("exec:e2:COMPLETED"))
            assert await heard(plain, 1) == ["exec:e2:COMPLETED"]


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_server_known_alone_drops_hints_at_once_until_it_looks_again(db: _Noted) -> None:
    """Once the notifier found no other replica, hints are dropped by the writer itself for
    ``RECHECK`` seconds (the notifier thread is not even woken); a replica that starts
    meanwhile hears hints once the server looked again."""
    notifier = db._backend.notifier
    notifier.RECHECK = 0.5
    conninfo = db.url.set(drivername="postgresql").render_as_string(hide_password=False)
    await db.run_write(lambda tx: tx.notify("exec:e0:COMPLETED"))
    await asyncio.to_thread(notifier.flush)  # looked up: nobody else listens
    assert notifier._others is False
    async with await psycopg.AsyncConnection.connect(
        conninfo, autocommit=True, application_name=listener_name("another-replica")
    ) as listener:
        await listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        notifier.send(["exec:e1:COMPLETED"])
        assert notifier._notes.empty()  # dropped on the spot
        await asyncio.sleep(0.6)
        await db.run_write(lambda tx: tx.notify("exec:e2:COMPLETED"))
        async with asyncio.timeout(10):
            notice = await anext(listener.notifies())
    assert notice.payload == f"{db.origin}|exec:e2:COMPLETED"


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_loop_statement_without_a_database_fails_as_sqlalchemy_would(db_url: str) -> None:
    """No connection to be had: each call fails at once with SQLAlchemy's error, and a failed
    connect frees its slot (more failures than slots, none left waiting)."""
    gone = Database(db_url.rsplit("/", 1)[0] + "/flux_no_such_database")
    try:
        for _ in range(6):
            with pytest.raises(sa.exc.OperationalError):
                async with asyncio.timeout(10):
                    await gone.run_statement(lambda tx: tx.conn.execute("SELECT 1"))
    finally:
        await gone.dispose()


# -- the contract both backends meet ------------------------------------------------------------

_AT = "2025-01-01T00:00:00+00:00"  # the IsoDateTime column's text on SQLite, cast on PostgreSQL
_INSERT = Statement("INSERT INTO secrets (name, value, updated_at) VALUES (:name, :value, :at)")
_INSERT_TWICE = Statement(  # one statement whose second row breaks the key: nothing stays
    "INSERT INTO secrets (name, value, updated_at) VALUES (:name, :value, :at), "
    "(:name, :value, :at)"
)
_NAMES = Statement(
    "SELECT name FROM secrets WHERE name IN (:names) ORDER BY name",
    lists=("names",),
    columns=("name",),
)
_ALL_NAMES = sa.select(secrets.c.name).order_by(secrets.c.name)


async def _by_run_write(db: Database, name: str, fail: bool, *, insert_only: bool = False) -> None:
    rows = [{**ROW, "name": name}] * (2 if fail else 1)

    def write(tx):
        tx.notify(f"wrote {name}")
        tx.record(f"counted {name}")
        tx.conn.execute(sa.insert(secrets).values(rows))

    await db.run_write(write, insert_only=insert_only)


async def _by_statement(db: Database, name: str, fail: bool) -> None:
    statement = _INSERT_TWICE if fail else _INSERT

    async def write(tx) -> None:
        tx.notify(f"wrote {name}")
        tx.record(f"counted {name}")
        await statement.execute_async(tx.conn, {"name": name, "value": b"x", "at": _AT})

    await db.run_statement(write)


async def _by_block(db: Database, name: str, fail: bool) -> None:
    rows = [{**ROW, "name": name}] * (2 if fail else 1)
    async with db.write() as tx:
        tx.notify(f"wrote {name}")
        tx.record(f"counted {name}")
        await tx.conn.execute(sa.insert(secrets).values(rows))


WAYS: dict[str, Callable[[Database, str, bool], Awaitable[None]]] = {
    "run_write": _by_run_write,
    "insert_only": partial(_by_run_write, insert_only=True),
    "run_statement": _by_statement,
    "write_block": _by_block,
}


@contextlib.contextmanager
def _stored_elsewhere(db: Database) -> Iterator[Callable[[], list[str]]]:
    """Reads the names stored, over a connection of its own (what another process sees)."""
    engine = sa.create_engine(sync_url(db.url), poolclass=sa.pool.NullPool)
    try:

        def names() -> list[str]:
            with engine.connect() as conn:
                return list(conn.execute(_ALL_NAMES).scalars())

        yield names
    finally:
        engine.dispose()


@pytest.mark.parametrize("way", list(WAYS))
async def test_contract_notes_arrive_after_the_commit_and_reads_see_it(
    db: _Noted, way: str
) -> None:
    """Each note is delivered once its write is committed (another connection sees the row by
    then); run_read and read() see every committed write."""
    seen: list[tuple[str, list[str]]] = []
    with _stored_elsewhere(db) as stored:
        db.sink = lambda note: seen.append((note, stored()))
        await WAYS[way](db, "A", False)
        await WAYS[way](db, "B", False)
    assert seen == [("wrote A", ["A"]), ("wrote B", ["A", "B"])]
    assert await db.run_read(lambda conn: conn.execute(_ALL_NAMES).scalars().all()) == ["A", "B"]
    async with db.read() as conn:
        assert (await conn.execute(_ALL_NAMES)).scalars().all() == ["A", "B"]


@pytest.mark.parametrize("way", list(WAYS))
async def test_contract_a_failed_write_rolls_back_and_delivers_nothing(
    db: _Noted, way: str
) -> None:
    """A write that fails (its one statement breaks a key after inserting a row) raises the
    driver's error as SQLAlchemy's, stores nothing and delivers none of its notes or facts;
    the same way in serves the next write."""
    with pytest.raises(sa.exc.IntegrityError):
        await WAYS[way](db, "A", True)
    assert db.notes == [] and db.facts == []
    assert await db.run_read(lambda conn: conn.execute(_ALL_NAMES).scalars().all()) == []
    await WAYS[way](db, "A", False)
    assert db.notes == ["wrote A"] and db.facts == ["counted A"]
    assert await db.run_read(lambda conn: conn.execute(_ALL_NAMES).scalars().all()) == ["A"]


async def test_contract_run_statement_reads_writes_and_answers_on_both_dialects(
    db: _Noted,
) -> None:
    """The same statement function runs on either dialect: it may read before it writes, and
    its answer is the caller's."""
    await db.run_write(lambda tx: tx.conn.execute(sa.insert(secrets).values(ROW)))

    async def add_missing(tx, names: list[str]) -> list[str]:
        present = {row.name for row in await _NAMES.execute_async(tx.conn, {"names": names})}
        added = [name for name in names if name not in present]
        for name in added:
            await _INSERT.execute_async(tx.conn, {"name": name, "value": b"x", "at": _AT})
        if added:
            tx.notify("added")
        return added

    assert await db.run_statement(lambda tx: add_missing(tx, ["K", "L", "M"])) == ["L", "M"]
    assert await db.run_statement(lambda tx: add_missing(tx, ["K", "L"])) == []
    assert db.notes == ["added"]
    stored = await db.run_read(lambda conn: conn.execute(_ALL_NAMES).scalars().all())
    assert stored == ["K", "L", "M"]


async def test_contract_a_statement_whose_caller_left_still_delivers_its_notes(
    db: _Noted,
) -> None:
    """A statement runs to its end when its caller is cancelled, and its notes follow."""
    caller = asyncio.ensure_future(_by_statement(db, "left", False))
    await asyncio.sleep(0)  # started: waiting for its statement
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller

    async def delivered() -> bool:
        return db.notes == ["wrote left"]

    await wait_until_async(delivered)
    assert await db.run_read(lambda conn: conn.execute(_ALL_NAMES).scalars().all()) == ["left"]


async def test_contract_no_write_waits_inside_a_write_block(db: _Noted) -> None:
    """run_write and run_statement refuse to run inside ``async with db.write()`` (on SQLite
    they would wait for the writer the block holds), and the block still commits."""
    async with db.write() as tx:
        with pytest.raises(RuntimeError, match="inside"):
            await db.run_write(lambda tx: None)
        with pytest.raises(RuntimeError, match="inside"):
            await _by_statement(db, "nested", False)
        await tx.conn.execute(sa.insert(secrets).values(ROW))
    assert await db.run_read(lambda conn: conn.execute(_ALL_NAMES).scalars().all()) == ["K"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_sqlite_statement_that_waits_on_anything_else_fails_and_rolls_back(
    db: _Noted,
) -> None:
    """On SQLite a statement function runs in the writer thread without suspending: one that
    awaits something other than its statements fails, and what it wrote is rolled back."""

    async def waits(tx) -> None:
        await _INSERT.execute_async(tx.conn, {"name": "K", "value": b"x", "at": _AT})
        tx.notify("never")
        await asyncio.sleep(0)

    with pytest.raises(RuntimeError, match="waited on something other"):
        await db.run_statement(waits)
    assert db.notes == []
    assert await db.run_read(lambda conn: conn.execute(_ALL_NAMES).scalars().all()) == []
