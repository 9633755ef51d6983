"""Alembic environment for the Flux server schema.

The server runs migrations on start (``flux_server.db.migrate.upgrade``), passing its own
connection; ``flux-server db upgrade`` does the same without serving. Used from the ``alembic``
command line, set ``sqlalchemy.url`` in the config.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context
from flux_server.db.migrate import VERSION_TABLE
from flux_server.db.tables import compared_on, metadata
from flux_server.db.urls import sync_url

config = context.config
_OPTIONS: dict[str, Any] = {
    "target_metadata": metadata,
    "version_table": VERSION_TABLE,
    "render_as_batch": True,
    "compare_type": True,
}


def _run(connection: sa.Connection) -> None:
    include = compared_on(connection.dialect.name)
    context.configure(connection=connection, include_object=include, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, **_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()
elif config.attributes.get("connection") is not None:
    _run(config.attributes["connection"])
else:
    engine = sa.create_engine(sync_url(config.get_main_option("sqlalchemy.url") or ""))
    with engine.connect() as connection:
        _run(connection)
        connection.commit()
    engine.dispose()
