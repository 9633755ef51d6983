"""Schedules and their run history.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-15
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types this revision creates (see flux_server.db.types).
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Float(), "sqlite")
JSON = sa.JSON()


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("schedule", JSON, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("input", JSON),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("auto", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("next_run_at", TIMESTAMP),
        sa.Column("last_run_at", TIMESTAMP),
        sa.Column("run_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failure_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skip_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_schedules"),
        sa.UniqueConstraint("name", name="uq_schedules_name"),
    )
    op.create_index("ix_schedules_state_next_run_at", "schedules", ["state", "next_run_at"])
    op.create_index("ix_schedules_workflow_name", "schedules", ["workflow_name"])
    op.create_table(
        "schedule_runs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("schedule_id", sa.String(36), nullable=False),
        sa.Column("execution_id", sa.String(36)),
        sa.Column("scheduled_for", TIMESTAMP, nullable=False),
        sa.Column("fired_at", TIMESTAMP, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("finished_at", TIMESTAMP),
        sa.Column("error", sa.Text),
        sa.PrimaryKeyConstraint("id", name="pk_schedule_runs"),
        sa.UniqueConstraint(
            "schedule_id", "scheduled_for", name="uq_schedule_runs_schedule_id_scheduled_for"
        ),
        sa.ForeignKeyConstraint(
            ["schedule_id"],
            ["schedules.id"],
            name="fk_schedule_runs_schedule_id_schedules",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_schedule_runs_schedule_id_fired_at", "schedule_runs", ["schedule_id", "fired_at"]
    )
    op.create_index("ix_schedule_runs_state", "schedule_runs", ["state"])
    op.create_index("ix_schedule_runs_execution_id", "schedule_runs", ["execution_id"])


def downgrade() -> None:
    op.drop_index("ix_schedule_runs_execution_id", table_name="schedule_runs")
    op.drop_index("ix_schedule_runs_state", table_name="schedule_runs")
    op.drop_index("ix_schedule_runs_schedule_id_fired_at", table_name="schedule_runs")
    op.drop_table("schedule_runs")
    op.drop_index("ix_schedules_workflow_name", table_name="schedules")
    op.drop_index("ix_schedules_state_next_run_at", table_name="schedules")
    op.drop_table("schedules")
