"""What a running execution's tasks use on a worker: secrets, the task cache, subworkflows,
long-term memory.

One :class:`ExecutionServices` per execution (the ``Services`` of :mod:`flux.runner`). The
worker and its child processes build it from different parts: secrets come from the server
for the execution the worker holds (a child asks its worker over the pipe), the cache is
``{home}/worker-cache.db`` shared by both, and subworkflows run through the server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from flux.domain import FINISHED_STATES, ExecutionState
from flux.errors import ExecutionError, ExecutionPaused
from flux.store import LocalStore

from flux_worker._backoff import backoff_delay

if TYPE_CHECKING:
    from flux.client import Call
    from flux.protocol.executions import ExecutionStatus

__all__ = [
    "ExecutionServices",
    "SecretSource",
    "WorkerLink",
    "subworkflow_outcome",
    "worker_cache",
]

log = logging.getLogger("flux.worker")

MAX_CALL_BACKOFF = 5.0
"""The longest wait between attempts to reach the server for a subworkflow call."""

SecretSource = Callable[[list[str]], Awaitable[dict[str, Any]]]
"""Secret values by name for one execution.

Raises:
    SecretNotFoundError: a secret does not exist.
"""


T = TypeVar("T")


class WorkerLink(Protocol):
    """How one running execution reaches the server: as its worker (with the worker's
    session token, which a server with authentication on asks of worker calls)."""

    async def run_child(self, name: str, input: Any, execution_id: str) -> ExecutionStatus:
        """Start the child ``execution_id`` of the running execution (or find it started)
        and wait in sync mode (the server lets a worker start children of what it holds)."""
        ...

    async def send(self, call: Call[T]) -> T:
        """Send ``call`` as the worker."""
        ...


class ExecutionServices:
    """Secrets (never cached on disk), the ``cache=True`` task results, subworkflow calls."""

    __slots__ = ("_link", "_secrets", "home", "serializer")

    def __init__(
        self,
        secrets: SecretSource,
        link: WorkerLink,
        *,
        home: str | Path,
        serializer: str,
    ) -> None:
        self._secrets = secrets
        self._link = link
        self.home = home
        self.serializer = serializer

    async def get_secrets(self, names: list[str]) -> dict[str, Any]:
        return await self._secrets(names)

    def cache_get(self, key: str) -> tuple[bool, Any]:
        return worker_cache(self.home, self.serializer).cache_get(key)

    def cache_put(self, key: str, value: Any) -> None:
        worker_cache(self.home, self.serializer).cache_put(key, value)

    # Long-term memory (flux.memory) lives on the server: every worker sees the same.

    async def memory_get(self, scope: str, key: str) -> tuple[bool, Any]:
        from flux.client import _calls as calls
        from flux.errors import NotFoundError

        try:
            entry = await self._link.send(calls.memory_get(scope, key))
        except NotFoundError:
            return False, None
        return True, entry.value

    async def memory_put(self, scope: str, key: str, text: str) -> None:
        from flux.client import _calls as calls

        await self._link.send(calls.memory_put(scope, key, text))

    async def memory_delete(self, scope: str, key: str) -> bool:
        from flux.client import _calls as calls

        return (await self._link.send(calls.memory_delete(scope, key))).deleted

    async def memory_items(self, scope: str) -> dict[str, Any]:
        from flux.client import _calls as calls

        answer = await self._link.send(calls.memory_items(scope))
        return {entry.key: entry.value for entry in answer.items}

    async def call_workflow(self, target: Any, input: Any, execution_id: str) -> Any:
        """Start the child ``execution_id`` (or find it started) and wait until it finishes or
        pauses; its output.

        Raises:
            ExecutionPaused: the child paused.  ExecutionError: it failed or was cancelled.
            ApiError: the server refused the call (not a failure to reach it: that is retried).
        """
        name = target if isinstance(target, str) else target.name
        return subworkflow_outcome(name, await self._wait_for_child(name, input, execution_id))

    async def _wait_for_child(self, name: str, input: Any, execution_id: str) -> ExecutionStatus:
        # The child's id is derived from the parent's and the call's, and a run with an id
        # that exists answers for that execution: a parent that replays the call (after its
        # worker died mid-child) waits for the same child, and so does every request here.
        # A server that cannot be reached, or whose sync wait ends first, is asked again:
        # neither says anything about the child, so neither may fail the parent.
        attempt = 0
        while True:
            try:
                status = await self._link.run_child(name, input, execution_id)
            except Exception as exc:
                from flux.client import is_retryable  # not at import: a child starts lean

                if not is_retryable(exc):
                    raise
                delay = backoff_delay(attempt, 0.1, MAX_CALL_BACKOFF)
                attempt += 1
                log.warning(
                    "subworkflow %r (%s): %s; retrying in %.1fs", name, execution_id, exc, delay
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            if status.state in FINISHED_STATES or status.state == ExecutionState.PAUSED:
                return status
            log.info(
                "subworkflow %r (%s) is %s after the server's wait; waiting again",
                name,
                execution_id,
                status.state,
            )


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
