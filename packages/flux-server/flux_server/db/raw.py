"""Statements sent straight to the DB-API cursor, for the hottest paths.

Through SQLAlchemy Core a statement pays a compile-cache lookup, per-parameter processing
and result wrapping, several times what the driver alone takes for a one-row insert (see
docs/benchmarks.md). A :class:`Statement` is written once with ``:name`` parameters (the
sqlite3 driver's own style; rewritten to psycopg's ``%(name)s`` for PostgreSQL), runs on the
driver connection under a SQLAlchemy ``Connection`` (so inside its transaction), and converts
values as the column types of :mod:`flux_server.db.types` would: epoch seconds and JSON text
on SQLite, aware datetimes and ``json`` on PostgreSQL. Rows come back as named tuples with
the same conversions applied.
"""

from __future__ import annotations

import json
import re
from collections import namedtuple
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Json

from flux_server.db.types import epoch, from_epoch

__all__ = ["Statement", "driver", "json_text", "translated"]

_PARAM = re.compile(r"(?<![:\w]):(\w+)")


def driver(conn: sa.Connection) -> Any:
    """The DB-API connection under ``conn``, in ``conn``'s transaction."""
    return conn.connection.dbapi_connection


@contextmanager
def translated(conn: sa.Connection, sql: str, params: Any) -> Iterator[None]:
    """Raise the driver's errors as the SQLAlchemy exceptions the callers handle."""
    error = conn.dialect.loaded_dbapi.Error
    try:
        yield
    except error as exc:
        raise sa.exc.DBAPIError.instance(sql, params, exc, error) from exc


def driver_error(exc: psycopg.Error, sql: str | None = None, params: Any = None) -> Exception:
    """A psycopg error as the SQLAlchemy exception a statement through SQLAlchemy would raise
    (``OperationalError``, ``DataError``, ...), for code that uses psycopg directly."""
    return sa.exc.DBAPIError.instance(sql, params, exc, psycopg.Error)


def json_text(value: Any) -> str:
    """A JSON column's text, as SQLAlchemy's JSON type stores it (``None`` is ``null``)."""
    return "null" if value is None else json.dumps(value)


def _from_epoch(value: Any) -> datetime | None:
    return None if value is None else from_epoch(value)


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else value.astimezone(UTC)


def _from_json(value: Any) -> Any:
    # A JSON column has numeric affinity on SQLite: the text of a number comes back a number.
    return json.loads(value) if isinstance(value, str | bytes) else value


