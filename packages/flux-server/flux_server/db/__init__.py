"""Persistence: engine, tables, migrations."""

from flux_server.db.engine import Database, Tx
from flux_server.db.migrate import upgrade

__all__ = ["Database", "Tx", "upgrade"]
