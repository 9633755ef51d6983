"""The listing index by worker holds executions a worker took only: each new execution (queued,
no worker yet) was one more entry in it, under NULL, that no query reads (every query by
worker names one, which implies the index's condition on both databases).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_executions_worker_name_state_created_at"
COLUMNS = ["worker_name", "state", "created_at"]
TAKEN = sa.text("worker_name IS NOT NULL")


def upgrade() -> None:
    op.drop_index(NAME, table_name="executions")
    op.create_index(NAME, "executions", COLUMNS, sqlite_where=TAKEN, postgresql_where=TAKEN)


def downgrade() -> None:
    op.drop_index(NAME, table_name="executions")
    op.create_index(NAME, "executions", COLUMNS)
