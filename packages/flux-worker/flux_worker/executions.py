"""The executions a worker runs: each claimed one with its outbox, its GPUs and its runner.

A claimed execution runs in-process (a :class:`flux.runner.WorkflowRun` replaying from the
claim's history, its module compiled once per source) or, with subprocess isolation, in a
child process (:class:`~flux_worker.isolation.ChildRun`). Its events go through its own
:class:`~flux_worker.outbox.Outbox`. An execution that cannot run here (a source that does
not load, a history that does not read back, nondeterminism) ends FAILED with the reason; one
fenced by the server is abandoned at once; one that stops otherwise is released to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from flux import logs
from flux.errors import ApiError, FluxError, NonDeterminismError, NotFoundError, SecretNotFoundError
from flux.observability import trace_id_of
from flux.protocol.claims import ClaimResponse
from flux.runner import WorkflowRun

from flux_worker.contexts import context_from_claim, failed_context
from flux_worker.isolation import ChildRun
from flux_worker.modules import ModuleCache
from flux_worker.outbox import CheckpointSender, FencedError, Outbox
from flux_worker.progress import ProgressSender
from flux_worker.resources import GpuSlots
from flux_worker.services import ExecutionServices, SecretSource

if TYPE_CHECKING:
    from flux._runtime import Checkpointer
    from flux.client import AsyncWorkerChannel, Call
    from flux.protocol import ExecutionStatus

    from flux_worker.tracing import Segment, WorkerTracer

__all__ = ["Execution", "Executions", "Runner"]

T = TypeVar("T")

log = logging.getLogger("flux.worker")

GPU_PATIENCE = 10.0
"""Seconds a claim waits for the GPUs it asks for to be given back here."""


class Runner(Protocol):
    """An execution's run: in-process (:class:`WorkflowRun`) or in a child process."""

    def cancel(self) -> None: ...

    async def execute(self) -> Any: ...


class Execution:
    """One execution running here: its runner, its outbox and the task that runs it."""

    __slots__ = ("outbox", "run", "task")

    def __init__(self, run: Runner, outbox: Outbox, task: asyncio.Task[Any]) -> None:
        self.run = run
        self.outbox = outbox
        self.task = task


