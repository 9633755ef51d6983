"""What a running execution's tasks use on a worker: secrets, the task cache, subworkflows.

One :class:`ExecutionServices` per execution (the ``Services`` of :mod:`flux.runner`). The
worker and its child processes build it from different parts: secrets come from the server
for the execution the worker holds (a child asks its worker over the pipe), the cache is
``{home}/worker-cache.db`` shared by both, and subworkflows run through the server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flux.errors import ExecutionError, ExecutionPaused
from flux.store import LocalStore

if TYPE_CHECKING:
    from flux.client import AsyncFluxClient
    from flux.protocol.executions import ExecutionStatus

__all__ = ["ExecutionServices", "SecretSource", "subworkflow_outcome", "worker_cache"]

SecretSource = Callable[[list[str]], Awaitable[dict[str, Any]]]
"""Secret values by name for one execution.

Raises:
    SecretNotFoundError: a secret does not exist.
"""


class ExecutionServices:
    """Secrets (never cached on disk), the ``cache=True`` task results, subworkflow calls."""

    __slots__ = ("_client", "_secrets", "home", "serializer")

    def __init__(
        self,
        secrets: SecretSource,
        client: Callable[[], AsyncFluxClient],
        *,
        home: str | Path,
        serializer: str,
    ) -> None:
        self._secrets = secrets
        self._client = client
        self.home = home
        self.serializer = serializer

    async def get_secrets(self, names: list[str]) -> dict[str, Any]:
        return await self._secrets(names)

    def cache_get(self, key: str) -> tuple[bool, Any]:
        return worker_cache(self.home, self.serializer).cache_get(key)

    def cache_put(self, key: str, value: Any) -> None:
        worker_cache(self.home, self.serializer).cache_put(key, value)

    async def call_workflow(self, target: Any, input: Any, execution_id: str) -> Any:
        name = target if isinstance(target, str) else target.name
        # The child's id is derived from the parent's and the call's: a parent that replays
        # the call (after its worker died mid-child) waits for the same child, not a new one.
        status = await self._client().run(name, input, mode="sync", execution_id=execution_id)
        return subworkflow_outcome(name, status)


def worker_cache(home: str | Path, serializer: str) -> LocalStore:
    """Results of ``cache=True`` tasks, shared by the worker and its child processes."""
    return LocalStore.open(Path(home) / "worker-cache.db", serializer)


def subworkflow_outcome(name: str, status: ExecutionStatus) -> Any:
    """The output of a child run through the server, or its failure raised in the parent.

    Raises:
        ExecutionPaused: the child paused (the parent pauses too).
        ExecutionError: the child failed or was cancelled.
    """
    state = str(status.state)
    if state == "COMPLETED":
        return status.output
    if state == "PAUSED":
        raise ExecutionPaused(f"subworkflow:{status.execution_id}")
    raise ExecutionError(
        f"subworkflow {name!r} ended {state}: {status.output!r}",
        execution_id=status.execution_id,
    )
