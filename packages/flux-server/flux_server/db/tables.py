"""The schema as SQLAlchemy Core tables. Alembic revisions in ``migrations/versions`` create it;
keep the two in step (``tests/server/test_migrations.py`` compares them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from flux_server.db.types import JSON_TYPE, IsoDateTime, UTCDateTime

__all__ = [
    "api_keys",
    "compared_on",
    "events",
    "execution_count_changes",
    "execution_counts",
    "executions",
    "memory",
    "metadata",
    "schedule_runs",
    "schedules",
    "secrets",
    "server_state",
    "workers",
    "workflows",
]

_POSTGRESQL_ONLY: set[str] = set()
"""The names of the indexes only PostgreSQL has (:func:`_on_postgresql_only`)."""


def compared_on(dialect: str) -> Callable[..., bool]:
    """Alembic's ``include_object`` for a database of ``dialect``: what it has of the
    tables (another dialect's indexes are left out of the comparison, which does not read
    ``ddl_if``)."""

    def include(obj: Any, name: str | None, type_: str, *_: Any) -> bool:
        return not (type_ == "index" and name in _POSTGRESQL_ONLY and dialect != "postgresql")

    return include


def _on_postgresql_only(index: sa.Index) -> sa.Index:
    """``index``, created on PostgreSQL only (and compared there only)."""
    _POSTGRESQL_ONLY.add(str(index.name))
    return index.ddl_if(dialect="postgresql")


def _not_null_only(name: str, first: str, *rest: str) -> sa.Index:
    """An index of the rows whose ``first`` column is not NULL (partial on both databases:
    a query for ``first = ?`` implies its condition)."""
    where = sa.text(f"{first} IS NOT NULL")
    return sa.Index(name, first, *rest, sqlite_where=where, postgresql_where=where)


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_hash", sa.String(64), nullable=False),
    sa.Column("options", JSON_TYPE, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # The secrets a worker may be given for this version's executions (revision 0010): the
    # secret_requests of the workflow and of the tasks in its file. NULL: read from ``source``.
    sa.Column("secret_names", JSON_TYPE),
    sa.UniqueConstraint("name", "version"),
)

executions = sa.Table(
    "executions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workflow_id", sa.String(36), sa.ForeignKey("workflows.id"), nullable=False),
    sa.Column("workflow_name", sa.String(255), nullable=False),
    sa.Column("workflow_version", sa.Integer, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("input", sa.LargeBinary),
    sa.Column("input_view", JSON_TYPE),
    sa.Column("output", sa.LargeBinary),
    sa.Column("output_view", JSON_TYPE),
    sa.Column("worker_name", sa.String(128)),
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    sa.Column("requests", JSON_TYPE),
    sa.Column("offered_to", sa.String(128)),
    sa.Column("offered_at", UTCDateTime),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("claimed_at", UTCDateTime),
    # The W3C traceparent every segment's trace continues from (revision 0008).
    sa.Column("traceparent", sa.String(55)),
    # The execution that started this one as a subworkflow (revision 0012); NULL otherwise.
    sa.Column("parent_id", sa.String(36)),
    sa.Index("ix_executions_state_created_at", "state", "created_at"),
    # (holder, state) of held executions only: what a worker holds now, on PostgreSQL
    # (revision 0003). SQLite answers the same from the listing index below (revision 0013).
    _on_postgresql_only(
        sa.Index(
            "ix_executions_worker_name_state",
            "worker_name",
            "state",
            postgresql_where=sa.text("state IN ('CLAIMED', 'RUNNING', 'CANCELLING')"),
        )
    ),
    # What is offered to a worker now (a claim clears offered_to): offered ones only (0013).
    _not_null_only("ix_executions_offered_to_state", "offered_to", "state"),
    # Listings newest first (revision 0004): a state's executions of a workflow, of a worker.
    sa.Index(
        "ix_executions_workflow_name_state_created_at", "workflow_name", "state", "created_at"
    ),
    # (of the executions a worker took: revision 0014)
    _not_null_only(
        "ix_executions_worker_name_state_created_at", "worker_name", "state", "created_at"
    ),
    # A parent's children by state (revision 0012): children only.
    _not_null_only("ix_executions_parent_id_state", "parent_id", "state"),
)

# How many executions each workflow has in each state (revision 0004), kept by triggers on
# ``executions`` that the revision creates: SQLite's update these rows; PostgreSQL's append
# each change to ``execution_count_changes`` (no row every writer would wait on) and now and
# then fold the committed ones into these rows. A count is the row plus its pending changes.
execution_counts = sa.Table(
    "execution_counts",
    metadata,
    sa.Column("workflow_name", sa.String(255), primary_key=True),
    sa.Column("state", sa.String(16), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

execution_count_changes = sa.Table(
    "execution_count_changes",
    metadata,
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("workflow_name", sa.String(255), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("n", sa.BigInteger, nullable=False),
)

events = sa.Table(
    "events",
    metadata,
    # SQLite can only autoincrement its rowid primary key, so ``seq`` is the key that orders the
    # log and the event id (the merge key of checkpoints) carries a unique constraint.
    sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("id", sa.String(128), nullable=False, unique=True),
    sa.Column(
        "execution_id",
        sa.String(36),
        sa.ForeignKey("executions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("type", sa.String(32), nullable=False),
    sa.Column("source_id", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("scope", sa.Text, nullable=False, server_default=""),
    sa.Column("time", UTCDateTime, nullable=False),
    sa.Column("value", sa.LargeBinary),
    sa.Column("view", JSON_TYPE),
    sa.Index("ix_events_execution_id_seq", "execution_id", "seq"),
    # An execution's pause events (revision 0007), read by a resume and a paused status.
    sa.Index(
        "ix_events_pause",
        "execution_id",
        "seq",
        postgresql_where=sa.text("name = 'pause'"),
        sqlite_where=sa.text("name = 'pause'"),
    ),
)

workers = sa.Table(
    "workers",
    metadata,
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("session_token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("runtime", JSON_TYPE, nullable=False),
    sa.Column("resources", JSON_TYPE, nullable=False),
    sa.Column("packages", JSON_TYPE, nullable=False),
    sa.Column("capacity", sa.Integer, nullable=False),
    sa.Column("last_heartbeat", UTCDateTime),
    sa.Column("connected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("registered_at", UTCDateTime, nullable=False),
)

# Same layout as flux.secrets.LocalSecretStore's table, which shares the default SQLite file.
secrets = sa.Table(
    "secrets",
    metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.LargeBinary, nullable=False),
    sa.Column("updated_at", IsoDateTime, nullable=False),
)

# Schedules (revision 0002). A schedule follows a workflow by name: each tick runs its latest
# version. ``next_run_at`` is the compare-and-set key of a tick: the replica whose
# ``UPDATE ... WHERE next_run_at = :due`` changes the row fires it.
schedules = sa.Table(
    "schedules",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False, unique=True),
    sa.Column("workflow_name", sa.String(255), nullable=False),
    sa.Column("schedule", JSON_TYPE, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("input", JSON_TYPE),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("auto", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("next_run_at", UTCDateTime),
    sa.Column("last_run_at", UTCDateTime),
    sa.Column("run_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("failure_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skip_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("catch_up", sa.String(8)),  # NULL: scheduling.catch_up (revision 0005)
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("ix_schedules_state_next_run_at", "state", "next_run_at"),
    sa.Index("ix_schedules_workflow_name", "workflow_name"),
)

# One row per tick: at most one per (schedule, due time), whatever the number of replicas.
schedule_runs = sa.Table(
    "schedule_runs",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column(
        "schedule_id",
        sa.String(36),
        sa.ForeignKey("schedules.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("execution_id", sa.String(36)),
    sa.Column("scheduled_for", UTCDateTime, nullable=False),
    sa.Column("fired_at", UTCDateTime, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("error", sa.Text),
    sa.UniqueConstraint("schedule_id", "scheduled_for"),
    sa.Index("ix_schedule_runs_schedule_id_fired_at", "schedule_id", "fired_at"),
    sa.Index("ix_schedule_runs_state", "state"),
    sa.Index("ix_schedule_runs_execution_id", "execution_id"),
)

# Values every replica of this database must agree on (revision 0006): ``key_fingerprint`` is
# that of the secrets key the stored secrets were written with.
server_state = sa.Table(
    "server_state",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# Long-term memory (revision 0009): JSON text by scope and key, for every worker (flux.memory).
memory = sa.Table(
    "memory",
    metadata,
    sa.Column("scope", sa.String(256), primary_key=True),
    sa.Column("key", sa.String(256), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

# API keys (revision 0010): looked up by id; only the SHA-256 of the key is kept.
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("created_by", sa.String(200)),
)
