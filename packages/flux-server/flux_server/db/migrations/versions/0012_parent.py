"""An execution started by another (a subworkflow) names its parent, so that a parent paused
by its child goes on by itself once the child has finished.

``parent_id`` is NULL for every execution started otherwise; the index holds children only
(partial on both databases: a query for ``parent_id = ?`` implies its condition).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_executions_parent_id_state"
CHILDREN = sa.text("parent_id IS NOT NULL")


def upgrade() -> None:
    op.add_column("executions", sa.Column("parent_id", sa.String(36)))
    op.create_index(
        NAME,
        "executions",
        ["parent_id", "state"],
        sqlite_where=CHILDREN,
        postgresql_where=CHILDREN,
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="executions")
    # A plain ALTER (SQLite 3.35+): batch mode would rebuild the table, losing the count
    # triggers that revision 0004 put on it.
    op.execute("ALTER TABLE executions DROP COLUMN parent_id")
