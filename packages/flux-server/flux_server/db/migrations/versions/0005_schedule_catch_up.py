"""A schedule's own catch-up policy (``once`` or ``skip``); NULL follows the server's
``scheduling.catch_up``, as every schedule did before.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("schedules", sa.Column("catch_up", sa.String(8)))


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("catch_up")
