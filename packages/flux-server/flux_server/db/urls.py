"""Database URLs: the configured one mapped to the async and blocking drivers Flux uses."""

from __future__ import annotations

import sqlalchemy as sa
from flux.errors import UsageError
from sqlalchemy.engine import make_url

__all__ = ["async_url", "sync_url"]


def async_url(url: str) -> sa.URL:
    """Map a configured URL to its async driver (aiosqlite, psycopg 3).

    Raises:
        UsageError: an unsupported database or an in-memory SQLite database.
    """
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise UsageError(f"invalid database_url {url!r}: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
        parsed = parsed.set(drivername="postgresql")
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise UsageError(
                f"database_url {url!r} is an in-memory SQLite database, which each connection "
                "would see empty; use a file such as 'sqlite:///.flux/flux.db'"
            )
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        driver = parsed.get_driver_name()
        if driver in ("", "psycopg2", "psycopg"):
            return parsed.set(drivername="postgresql+psycopg")
        return parsed
    raise UsageError(
        f"unsupported database_url {url!r}; use 'sqlite:///path/flux.db' or 'postgresql://...'"
    )


def sync_url(url: str | sa.URL) -> sa.URL:
    """The same database through a blocking driver (for the ``alembic`` command line)."""
    parsed = async_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed
