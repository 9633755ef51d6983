"""Listing executions: indexes for the newest first of a state by workflow and by worker, and
counts of executions per workflow and state kept by triggers.

``GET /executions`` answers with counts per state; counting a million rows takes longer than
the listing may. The triggers keep them as executions are inserted, change state or are
deleted, whatever statement does it. On SQLite (one writer) they update the count rows
directly. On PostgreSQL a count row that every write updated would make concurrent writers of
a workflow wait on each other (and two transactions moving several executions in different
orders could deadlock), so each change is appended to ``execution_count_changes`` instead;
about one change in 4096 (drawn at random) folds the committed ones into ``execution_counts``
in the same transaction, under an advisory lock only one transaction at a time takes (the
others skip folding). Readers add the pending changes to the rows.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FOLD_EVERY = 4096
FOLD_LOCK = 0x464C5843  # "FLXC": one transaction folds at a time
TRIGGERS = ("executions_counted_insert", "executions_counted_update", "executions_counted_delete")

_SQLITE_ADD = """
    INSERT INTO execution_counts (workflow_name, state, n)
    SELECT NEW.workflow_name, NEW.state, 0
    WHERE NOT EXISTS (
        SELECT 1 FROM execution_counts
        WHERE workflow_name = NEW.workflow_name AND state = NEW.state
    );
    UPDATE execution_counts SET n = n + 1
    WHERE workflow_name = NEW.workflow_name AND state = NEW.state;
"""
_SQLITE_REMOVE = """
    UPDATE execution_counts SET n = n - 1
    WHERE workflow_name = OLD.workflow_name AND state = OLD.state;
"""
# No conflict clause in the bodies: an outer INSERT OR REPLACE would impose its own on them.
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER executions_counted_insert AFTER INSERT ON executions BEGIN {_SQLITE_ADD} END",
    "CREATE TRIGGER executions_counted_update AFTER UPDATE OF state, workflow_name ON executions "
    "WHEN OLD.state IS NOT NEW.state OR OLD.workflow_name IS NOT NEW.workflow_name "
    f"BEGIN {_SQLITE_REMOVE} {_SQLITE_ADD} END",
    "CREATE TRIGGER executions_counted_delete AFTER DELETE ON executions "
    f"BEGIN {_SQLITE_REMOVE} END",
)

PG_FUNCTION = f"""
CREATE FUNCTION flux_count_executions() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        INSERT INTO execution_count_changes (workflow_name, state, n)
        VALUES (OLD.workflow_name, OLD.state, -1), (NEW.workflow_name, NEW.state, 1);
    ELSIF TG_OP = 'INSERT' THEN
        INSERT INTO execution_count_changes (workflow_name, state, n)
        VALUES (NEW.workflow_name, NEW.state, 1);
    ELSE
        INSERT INTO execution_count_changes (workflow_name, state, n)
        VALUES (OLD.workflow_name, OLD.state, -1);
    END IF;
    -- Fold every change this transaction sees (committed, or its own) into the counts.
    IF random() < 1.0 / {FOLD_EVERY} AND pg_try_advisory_xact_lock({FOLD_LOCK}) THEN
        WITH folded AS (
            DELETE FROM execution_count_changes RETURNING workflow_name, state, n
        )
        INSERT INTO execution_counts AS c (workflow_name, state, n)
        SELECT workflow_name, state, sum(n) FROM folded
        GROUP BY workflow_name, state ORDER BY workflow_name, state
        ON CONFLICT (workflow_name, state) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$
"""
PG_TRIGGERS = (
    "CREATE TRIGGER executions_counted_insert AFTER INSERT ON executions "
    "FOR EACH ROW EXECUTE FUNCTION flux_count_executions()",
    "CREATE TRIGGER executions_counted_update AFTER UPDATE OF state, workflow_name ON executions "
    "FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state "
    "OR OLD.workflow_name IS DISTINCT FROM NEW.workflow_name) "
    "EXECUTE FUNCTION flux_count_executions()",
    "CREATE TRIGGER executions_counted_delete AFTER DELETE ON executions "
    "FOR EACH ROW EXECUTE FUNCTION flux_count_executions()",
)


def upgrade() -> None:
    op.create_index(
        "ix_executions_workflow_name_state_created_at",
        "executions",
        ["workflow_name", "state", "created_at"],
    )
    op.create_index(
        "ix_executions_worker_name_state_created_at",
        "executions",
        ["worker_name", "state", "created_at"],
    )
    op.create_table(
        "execution_counts",
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("workflow_name", "state", name="pk_execution_counts"),
    )
    op.create_table(
        "execution_count_changes",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("workflow_name", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("n", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_execution_count_changes"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTION)
        statements = PG_TRIGGERS
    else:
        statements = SQLITE_TRIGGERS
    # The triggers first: on PostgreSQL creating one locks out writers until this commits, so
    # the counts below and the triggers' later changes add up.
    for statement in statements:
        op.execute(statement)
    op.execute(
        "INSERT INTO execution_counts (workflow_name, state, n) "
        "SELECT workflow_name, state, count(*) FROM executions GROUP BY workflow_name, state"
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (" ON executions" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS flux_count_executions()")
    op.drop_table("execution_count_changes")
    op.drop_table("execution_counts")
    op.drop_index("ix_executions_worker_name_state_created_at", table_name="executions")
    op.drop_index("ix_executions_workflow_name_state_created_at", table_name="executions")
