"""Listing executions: a filtered page, newest first, with counts per state.

Pages are read by keyset, never by offset: a cursor holds the creation time and id of the last
item, so every page costs what the first does. Each state a page may hold is read on its own,
down an index by (state, created_at), (workflow_name, state, created_at) or (worker_name,
state, created_at), and the branches are merged; a schedule's executions are looked up by the
ids its runs hold instead. Updated-at bounds are checked on the rows met, not by an index:
that column changes with every checkpoint.

Counts filtered by workflow and state only come from ``execution_counts``, which triggers keep
(revision 0004); counts with any other filter are counted from the rows, a state at a time
over the same index ranges.
"""

from __future__ import annotations

import hashlib
import json
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flux.domain import ExecutionState
from flux.errors import UsageError
from flux.protocol import ExecutionList

from flux_server.db import Database
from flux_server.db.tables import (
    execution_count_changes,
    execution_counts,
    executions,
    schedule_runs,
    schedules,
)
from flux_server.store._rows import STATUS_COLUMNS, status

__all__ = [
    "MAX_LIMIT",
    "ExecutionFilters",
    "Position",
    "counts",
    "decode_cursor",
    "encode_cursor",
    "page",
]

MAX_LIMIT = 500
"""The most executions one page holds."""

_C = executions.c
_ORDER = (_C.created_at.desc(), _C.id.desc())
_CLOCK_SKEW = timedelta(minutes=5)
"""How far apart the clocks of replicas may be: an execution is never updated before it was
created, give or take this."""
_CHECK_CHARS = 16


