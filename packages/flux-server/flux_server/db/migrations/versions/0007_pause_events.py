"""The pause events of an execution, found without walking its whole history.

An execution's status (when it is paused) and every resume read its pause events to know
which pauses wait. Through the (execution_id, seq) index alone that walked every event of the
execution, a few thousand rows for a long history. A partial index holds only pause events,
so ordinary event inserts pay nothing for it. Both planners use it for queries that repeat
its condition as a literal, as the store's statement does.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "ix_events_pause"
PAUSES = "name = 'pause'"


def upgrade() -> None:
    op.create_index(
        NAME,
        "events",
        ["execution_id", "seq"],
        postgresql_where=sa.text(PAUSES),
        sqlite_where=sa.text(PAUSES),
    )


def downgrade() -> None:
    op.drop_index(NAME, table_name="events")
