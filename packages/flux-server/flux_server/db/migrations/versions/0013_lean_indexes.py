"""Two indexes of executions that every claim and change of state updated, for queries that
need much less (the figures are in docs/benchmarks.md):

- SQLite drops the (worker_name, state) index: revision 0004's (worker_name, state,
  created_at) begins with the same columns and answers every query it did. PostgreSQL keeps
  its own, which holds held executions only (revision 0003).
- The (offered_to, state) index holds offered executions only, on both databases: a claim
  clears ``offered_to``, so all but a few rows had NULL there, and each change of their
  state moved an entry no query reads (every query names the worker it was offered to).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BY_WORKER = "ix_executions_worker_name_state"
OFFERED = "ix_executions_offered_to_state"
OFFERED_ONLY = sa.text("offered_to IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index(BY_WORKER, table_name="executions")
    op.drop_index(OFFERED, table_name="executions")
    op.create_index(
        OFFERED,
        "executions",
        ["offered_to", "state"],
        sqlite_where=OFFERED_ONLY,
        postgresql_where=OFFERED_ONLY,
    )


def downgrade() -> None:
    op.drop_index(OFFERED, table_name="executions")
    op.create_index(OFFERED, "executions", ["offered_to", "state"])
    if op.get_bind().dialect.name == "sqlite":
        op.create_index(BY_WORKER, "executions", ["worker_name", "state"])