class Executions:
    """The executions running on one worker, by id.

    Args:
        channel: the worker's channel now (it changes when the worker registers again).
        sender: the worker's checkpoint sender, shared by every outbox.
        gpus: which GPUs each execution holds.
        isolation: ``"inprocess"`` or ``"subprocess"``.
        tracer: makes each run's spans when the worker traces (:mod:`flux_worker.tracing`).
    """

    def __init__(
        self,
        channel: Callable[[], AsyncWorkerChannel],
        sender: CheckpointSender,
        gpus: GpuSlots,
        *,
        isolation: Literal["inprocess", "subprocess"],
        serializer: str,
        home: Path,
        server_url: str,
        tracer: WorkerTracer | None = None,
    ) -> None:
        self.channel = channel
        self.sender = sender
        self.gpus = gpus
        self.isolation = isolation
        self.serializer = serializer
        self.home = home
        self.server_url = server_url
        self.tracer = tracer
        self.modules = ModuleCache()
        self.progress = ProgressSender(channel)
        self.running: dict[str, Execution] = {}
        self.on_claim: Callable[[ClaimResponse], None] | None = None
        """Told of each claim before it runs (the worker's metrics count its replays)."""
        self._gpus_freed = asyncio.Event()

    def __len__(self) -> int:
        return len(self.running)

    def __contains__(self, execution_id: object) -> bool:
        return execution_id in self.running

    def task_of(self, execution_id: str) -> asyncio.Task[Any] | None:
        execution = self.running.get(execution_id)
        return None if execution is None else execution.task

    def cancel(self, execution_id: str) -> None:
        """Cancel the run (its rollback runs, and it ends CANCELLED)."""
        execution = self.running.get(execution_id)
        if execution is not None:
            execution.run.cancel()

    def abandon(self, execution_id: str, why: str) -> None:
        """Stop the run without another write: the execution is no longer this worker's."""
        execution = self.running.get(execution_id)
        if execution is not None:
            log.warning("abandoning execution %s: %s", execution_id, why)
            execution.outbox.abandon()
            execution.task.cancel()

    async def release(self, execution_id: str, generation: int, reason: str) -> None:
        """Give an execution back to the queue (it replays elsewhere); failures are ignored:
        the server requeues it anyway once the claim lapses."""
        with contextlib.suppress(ApiError, OSError):
            await self.channel().release(execution_id, generation, reason)

    async def drain(self, timeout: float) -> None:
        """Wait ``timeout`` seconds for the runs to end; release the rest."""
        if not self.running:
            return
        tasks = [e.task for e in self.running.values()]
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for execution_id, execution in list(self.running.items()):
            if execution.task in pending:
                execution.outbox.abandon()
                execution.task.cancel()
                await self.release(execution_id, execution.outbox.generation, "worker draining")
        if pending:
            await asyncio.wait(pending)

    async def run(self, claim: ClaimResponse, started: Callable[[], None]) -> None:
        """Run ``claim`` to its end. ``started`` is called once the execution counts among
        :attr:`running` (or has ended, when it cannot run here)."""
        if self.on_claim is not None:
            self.on_claim(claim)
        gpus: list[int] = []
        if self.isolation == "subprocess":
            # A child process can be shown only its GPUs; in-process runs share the process.
            gpus = await self._take_gpus(claim)
        try:
            await self._run(claim, gpus, started)
        finally:
            if self.gpus.give_back(claim.execution_id):
                self._gpus_freed.set()

    async def _take_gpus(self, claim: ClaimResponse) -> list[int]:
        """The GPUs for ``claim``. The server counts GPUs as free once it has committed the
        end of the run holding them, which may be before that run has unwound here: wait for
        it (:data:`GPU_PATIENCE` seconds at most, then run without pinning and say so)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + GPU_PATIENCE
        while True:
            taken = self.gpus.take(claim.execution_id, claim.requests)
            if taken is not None:
                return taken
            remaining = deadline - loop.time()
            if remaining <= 0:
                log.warning(
                    "execution %s asks for more GPUs than are free here; it runs seeing all",
                    claim.execution_id,
                )
                return []
            self._gpus_freed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._gpus_freed.wait()

    async def _run(
        self, claim: ClaimResponse, gpus: list[int], started: Callable[[], None]
    ) -> None:
        # Everything logged while it runs (here or by its tasks) names the execution.
        segment = None if self.tracer is None else self.tracer.segment(claim)
        trace_id = trace_id_of(claim.traceparent) if segment is None else segment.trace_id
        token = logs.bind(claim.execution_id, trace_id)
        try:
            await self._run_segment(claim, gpus, started, segment)
        finally:
            logs.unbind(token)
            if segment is not None:
                segment.end()

    async def _run_segment(
        self,
        claim: ClaimResponse,
        gpus: list[int],
        started: Callable[[], None],
        segment: Segment | None,
    ) -> None:
        execution_id = claim.execution_id
        try:
            outbox = Outbox(
                self.sender,
                execution_id,
                claim.generation,
                self.serializer,
                on_fenced=lambda: self.abandon(execution_id, "fenced by the server"),
                workflow_name=claim.workflow_name,
            )
            checkpointer = outbox if segment is None else segment.checkpointer(outbox)
            runner: Runner
            if self.isolation == "subprocess":
                runner = ChildRun(
                    claim,
                    outbox,
                    gpus,
                    self._secrets(execution_id),
                    serializer=self.serializer,
                    home=self.home,
                    server_url=self.server_url,
                    session=(self.channel().name, self.channel().session_token),
                    segment=segment,
                    on_progress=self.progress.sink(execution_id),
                )
            else:
                try:
                    runner = self._in_process(claim, checkpointer, segment)
                except Exception as exc:
                    log.error("execution %s cannot run: %s", execution_id, exc)
                    started()
                    await self._record_failure(claim, checkpointer, exc)
                    return
            task = asyncio.current_task()
            assert task is not None
            self.running[execution_id] = Execution(runner, outbox, task)
        finally:
            started()
        try:
            await runner.execute()
        except FencedError as exc:
            if outbox.failure is None:
                log.warning("execution %s was claimed again elsewhere; abandoned", execution_id)
            else:
                log.info("execution %s stopped: %s", execution_id, exc)
        except asyncio.CancelledError:
            if not outbox.fenced:
                raise
        except NonDeterminismError as exc:
            # The same version of the code behaves differently on replay (time or randomness
            # outside tasks): it can never finish, so it fails with the reason, visibly.
            log.error("execution %s: %s", execution_id, exc)
            await self._record_failure(claim, checkpointer, exc)
        except FluxError as exc:
            log.warning("execution %s stopped: %s", execution_id, exc)
            if not outbox.fenced:
                await self.release(execution_id, claim.generation, str(exc))
        finally:
            self.running.pop(execution_id, None)
            self.progress.forget(execution_id)

    def _in_process(
        self, claim: ClaimResponse, checkpointer: Checkpointer, segment: Segment | None
    ) -> WorkflowRun:
        """Raises whatever loading the source or reading the history back raises."""
        wf = self.modules.load(
            claim.workflow_name, claim.workflow_version, claim.source_hash, claim.source
        )
        ctx = context_from_claim(claim)
        services = ExecutionServices(
            self._secrets(claim.execution_id),
            _Link(
                self.channel,
                claim.execution_id,
                claim.traceparent if segment is None else segment.traceparent,
            ),
            home=self.home,
            serializer=self.serializer,
        )
        return WorkflowRun(wf, ctx, checkpointer, services, self.progress.sink(claim.execution_id))

    def _secrets(self, execution_id: str) -> SecretSource:
        """Secrets from the server, for ``execution_id`` only (the server checks it is held)."""

        async def get(names: list[str]) -> dict[str, Any]:
            try:
                return await self.channel().get_secrets(execution_id, names)
            except NotFoundError as exc:
                raise SecretNotFoundError(exc.message) from None

        return get

    async def _record_failure(
        self, claim: ClaimResponse, checkpointer: Checkpointer, exc: BaseException
    ) -> None:
        """End the execution FAILED with ``exc`` (source that cannot load, history that
        cannot be read back, nondeterminism)."""
        ctx = failed_context(claim, exc)
        with contextlib.suppress(FluxError, FencedError):
            checkpointer.save(ctx, ctx.events)
            await checkpointer.finish(ctx)


class _Link:
    """The server as one in-process execution reaches it: through the worker's channel now
    (it changes when the worker registers again), as its worker."""

    __slots__ = ("_channel", "_parent", "_traceparent")

    def __init__(
        self, channel: Callable[[], AsyncWorkerChannel], parent: str, traceparent: str | None
    ) -> None:
        self._channel = channel
        self._parent = parent
        self._traceparent = traceparent
        """The parent's segment (or stored trace): children start in the parent's trace."""

    async def run_child(self, name: str, input: Any, execution_id: str) -> ExecutionStatus:
        return await self._channel().run_child(
            name,
            input,
            execution_id=execution_id,
            parent=self._parent,
            traceparent=self._traceparent,
        )

    async def send(self, call: Call[T]) -> T:
        return await self._channel().send(call)
