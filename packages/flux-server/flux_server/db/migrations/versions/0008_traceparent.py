"""An execution's trace context: the W3C ``traceparent`` its trace continues from.

The server writes it when it creates the execution (its ``flux.execution.create`` span, or the
caller's ``traceparent`` when the server does not trace), and every claim hands it to the
worker, so each segment of the execution (the first run, a resume days later, a recovery on
another worker) joins the same trace. NULL: no trace.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("executions", sa.Column("traceparent", sa.String(55)))


def downgrade() -> None:
    # A plain ALTER (SQLite 3.35+): batch mode would rebuild the table, losing the count
    # triggers that revision 0004 put on it.
    op.execute("ALTER TABLE executions DROP COLUMN traceparent")
