"""On PostgreSQL, the (worker_name, state) index covers held executions only.

Every query that looks executions up by their worker asks for held ones (claimed, running,
cancelling): what a worker holds now, its load, its requeue. A full index grows with every
execution a worker ever ran, and a generic plan that picks it for a checkpoint read all of
them (2,000 finished rows per statement after 2,000 runs). The partial index holds at most
each worker's capacity. SQLite keeps the full index: its planner uses a partial one only
for queries that repeat the index's condition word for word.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_executions_worker_name_state"
HELD = "state IN ('CLAIMED', 'RUNNING', 'CANCELLING')"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="executions")
    op.create_index(NAME, "executions", ["worker_name", "state"], postgresql_where=sa.text(HELD))


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.drop_index(NAME, table_name="executions")
    op.create_index(NAME, "executions", ["worker_name", "state"])
