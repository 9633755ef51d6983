"""Executions: what clients do with them (create, read, resume, cancel) and what workers do
(claim, checkpoint, release), and the offers of dispatch. Every state change is one
transaction, its moves read from :data:`flux.domain.TRANSITIONS`; notes
(:mod:`flux_server.notes`) tell waiters and the dispatcher after it commits.

Each operation lives in the module of its kind (``_client``, ``_claims``, ``_checkpoints``,
``_offers``) as a synchronous function of one transaction, run by ``Database.run_write`` /
``run_read`` (one thread hop per operation on SQLite; ``run_sync`` on PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from flux.observability import parse_traceparent
from flux.protocol import (
    CheckpointItem,
    CheckpointRequest,
    CheckpointResponse,
    CheckpointResult,
    ExecutionScheduledFrame,
    ExecutionStatus,
    ReleaseRequest,
    ReleaseResponse,
)

from flux_server.db import Database, Tx
from flux_server.placement import OfferTarget
from flux_server.store import _checkpoints, _claims, _client, _offers
from flux_server.store._checkpoints import next_state
from flux_server.store.workflows import LatestWorkflow
from flux_server.tracing import ExecutionTracer

__all__ = ["ExecutionStore", "OfferTarget", "next_state"]


class ExecutionStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.wanted: Callable[[str], bool] = lambda execution_id: False
        """Whether a client of this process waits for ``execution_id`` (set by the runtime)."""
        self.on_settled: Callable[[ExecutionStatus], None] = lambda status: None
        """Called, after the commit, with the status of a wanted execution that finished or
        paused in a checkpoint."""
        self.tracer: ExecutionTracer | None = None
        """Opens each new execution's trace when the server traces (set by the runtime)."""

    # -- clients -------------------------------------------------------------------------------

    async def create(
        self,
        workflow: LatestWorkflow,
        input: Any,
        execution_id: str | None = None,
        *,
        caller_trace: str | bytes | None = None,
        parent_id: str | None = None,
    ) -> ExecutionStatus:
        """A new execution of ``workflow``, queued for dispatch. ``input`` is JSON;
        ``caller_trace`` the caller's ``traceparent`` header, the parent of its trace
        (:mod:`flux_server.tracing`); ``parent_id`` the execution that starts it as a
        subworkflow.

        With ``execution_id`` (chosen by the client) an existing execution of the same
        workflow with that id is returned as it is instead: starting is idempotent.

        Raises:
            ConflictError: an execution of another workflow has ``execution_id``.
        """
        caller = parse_traceparent(caller_trace)
        if self.tracer is None:
            return await _client.create(self.db, workflow, input, execution_id, caller, parent_id)
        with self.tracer.creating(workflow, caller) as creation:
            status = await _client.create(
                self.db, workflow, input, execution_id, creation.traceparent, parent_id
            )
            creation.created(status.execution_id)
            return status

    async def create_in(self, tx: Tx, workflow: LatestWorkflow, input: Any) -> ExecutionStatus:
        """:meth:`create` inside the caller's write transaction (the scheduler claims a tick and
        creates its execution in one transaction, so a tick fires exactly once)."""
        if self.tracer is None:
            return await _client.create_in(tx, workflow, input)
        with self.tracer.creating(workflow, None, **{"flux.trigger": "schedule"}) as creation:
            status = await _client.create_in(tx, workflow, input, creation.traceparent)
            creation.created(status.execution_id)
            return status

    async def status(
        self, execution_id: str, workflow_name: str | None = None, *, detailed: bool = False
    ) -> ExecutionStatus:
        """Raises ExecutionNotFoundError for an unknown id (or one of another workflow)."""
        return await _client.status_of(self.db, execution_id, workflow_name, detailed)

    async def resume(
        self,
        workflow_name: str,
        execution_id: str,
        input: Any,
        pause: str | None = None,
        resume_id: str | None = None,
    ) -> ExecutionStatus:
        """Answer the waiting pause ``pause`` (optional when only one waits) with ``input`` and
        queue the execution again; a repeated ``resume_id`` changes nothing.

        Raises:
            ExecutionNotFoundError: unknown execution.  ExecutionStateError: it is not PAUSED;
                several pauses wait and ``pause`` is missing, or none of that name waits.
        """
        return await _client.resume(self.db, workflow_name, execution_id, input, pause, resume_id)

    async def cancel(self, workflow_name: str, execution_id: str) -> ExecutionStatus:
        """Cancel at once when no worker holds it, else ask the holder (CANCELLING).

        Raises:
            ExecutionNotFoundError: unknown execution.  ExecutionStateError: it has already
                finished.
        """
        return await _client.cancel(self.db, workflow_name, execution_id)

    # -- workers -------------------------------------------------------------------------------

    async def claim(self, worker: str, execution_id: str) -> dict[str, Any]:
        """Give the execution to ``worker`` with a new generation: a :class:`ClaimResponse` as
        a JSON-ready dict. The holder of a claimed execution that has not started may claim
        it again (a retry after a lost answer).

        Raises:
            NotFoundError: unknown execution.  ConflictError: not claimable now.
        """
        return await _claims.claim(self.db, worker, execution_id)

    async def claim_many(
        self,
        worker: str,
        execution_ids: Sequence[str],
        known_sources: Sequence[str] = (),
        columns: bool = False,
    ) -> list[dict[str, Any]]:
        """Claim several executions in one transaction, each on its own: one that is not
        claimable (or unknown) gets an ``error`` entry and does not affect the others. The
        answer is the :class:`ClaimResult` list as JSON-ready dicts; with ``columns`` each
        history is sent as :class:`HistoryColumns`."""
        return await _claims.claim_many(self.db, worker, execution_ids, known_sources, columns)

    async def checkpoint(
        self, worker: str, execution_id: str, request: CheckpointRequest
    ) -> CheckpointResponse:
        """Merge new events idempotently and move the state along, in one transaction.

        Raises:
            NotFoundError: unknown execution.  ConflictError: stale generation (fenced).
            UsageError: a value is not base64.
        """
        return await _checkpoints.checkpoint(self.db, worker, execution_id, request)

    async def checkpoint_many(
        self, worker: str, items: Sequence[CheckpointItem]
    ) -> list[CheckpointResult]:
        """Several executions' checkpoints in one transaction, each fenced on its own.

        A stale or unknown item gets an ``error`` entry and changes nothing; the others are
        stored. This is what lets a worker running many executions pay one round trip and
        one commit for all the task completions that happened meanwhile. On PostgreSQL a
        batch of progress only (task events of held executions) is one statement.
        """
        return await _checkpoints.checkpoint_many(
            self.db, worker, items, self.wanted, self.on_settled
        )

    async def release(
        self, worker: str, execution_id: str, request: ReleaseRequest
    ) -> ReleaseResponse:
        """Put a held execution back in the queue (a cancelling one is cancelled instead).

        Raises:
            NotFoundError: unknown execution.  ConflictError: stale generation (fenced).
        """
        return await _claims.release(self.db, worker, execution_id, request)

    async def held_by(
        self, worker: str, running: Sequence[str] | None = None, grace: float = 0.0
    ) -> tuple[list[str], list[str]]:
        """(held execution ids, those of them being cancelled).

        With ``running`` (what the worker reports it runs), held executions missing from it that
        saw no change for ``grace`` seconds are taken back: claimed or running ones go back to
        the queue with a new generation, cancelling ones are cancelled.
        """
        return await _claims.held_by(self.db, worker, running, grace)

    async def holds(self, worker: str, execution_id: str) -> bool:
        """Whether ``worker`` holds the execution now."""
        return await _claims.holds(self.db, worker, execution_id)

    # -- dispatch ------------------------------------------------------------------------------

    async def offer(
        self, targets: Sequence[OfferTarget], claim_timeout: float
    ) -> list[tuple[str, ExecutionScheduledFrame | dict[str, Any]]]:
        """Pick queued executions for connected workers and record the offers.

        Each execution goes to the least-loaded worker whose resources fit its requests and
        that has free capacity (:mod:`flux_server.placement`); one that fits nowhere is
        skipped without holding up the rest. An offer older than ``claim_timeout`` counts as
        withdrawn and is made again. For a ``push`` target the execution is claimed in the
        same transaction instead, and its entry is the :class:`ClaimResponse` as a dict of
        wire values (history column-wise).
        """
        return await _offers.offer(self.db, targets, claim_timeout)

    async def continue_stranded_parents(self, batch: int = 100) -> list[str]:
        """Resume parents paused by subworkflows that have all finished, which the checkpoint
        that finished the last of them would have resumed had its server not ended between
        that checkpoint and the next transaction (PostgreSQL's one-statement checkpoint),
        ``batch`` at most per transaction; the ids resumed.
        :class:`~flux_server.liveness.Liveness` runs it now and then."""
        return await _checkpoints.continue_stranded(self.db, batch)

    async def withdraw_offers(self, worker: str) -> None:
        """Forget unclaimed offers to ``worker`` (its stream closed) so others get them now."""
        await _offers.withdraw_offers(self.db, worker)
