"""Initial schema: workflows, executions, events, workers, secrets.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types this revision creates (see flux_server.db.types).
TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Float(), "sqlite")
JSON = sa.JSON()
ISO_TIMESTAMP = sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "workflows",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("source_hash", sa.String(64), nullable=False),
        sa.Column("options", JSON, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workflows"),
        sa.UniqueConstraint("name", "version", name="uq_workflows_name_version"),
    )
    op.create_table(
        "executions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("workflow_id", sa.String(36), nullable=False),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("workflow_version", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("input", sa.LargeBinary),
        sa.Column("input_view", JSON),
        sa.Column("output", sa.LargeBinary),
        sa.Column("output_view", JSON),
        sa.Column("worker_name", sa.String(128)),
        sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
        sa.Column("requests", JSON),
        sa.Column("offered_to", sa.String(128)),
        sa.Column("offered_at", TIMESTAMP),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.Column("claimed_at", TIMESTAMP),
        sa.PrimaryKeyConstraint("id", name="pk_executions"),
        sa.ForeignKeyConstraint(
            ["workflow_id"], ["workflows.id"], name="fk_executions_workflow_id_workflows"
        ),
    )
    op.create_index("ix_executions_state_created_at", "executions", ["state", "created_at"])
    op.create_index("ix_executions_worker_name_state", "executions", ["worker_name", "state"])
    op.create_index("ix_executions_offered_to_state", "executions", ["offered_to", "state"])
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("source_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("scope", sa.Text, nullable=False, server_default=""),
        sa.Column("time", TIMESTAMP, nullable=False),
        sa.Column("value", sa.LargeBinary),
        sa.Column("view", JSON),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("id", name="uq_events_id"),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["executions.id"],
            name="fk_events_execution_id_executions",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_events_execution_id_seq", "events", ["execution_id", "seq"])
    op.create_table(
        "workers",
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("session_token_hash", sa.String(64), nullable=False),
        sa.Column("runtime", JSON, nullable=False),
        sa.Column("resources", JSON, nullable=False),
        sa.Column("packages", JSON, nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("last_heartbeat", TIMESTAMP),
        sa.Column("connected", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("registered_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_workers"),
        sa.UniqueConstraint("session_token_hash", name="uq_workers_session_token_hash"),
    )
    # Local runs (flux.secrets.LocalSecretStore) may have created this table in the same SQLite
    # file already, with this very layout; keep theirs.
    if not sa.inspect(op.get_bind()).has_table("secrets"):
        op.create_table(
            "secrets",
            sa.Column("name", sa.Text, nullable=False),
            sa.Column("value", sa.LargeBinary, nullable=False),
            sa.Column("updated_at", ISO_TIMESTAMP, nullable=False),
            sa.PrimaryKeyConstraint("name", name="pk_secrets"),
        )


def downgrade() -> None:
    # ``secrets`` stays: it may hold local-run secrets and is not ours alone to drop.
    op.drop_table("workers")
    op.drop_index("ix_events_execution_id_seq", table_name="events")
    op.drop_table("events")
    op.drop_index("ix_executions_offered_to_state", table_name="executions")
    op.drop_index("ix_executions_worker_name_state", table_name="executions")
    op.drop_index("ix_executions_state_created_at", table_name="executions")
    op.drop_table("executions")
    op.drop_table("workflows")
