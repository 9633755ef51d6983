"""Column types that read back the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["JSON_TYPE", "TIMESTAMP_TYPE", "IsoDateTime", "UTCDateTime", "epoch", "from_epoch"]

# What the migrations create: epoch seconds on SQLite (cheap to store and compare, no string
# parsing on the read path), timestamptz on PostgreSQL.
TIMESTAMP_TYPE = sa.DateTime(timezone=True).with_variant(sa.Float(), "sqlite")
# Plain ``json`` on PostgreSQL, not ``jsonb``: views are stored and returned, never queried, and
# ``json`` keeps any valid JSON text (``jsonb`` rejects "\u0000").
JSON_TYPE = sa.JSON()


def epoch(value: datetime) -> float:
    """How :class:`UTCDateTime` stores ``value`` on SQLite (a naive datetime is UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def from_epoch(value: float) -> datetime:
    """What :class:`UTCDateTime` reads back from SQLite's epoch seconds."""
    return datetime.fromtimestamp(value, UTC)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime in, an aware UTC datetime out, on both databases."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Float())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if dialect.name == "sqlite":
            return epoch(value)
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, int | float):
            return from_epoch(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class IsoDateTime(sa.types.TypeDecorator[datetime]):
    """ISO 8601 text on SQLite, timestamptz on PostgreSQL.

    For the ``secrets`` table, which on SQLite is shared with :class:`flux.secrets.LocalSecretStore`
    (local runs and the server use the same file by default) and must keep its layout.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat() if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