class Statement:
    """One statement with its parameters' and result columns' conversions.

    Args:
        sql: the statement, parameters as ``:name``; no literal ``%`` (psycopg's marker).
        postgresql: the statement for PostgreSQL, where it differs.
        times: parameters stored as :class:`~flux_server.db.types.UTCDateTime`.
        json: parameters stored as JSON.
        lists: parameters that are lists of values, written ``IN (:x)``: one parameter per
            value on SQLite, one array on PostgreSQL (``= ANY(:x)``).
        columns: the result's columns, in order, when it returns rows.
        time_columns / json_columns: those of ``columns`` to convert back.
        plain: rows as the driver returns them (tuples, no conversion): for long results
            whose caller reads them by position.
    """

    def __init__(
        self,
        sql: str,
        *,
        postgresql: str | None = None,
        times: Iterable[str] = (),
        json: Iterable[str] = (),
        lists: Iterable[str] = (),
        columns: Sequence[str] = (),
        time_columns: Iterable[str] = (),
        json_columns: Iterable[str] = (),
        plain: bool = False,
    ) -> None:
        pg = sql if postgresql is None else postgresql
        for name in lists:  # PostgreSQL binds the list as one array
            pg = pg.replace(f"IN (:{name})", f"= ANY(:{name})")
        assert "%" not in pg, "a literal % would be read as a psycopg parameter"
        self.sql = {"sqlite": sql, "postgresql": _PARAM.sub(r"%(\1)s", pg)}
        self.times = tuple(times)
        self.json = tuple(json)
        self.lists = tuple(lists)
        self._expanded: dict[tuple[int, ...], str] = {}
        self.columns = tuple(columns)
        self.row: Any = namedtuple("Row", columns) if columns and not plain else None
        self.readers = {
            "sqlite": _readers(columns, time_columns, _from_epoch, json_columns, _from_json),
            "postgresql": _readers(columns, time_columns, _aware, (), None),
        }

    def execute(self, conn: sa.Connection, params: dict[str, Any]) -> list[Any]:
        """Run with ``params``; the rows it returns (none for a write without RETURNING).

        Raises:
            sqlalchemy.exc.DBAPIError: the driver's error, as SQLAlchemy would raise it
                (``IntegrityError``, ``DataError``, ...).
        """
        dialect = conn.dialect.name
        sql = self.sql[dialect]
        if self.lists and dialect == "sqlite":
            sql, params = self._expand(sql, params)
        with translated(conn, sql, params):
            cursor = driver(conn).cursor()
            try:
                cursor.execute(sql, self._convert(dialect, params))
                if not self.columns:
                    return []
                rows = cursor.fetchall()
                return rows if self.row is None else self._rows(dialect, rows)
            finally:
                cursor.close()

    async def execute_async(self, conn: Any, params: dict[str, Any]) -> list[Any]:
        """:meth:`execute` through ``tx.conn`` of ``Database.run_statement``: a psycopg
        ``AsyncConnection`` on PostgreSQL; on SQLite the writer's connection, run at once.

        Raises:
            sqlalchemy.exc.DBAPIError: the driver's error, as :meth:`execute` raises it.
        """
        if not isinstance(conn, psycopg.AsyncConnection):  # SQLite's StatementConnection
            return self.execute(conn.sync_connection, params)
        sql = self.sql["postgresql"]
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(sql, self._convert("postgresql", params))
                if not self.columns:
                    return []
                rows = await cursor.fetchall()
        except psycopg.Error as exc:
            raise driver_error(exc, sql, params) from exc
        return rows if self.row is None else self._rows("postgresql", rows)

    def executemany(self, conn: sa.Connection, params: Sequence[dict[str, Any]]) -> None:
        dialect = conn.dialect.name
        sql = self.sql[dialect]
        assert not self.lists, "list parameters only in execute()"
        with translated(conn, sql, params):
            cursor = driver(conn).cursor()
            try:
                cursor.executemany(sql, [self._convert(dialect, p) for p in params])
            finally:
                cursor.close()

    def _expand(self, sql: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """SQLite binds no arrays: ``IN (:x)`` becomes ``IN (:x_0, :x_1, ...)``. (Reading the
        list with ``json_each`` instead made the planner leave the primary key for another
        index.) The SQL for each count of values is made once."""
        params = dict(params)
        lists = [params.pop(name) for name in self.lists]
        key = tuple(len(values) for values in lists)
        expanded = self._expanded.get(key)
        if expanded is None:
            expanded = sql
            for name, count in zip(self.lists, key, strict=True):
                names = ", ".join(f":{name}_{i}" for i in range(count))
                expanded = re.sub(rf":{name}\b", names, expanded)
            if len(self._expanded) >= 256:  # bounded: batch sizes vary
                self._expanded.clear()
            self._expanded[key] = expanded
        for name, values in zip(self.lists, lists, strict=True):
            params.update((f"{name}_{i}", value) for i, value in enumerate(values))
        return expanded, params

    def _convert(self, dialect: str, params: dict[str, Any]) -> dict[str, Any]:
        if not (self.times or self.json):
            return params
        params = dict(params)
        sqlite = dialect == "sqlite"
        for name in self.times:
            value = params[name]
            if value is not None:
                params[name] = epoch(value) if sqlite else value
        for name in self.json:
            params[name] = json_text(params[name]) if sqlite else Json(params[name])
        return params

    def _rows(self, dialect: str, rows: list[tuple[Any, ...]]) -> list[Any]:
        assert self.row is not None
        make = self.row._make
        readers = self.readers[dialect]
        if not readers:
            return [make(r) for r in rows]
        out = []
        for r in rows:
            values = list(r)
            for i, read in readers:
                values[i] = read(values[i])
            out.append(make(values))
        return out


def _readers(
    columns: Sequence[str],
    time_columns: Iterable[str],
    read_time: Any,
    json_columns: Iterable[str],
    read_json: Any,
) -> list[tuple[int, Any]]:
    index = {c: i for i, c in enumerate(columns)}
    readers = [(index[c], read_time) for c in time_columns]
    readers += [(index[c], read_json) for c in json_columns]
    return readers
