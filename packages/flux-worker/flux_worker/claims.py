"""How work reaches a worker: claims pushed on its stream, or offers it claims in batches.

A worker whose stream asks for pushed claims (``?push=true``, the default) gets
``execution.claimed`` frames: claimed for it by the server's dispatch round, each workflow
source sent once per stream. Otherwise it gets ``execution.scheduled`` offers and claims those
that arrive together in one ``POST /workers/{name}/claims``. An offer that arrives while every
slot is taken (the server has committed the end of a run that is still unwinding here) waits
in a deferred queue and is claimed as soon as a slot frees.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from flux.errors import ApiError
from flux.protocol.claims import ClaimResponse

from flux_worker.executions import Executions

if TYPE_CHECKING:
    from flux.client import AsyncWorkerChannel

__all__ = ["MAX_CLAIMS_PER_REQUEST", "Claimer"]

log = logging.getLogger("flux.worker")

MAX_CLAIMS_PER_REQUEST = 1_000
"""The most ids one ``POST /workers/{name}/claims`` carries (``ClaimBatchRequest``'s limit)."""


class Claimer:
    """Turns the stream's claims and offers into running executions, within ``capacity``.

    Args:
        channel: the worker's channel now (it changes when the worker registers again).
        executions: where claimed executions run.
        capacity: executions run at once.
        draining: whether the worker is draining (claims then go back to the queue).
        decode_history: read histories straight into domain events (in-process runs); a child
            process gets the claim as it came. Histories come column by column either way.
    """

    def __init__(
        self,
        channel: Callable[[], AsyncWorkerChannel],
        executions: Executions,
        *,
        capacity: int,
        draining: Callable[[], bool],
        decode_history: bool,
    ) -> None:
        self.channel = channel
        self.executions = executions
        self.capacity = capacity
        self.draining = draining
        self.decode_history = decode_history
        self.claiming: set[str] = set()
        """Executions claimed (or being claimed) that do not run yet: they hold a slot."""
        self.sources: dict[str, str] = {}
        """Workflow sources pushed on the current stream, by hash: the server sends each once
        per stream."""
        self._to_claim: list[str] = []
        self._wake = asyncio.Event()
        self._claimer: asyncio.Task[None] | None = None
        self._deferred: dict[str, None] = {}
        """Offers that came while every slot was taken, oldest first."""
        self._spawned: set[asyncio.Task[Any]] = set()

    def busy(self) -> int:
        """Slots taken: executions running or about to."""
        return len(self.executions) + len(self.claiming)

    async def close(self) -> None:
        """Stop claiming offers; claims in flight lapse and the server offers them again."""
        if self._claimer is not None:
            self._claimer.cancel()
            await asyncio.gather(self._claimer, return_exceptions=True)

    # -- pushed claims --------------------------------------------------------------------------

    def pushed(self, claim: ClaimResponse) -> bool:
        """Run a claim the server pushed; ``False`` when its source is unknown here (the
        stream must be opened again)."""
        execution_id = claim.execution_id
        if claim.source:
            self.sources[claim.source_hash] = claim.source
        else:
            source = self.sources.get(claim.source_hash)
            if source is None:
                log.error("claim of %s came without a source this worker has", execution_id)
                self._spawn(self._release(claim))
                return False
            claim.source = source
        if self.draining() or execution_id in self.claiming:
            self._spawn(self._release(claim))
            return True
        self.claiming.add(execution_id)
        stale = self.executions.task_of(execution_id)
        if stale is not None:
            # Taken back and given to this worker again while the old copy still runs: that
            # copy is fenced now; the new claim starts once it has stopped.
            self.executions.abandon(execution_id, "claimed again with a newer generation")
            self._spawn(self._run_after(stale, claim))
        else:
            self._spawn(self._run(claim))
        return True

    async def _run_after(self, task: asyncio.Task[Any], claim: ClaimResponse) -> None:
        await asyncio.wait([task])
        await self._run(claim)

    # -- offers -------------------------------------------------------------------------------

    def offer(self, execution_id: str) -> None:
        """Claim an offered execution when a slot is free, with others offered meanwhile."""
        if self.draining() or execution_id in self.claiming:
            return
        unwinding = self.executions.task_of(execution_id)
        if unwinding is not None:
            # Queued again while its last run still unwinds here (resumed right after it
            # paused, a child process not yet gone): claim it once that run has stopped,
            # rather than leave the offer to lapse.
            self._spawn(self._offer_after(unwinding, execution_id))
            return
        if self.busy() >= self.capacity:
            # The server offers only what it believes fits, so this worker is merely behind
            # (a run whose end the server has committed is still unwinding here): claim it as
            # soon as a run ends rather than leave it until the offer lapses.
            if len(self._deferred) < self.capacity:
                self._deferred[execution_id] = None
            return
        self.claiming.add(execution_id)
        self._to_claim.append(execution_id)
        self._wake.set()
        if self._claimer is None or self._claimer.done():
            self._claimer = asyncio.get_running_loop().create_task(self._claim_loop())

    async def _offer_after(self, task: asyncio.Task[Any], execution_id: str) -> None:
        await asyncio.wait([task])
        self.offer(execution_id)

    def take_deferred(self) -> None:
        """Claim offers deferred for want of a free slot, now that slots are free."""
        while self._deferred and not self.draining():
            if self.busy() >= self.capacity:
                return
            execution_id = next(iter(self._deferred))
            del self._deferred[execution_id]
            self.offer(execution_id)

    async def _claim_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(0)  # offers that arrived in the same burst share the request
            self._wake.clear()
            while self._to_claim:
                ids = self._to_claim[:MAX_CLAIMS_PER_REQUEST]
                del self._to_claim[:MAX_CLAIMS_PER_REQUEST]
                claims: list[ClaimResponse] = []
                try:
                    claims = await self._claim(ids)
                finally:
                    taken = {c.execution_id for c in claims}
                    self.claiming.difference_update(i for i in ids if i not in taken)
                    self.take_deferred()
                for claim in claims:
                    if self.draining():  # stopped while the claim was in flight: hand it back
                        self.claiming.discard(claim.execution_id)
                        self._spawn(self._release(claim))
                    else:
                        self._spawn(self._run(claim))

    async def _claim(self, ids: list[str]) -> list[ClaimResponse]:
        """The claims the server granted among ``ids`` (refused and failed ones are dropped:
        another worker has them, or the server offers them again after the claim timeout)."""
        try:
            response = await self.channel().claims(
                ids,
                self.executions.modules.hashes(),
                history_format="columns",
                decode_history=self.decode_history,
            )
        except (ApiError, OSError) as exc:
            log.info("claim of %d execution(s) failed: %s", len(ids), exc)
            return []
        claims = []
        for result in response.results:
            if result.claim is not None:
                claims.append(result.claim)
            elif result.error is not None and result.error.code != "conflict":
                log.info("claim of %s refused: %s", result.execution_id, result.error)
        return claims

    # -- either -------------------------------------------------------------------------------

    async def _run(self, claim: ClaimResponse) -> None:
        execution_id = claim.execution_id
        try:
            await self.executions.run(claim, lambda: self.claiming.discard(execution_id))
        finally:
            self.claiming.discard(execution_id)
            self.take_deferred()

    async def _release(self, claim: ClaimResponse) -> None:
        reason = "worker draining" if self.draining() else "worker cannot run it now"
        await self.executions.release(claim.execution_id, claim.generation, reason)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._spawned.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._spawned.discard)
