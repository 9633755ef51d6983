"""Persistence of the server's nouns (SQLAlchemy Core, no HTTP): one store per resource."""

from flux_server.store.executions import ExecutionStore, next_state
from flux_server.store.secrets import SecretStore
from flux_server.store.workers import WorkerStore
from flux_server.store.workflows import WorkflowStore

__all__ = ["ExecutionStore", "SecretStore", "WorkerStore", "WorkflowStore", "next_state"]
