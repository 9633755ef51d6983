"""Event-driven dispatch: offer queued executions to connected workers.

The dispatcher sleeps until something may have changed what can be offered (a new or resumed
execution, freed capacity, a worker connecting; on PostgreSQL also such changes on other
replicas, via NOTIFY), then runs one round: :meth:`ExecutionStore.offer` picks executions for
this process's workers and the frames go out on their streams. A slow sweep re-runs the round
so offers not claimed within the claim timeout are made again.

A worker whose stream asked for pushed claims (``?push=true``) gets ``execution.claimed``
frames instead of offers: the round claims for it in its own transaction, so a new execution
reaches that worker without a claim request and its transaction. A claim that cannot be
delivered (the stream closed meanwhile) goes straight back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from flux.errors import FluxError
from flux.protocol import (
    ExecutionClaimedFrame,
    ExecutionScheduledFrame,
    ReleaseRequest,
    ResourceRequest,
    WorkerResources,
)
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion

from flux_server.hub import WorkerHub
from flux_server.placement import OfferTarget
from flux_server.rawjson import to_json
from flux_server.sse import frame, json_frame
from flux_server.store.executions import ExecutionStore

__all__ = ["Dispatcher", "fits"]

log = logging.getLogger(__name__)


def fits(
    requests: dict[str, Any] | None,
    resources: WorkerResources,
    packages: dict[str, str] | None = None,
) -> bool:
    """Whether a worker with ``resources`` and installed ``packages`` (canonical name ->
    version) can run an execution requesting ``requests``.

    CPU, memory and disk are compared with what the machine has in total (free amounts move
    too fast to route on; the worker's capacity bounds concurrency), GPUs by count, and with
    ``gpu_memory`` by the count of GPUs that have at least that much memory.
    """
    if not requests:
        return True
    request = ResourceRequest.model_validate(requests)
    if request.cpu and request.cpu > resources.cpu_count:
        return False
    if request.memory and request.memory > resources.memory_total:
        return False
    gpus = resources.gpus
    if request.gpu_memory:
        gpus = [g for g in gpus if g.memory_total >= request.gpu_memory]
    if request.gpu_count() > len(gpus):
        return False
    if request.disk and request.disk > resources.disk_total:
        return False
    return all(_installed(r, packages or {}) for r in request.packages)


@functools.lru_cache(maxsize=1024)
def _requirement(text: str) -> tuple[str, SpecifierSet]:
    requirement = Requirement(text)
    return canonicalize_name(requirement.name), requirement.specifier


def _installed(text: str, packages: dict[str, str]) -> bool:
    name, specifier = _requirement(text)
    version = packages.get(name)
    if version is None:
        return False
    try:
        return specifier.contains(version, prereleases=True)
    except InvalidVersion:
        return False


class Dispatcher:
    def __init__(
        self,
        executions: ExecutionStore,
        hub: WorkerHub,
        claim_timeout: float,
        sweep_interval: float,
        *,
        chore: Callable[[Coroutine[Any, Any, Any]], None],
    ) -> None:
        self._executions = executions
        self._hub = hub
        self._claim_timeout = claim_timeout
        self._sweep_interval = sweep_interval
        self._wake = asyncio.Event()
        self._chore = chore
        """Runs a coroutine in the background (the runtime's, which keeps and reports it)."""
        self.rounds = 0
        self._stopping = False
        self._idle = asyncio.Event()
        self._idle.set()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        """Dispatch until cancelled or stopped."""
        while not self._stopping:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation
            # that arrives as the event fires, and the server would never stop.
            try:
                async with asyncio.timeout(self._sweep_interval):
                    await self._wake.wait()
            except TimeoutError:
                pass
            if self._stopping:
                return
            self._wake.clear()
            self._idle.clear()
            try:
                await self.dispatch_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatch round failed; retrying")
                await asyncio.sleep(min(1.0, self._sweep_interval))
                self._wake.set()
            finally:
                self._idle.set()

    async def stop(self, timeout: float = 10.0) -> None:
        """Let the round in progress finish, then stop: a round cut short could leave claims
        it committed undelivered, to wait out the claim timeout."""
        self._stopping = True
        self._wake.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._idle.wait()

    async def dispatch_once(self) -> int:
        """One round; returns how many offers were sent."""
        self.rounds += 1
        connections = list(self._hub.connections.values())
        if not connections:
            return 0
        targets = [
            OfferTarget(
                c.name,
                c.capacity,
                lambda r, res=c.resources, pk=c.packages: fits(r, res, pk),
                len(c.resources.gpus),
                push=c.push,
                known=frozenset(c.sources),
            )
            for c in connections
        ]
        offers = await self._executions.offer(targets, self._claim_timeout)
        gone: set[str] = set()
        for worker, offer in offers:
            if isinstance(offer, ExecutionScheduledFrame):
                if not self._hub.send(worker, frame(ExecutionScheduledFrame.EVENT, offer)):
                    gone.add(worker)
            else:
                self._push(worker, offer)
        for worker in gone:
            # It disconnected while this round ran. Its disconnect withdrew the offers it had
            # then, but on PostgreSQL that may have committed before this round's offers did:
            # withdraw these too (that wakes the dispatcher), or they would wait out the
            # claim timeout.
            self._chore(self._executions.withdraw_offers(worker))
        return len(offers)

    def _push(self, worker: str, claim: dict[str, Any]) -> None:
        conn = self._hub.connections.get(worker)
        data = json_frame(ExecutionClaimedFrame.EVENT, to_json({"claim": claim}))
        if conn is not None and self._hub.send(worker, data):
            if claim["source"]:
                conn.sources.add(claim["source_hash"])
            return
        # It disconnected meanwhile: the claim goes back to the queue at once.
        self._chore(self._requeue(worker, claim["execution_id"], claim["generation"]))

    async def _requeue(self, worker: str, execution_id: str, generation: int) -> None:
        release = ReleaseRequest(generation=generation, reason="worker disconnected")
        try:
            await self._executions.release(worker, execution_id, release)
        except FluxError as exc:
            # Fenced or gone meanwhile; otherwise the worker's missed heartbeats requeue it.
            log.info(
                "could not requeue the undelivered claim of %s: %s",
                execution_id,
                exc,
                extra={"execution_id": execution_id},
            )
