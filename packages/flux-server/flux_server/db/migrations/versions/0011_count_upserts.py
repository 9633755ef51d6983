"""SQLite's execution-count triggers add with one upsert instead of an insert-if-missing and
an update: a change of state cost the writer three statements in the trigger, now two (an
insert, one).

PostgreSQL's triggers (which append to ``execution_count_changes``) are unchanged.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the trigger bodies (revision 0004's, and this revision's).
_REMOVE = """
    UPDATE execution_counts SET n = n - 1
    WHERE workflow_name = OLD.workflow_name AND state = OLD.state;
"""
_ADD_0004 = """
    INSERT INTO execution_counts (workflow_name, state, n)
    SELECT NEW.workflow_name, NEW.state, 0
    WHERE NOT EXISTS (
        SELECT 1 FROM execution_counts
        WHERE workflow_name = NEW.workflow_name AND state = NEW.state
    );
    UPDATE execution_counts SET n = n + 1
    WHERE workflow_name = NEW.workflow_name AND state = NEW.state;
"""
_ADD = """
    INSERT INTO execution_counts (workflow_name, state, n)
    VALUES (NEW.workflow_name, NEW.state, 1)
    ON CONFLICT (workflow_name, state) DO UPDATE SET n = n + 1;
"""


def _triggers(add: str) -> tuple[str, str]:
    return (
        f"CREATE TRIGGER executions_counted_insert AFTER INSERT ON executions BEGIN {add} END",
        "CREATE TRIGGER executions_counted_update AFTER UPDATE OF state, workflow_name "
        "ON executions "
        "WHEN OLD.state IS NOT NEW.state OR OLD.workflow_name IS NOT NEW.workflow_name "
        f"BEGIN {_REMOVE} {add} END",
    )


def _replace(add: str) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # One transaction (the migration's): no change of state is counted by neither or both.
    op.execute("DROP TRIGGER IF EXISTS executions_counted_insert")
    op.execute("DROP TRIGGER IF EXISTS executions_counted_update")
    for statement in _triggers(add):
        op.execute(statement)


def upgrade() -> None:
    _replace(_ADD)


def downgrade() -> None:
    _replace(_ADD_0004)