@dataclass(frozen=True, kw_only=True, slots=True)
class ExecutionFilters:
    """What ``GET /executions`` keeps: every filter given must match (``states``: any of
    them). Time bounds are exclusive."""

    workflow: str | None = None
    states: tuple[ExecutionState, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    updated_after: datetime | None = None
    updated_before: datetime | None = None
    worker: str | None = None
    schedule: str | None = None
    """A schedule's id or name: the executions its ticks started."""

    @property
    def counted(self) -> bool:
        """Whether the maintained counts answer for these filters (workflow and state only)."""
        return (
            self.created_after is None
            and self.created_before is None
            and self.updated_after is None
            and self.updated_before is None
            and self.worker is None
            and self.schedule is None
        )

    def key(self) -> str:
        """The filters as one canonical text: a cursor belongs to the filters of its page."""
        values = [
            self.workflow,
            sorted(s.value for s in self.states),
            *(
                None if t is None else t.isoformat()
                for t in (
                    self.created_after,
                    self.created_before,
                    self.updated_after,
                    self.updated_before,
                )
            ),
            self.worker,
            self.schedule,
        ]
        return json.dumps(values, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ended: the last item's creation time and id."""

    created_at: datetime
    execution_id: str


def encode_cursor(position: Position, filters: ExecutionFilters) -> str:
    """An opaque cursor for the page after ``position`` with ``filters``."""
    text = json.dumps(
        [position.created_at.isoformat(), position.execution_id], separators=(",", ":")
    )
    raw = (_check(text, filters) + text).encode()
    return urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str, filters: ExecutionFilters) -> Position:
    """The position a cursor of :func:`encode_cursor` holds.

    Raises:
        UsageError: it is not such a cursor, was changed, or was made for other filters.
    """
    try:
        raw = urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        check, text = raw[:_CHECK_CHARS], raw[_CHECK_CHARS:]
        created, execution_id = json.loads(text)
        if not isinstance(created, str) or not isinstance(execution_id, str):
            raise ValueError("not a cursor")
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None:
            raise ValueError("not a cursor")
    except (ValueError, TypeError, UnicodeDecodeError):
        raise UsageError(
            f"cursor {cursor!r} is not one this server made; pass the next_cursor of a page "
            "as it is, or leave it out for the first page",
            cursor=cursor,
        ) from None
    if check != _check(text, filters):
        raise UsageError(
            f"cursor {cursor!r} was changed or belongs to other filters; page with the same "
            "filters as the page that gave it, or leave it out for the first page",
            cursor=cursor,
        )
    return Position(created_at, execution_id)


def _check(text: str, filters: ExecutionFilters) -> str:
    digest = hashlib.sha256(f"{filters.key()}\n{text}".encode()).hexdigest()
    return digest[:_CHECK_CHARS]


async def page(
    db: Database, filters: ExecutionFilters, limit: int, after: Position | None = None
) -> ExecutionList:
    """Up to ``limit`` executions matching ``filters`` after ``after`` (``None``: the newest),
    newest first, with the counts per state of all that match."""
    query = _page(filters, after, limit + 1)

    def read(conn: sa.Connection) -> tuple[Sequence[Any], dict[ExecutionState, int]]:
        return conn.execute(query).all(), _counts(conn, filters)

    rows, counts = await db.run_read(read)
    items = [status(row, None) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = encode_cursor(Position(last.created_at, last.id), filters)
    return ExecutionList.model_construct(items=items, next_cursor=next_cursor, counts=counts)


def _conditions(filters: ExecutionFilters) -> list[sa.ColumnElement[bool]]:
    """The filters but the states, as conditions on ``executions``."""
    found: list[sa.ColumnElement[bool]] = []
    if filters.workflow is not None:
        found.append(_C.workflow_name == filters.workflow)
    if filters.worker is not None:
        found.append(_C.worker_name == filters.worker)
    if filters.created_after is not None:
        found.append(_C.created_at > filters.created_after)
    if filters.created_before is not None:
        found.append(_C.created_at < filters.created_before)
    if filters.updated_after is not None:
        found.append(_C.updated_at > filters.updated_after)
    if filters.updated_before is not None:
        found.append(_C.updated_at < filters.updated_before)
        # Implied, and it bounds the index range: nothing updated before then was created
        # after it.
        found.append(_C.created_at < filters.updated_before + _CLOCK_SKEW)
    if filters.schedule is not None:
        chosen = sa.select(schedules.c.id).where(
            sa.or_(schedules.c.id == filters.schedule, schedules.c.name == filters.schedule)
        )
        runs = sa.select(schedule_runs.c.execution_id).where(
            schedule_runs.c.schedule_id.in_(chosen), schedule_runs.c.execution_id.is_not(None)
        )
        found.append(_C.id.in_(runs))
    return found


def _page(filters: ExecutionFilters, after: Position | None, n: int) -> sa.Select[Any]:
    conditions = _conditions(filters)
    if after is not None:
        # Two terms, not a row comparison: the first bounds the index range on either database.
        conditions += [
            _C.created_at <= after.created_at,
            sa.or_(_C.created_at < after.created_at, _C.id < after.execution_id),
        ]
    if filters.schedule is not None:
        # The schedule's runs lead: few executions, each found by its id, then sorted.
        conditions += _unindexed_states(filters)
        return sa.select(*STATUS_COLUMNS).where(*conditions).order_by(*_ORDER).limit(n)
    # One branch per state, each down its index range newest first, then merged: an IN list
    # over the states would walk one index through every state's rows, or sort them all.
    branches = [
        sa.select(*STATUS_COLUMNS).where(_C.state == state, *conditions).order_by(*_ORDER).limit(n)
        for state in _states(filters)
    ]
    if len(branches) == 1:
        return branches[0]
    merged = sa.union_all(*(sa.select(b.subquery()) for b in branches)).subquery()
    return sa.select(merged).order_by(merged.c.created_at.desc(), merged.c.id.desc()).limit(n)


def _states(filters: ExecutionFilters) -> list[str]:
    return [s.value for s in filters.states or ExecutionState]


def _unindexed_states(filters: ExecutionFilters) -> list[sa.ColumnElement[bool]]:
    """The state filter as a condition no index on ``state`` answers: SQLite, without
    statistics, would otherwise walk a state's whole range rather than look up the ids it
    is given."""
    if not filters.states:
        return []
    return [_C.state.concat("").in_(_states(filters))]


def counts(conn: sa.Connection) -> dict[ExecutionState, int]:
    """How many executions are in each state (states with none left out), from the counts
    the triggers keep: what every replica reads alike (``flux_executions``)."""
    return _counts(conn, ExecutionFilters())


def _counts(conn: sa.Connection, filters: ExecutionFilters) -> dict[ExecutionState, int]:
    query = _maintained_counts(filters) if filters.counted else _row_counts(filters)
    return {ExecutionState(state): int(n) for state, n in conn.execute(query) if n}


def _maintained_counts(filters: ExecutionFilters) -> sa.Select[Any]:
    """The kept counts of a workflow (or all) per state: rows plus pending changes."""
    changes = execution_count_changes
    # The pending changes from the oldest one, down the key: folded changes leave dead rows
    # behind until a vacuum, which a scan of the whole table would read through.
    pending = changes.c.seq >= sa.select(sa.func.min(changes.c.seq)).scalar_subquery()
    parts = []
    for table, conditions in ((execution_counts, []), (changes, [pending])):
        if filters.workflow is not None:
            conditions.append(table.c.workflow_name == filters.workflow)
        if filters.states:
            conditions.append(table.c.state.in_(_states(filters)))
        parts.append(sa.select(table.c.state, table.c.n).where(*conditions))
    both = sa.union_all(*parts).subquery()
    return sa.select(both.c.state, sa.func.sum(both.c.n)).group_by(both.c.state)


def _row_counts(filters: ExecutionFilters) -> sa.CompoundSelect[Any] | sa.Select[Any]:
    """The matching rows counted, a state at a time over its index range (as pages read)."""
    conditions = _conditions(filters)
    if filters.schedule is not None:
        conditions += _unindexed_states(filters)
        return sa.select(_C.state, sa.func.count()).where(*conditions).group_by(_C.state)
    return sa.union_all(
        *(
            sa.select(sa.literal(state).label("state"), sa.func.count())
            .select_from(executions)
            .where(_C.state == state, *conditions)
            for state in _states(filters)
        )
    )
