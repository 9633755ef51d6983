"""Persistence: the database handle over one backend per dialect, tables, migrations."""

from flux_server.db.database import Database
from flux_server.db.migrate import upgrade
from flux_server.db.tx import Tx

__all__ = ["Database", "Tx", "upgrade"]
