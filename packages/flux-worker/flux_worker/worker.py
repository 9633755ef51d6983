"""The worker: register, hold one SSE stream, claim offers, run executions, checkpoint.

Life of a worker:
1. ``POST /workers/register`` with the bootstrap token -> session token.
2. ``GET /workers/{name}/connect`` (SSE). ``execution.scheduled`` offers are claimed when there
   is room, those arriving together in one ``POST /workers/{name}/claims`` (one by one from a
   protocol 1.0 server); a conflict means another worker got it. ``execution.cancelled``
   cancels a run.
3. Each claimed execution replays in-process from its history (compiled modules cached by
   name, version and source hash) and checkpoints through its own :class:`Outbox`.
4. A heartbeat task reports resources; an execution missing from the server's ``held`` list
   was fenced and is abandoned. Task code that blocks the event loop (``import torch``, a long
   synchronous call) would stop that task too, so a :class:`_Keepalive` thread heartbeats in
   its place while the loop is stalled, up to ``max_loop_stall`` seconds.
5. Lost stream or server restart: reconnect with jittered backoff, registering again if the
   session is gone. SIGTERM drains: no new claims, running executions get ``drain_timeout``
   seconds to finish, the rest are released back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from flux.context import ExecutionContext
from flux.domain import EventType, ExecutionEvent
from flux.errors import ApiError, ConflictError, FluxError, NonDeterminismError, NotFoundError
from flux.protocol.events import EventRecord
from flux.protocol.frames import (
    ExecutionCancelledFrame,
    ExecutionClaimedFrame,
    ExecutionScheduledFrame,
)
from flux.protocol.workers import RegisterWorkerRequest
from flux.runner import WorkflowRun
from flux.serialization import b64decode, loads
from flux.store import LocalStore

from flux_worker import resources as res
from flux_worker.modules import ModuleCache
from flux_worker.outbox import CheckpointSender, FencedError, Outbox

__all__ = ["Worker"]

log = logging.getLogger("flux.worker")


class _Execution:
    __slots__ = ("outbox", "run", "task")

    def __init__(self, run: WorkflowRun, outbox: Outbox, task: asyncio.Task[Any]) -> None:
        self.run = run
        self.outbox = outbox
        self.task = task


class Worker:
    def __init__(
        self,
        name: str,
        server_url: str,
        bootstrap_token: str,
        *,
        capacity: int = 16,
        serializer: str = "pkl",
        home: str | Path = ".flux",
        drain_timeout: float = 30.0,
        max_backoff: float = 5.0,
        isolation: str = "inprocess",
        client: Any = None,
        max_loop_stall: float = 300.0,
        push_claims: bool = True,
    ) -> None:
        from flux.client import AsyncFluxClient

        self.name = name
        self.server_url = server_url
        self.bootstrap_token = bootstrap_token
        self.capacity = capacity
        self.serializer = serializer
        self.home = Path(home)
        self.drain_timeout = drain_timeout
        self.max_backoff = max_backoff
        self.isolation = isolation
        self.client = client or AsyncFluxClient(server_url)
        self.modules = ModuleCache()
        self.running: dict[str, _Execution] = {}
        self.session_token: str | None = None
        self.channel: Any = None
        self.sender = CheckpointSender(lambda: self.channel, max_backoff)
        self.heartbeat_interval = 5.0
        self._gpus = res.detect_gpus()
        self.gpu_slots = res.GpuSlots(self._gpus)
        """The GPUs each execution run in a child process was given."""
        self._gpus_freed = asyncio.Event()
        self._draining = False
        self._stopped = asyncio.Event()
        self._claiming: set[str] = set()
        self._to_claim: list[str] = []
        self._claim_wake = asyncio.Event()
        self._claimer: asyncio.Task[None] | None = None
        self._batch_claims = True
        # In-process runs replay from domain events decoded straight off the wire; a child
        # process gets the claim as it came (records), so those keep the records.
        self._decode_history = isolation != "subprocess"
        self._deferred: dict[str, None] = {}
        """Offers that came while every slot was taken, oldest first."""
        self._spawned: set[asyncio.Task[Any]] = set()
        self.max_loop_stall = max_loop_stall
        self.push_claims = push_claims
        """Ask for claims pushed on the stream (protocol 1.3) instead of offers to claim."""
        self._sources: dict[str, str] = {}
        """Workflow sources pushed to this worker, by hash: the server sends each once per
        stream."""

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT when installed) has drained the worker."""
        await self._register()
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        stream = asyncio.create_task(self._stream_loop())
        keepalive = _Keepalive(self, asyncio.get_running_loop())
        keepalive.start()
        try:
            await self._stopped.wait()
        finally:
            stream.cancel()
            heartbeat.cancel()
            tasks = [stream, heartbeat]
            if self._claimer is not None:
                self._claimer.cancel()  # claims in flight lapse; the server offers them again
                tasks.append(self._claimer)
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._drain()
            keepalive.stop()
            await self.sender.close()
            close = getattr(self.client, "aclose", None)
            if close is not None:
                await close()

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self.stop)

    def stop(self) -> None:
        """Stop taking work; running executions get the drain timeout to finish."""
        if not self._draining:
            log.info("worker %s draining", self.name)
        self._draining = True
        self._stopped.set()

    async def _drain(self) -> None:
        if not self.running:
            return
        tasks = [e.task for e in self.running.values()]
        _, pending = await asyncio.wait(tasks, timeout=self.drain_timeout)
        for execution_id, execution in list(self.running.items()):
            if execution.task in pending:
                execution.outbox.abandon()
                execution.task.cancel()
                with contextlib.suppress(ApiError, OSError):
                    await self.channel.release(
                        execution_id, execution.outbox.generation, "worker draining"
                    )
        if pending:
            await asyncio.wait(pending)

    # -- registration and stream ---------------------------------------------------------------

    async def _register(self) -> None:
        attempt = 0
        while True:
            try:
                request = RegisterWorkerRequest(
                    name=self.name,
                    runtime=res.runtime(),
                    resources=res.resources(self.home if self.home.exists() else ".", self._gpus),
                    packages=res.installed_packages(),
                    capacity=self.capacity,
                )
                response = await self.client.register_worker(
                    request, bootstrap_token=self.bootstrap_token
                )
            except ApiError as exc:
                if exc.status_code in (400, 401, 403, 422, 426):
                    raise  # wrong token, name or version: retrying will not help
                attempt = await self._backoff(attempt, f"register failed: {exc}")
            except OSError as exc:
                attempt = await self._backoff(attempt, f"server unreachable: {exc}")
            else:
                self.session_token = response.session_token
                self.channel = self.client.worker(self.name, response.session_token)
                self.heartbeat_interval = response.heartbeat_interval
                log.info("worker %s registered with %s", self.name, self.server_url)
                return

    async def _backoff(self, attempt: int, why: str) -> int:
        delay = min(self.max_backoff, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)
        log.warning("%s; retrying in %.1fs", why, delay)
        await asyncio.sleep(delay)
        return attempt + 1

    async def _stream_loop(self) -> None:
        attempt = 0
        while not self._draining:
            try:
                frames = self.channel.connect(
                    push=self.push_claims, decode_history=self._decode_history
                )
                async for frame in frames:
                    attempt = 0
                    if isinstance(frame, ExecutionClaimedFrame):
                        if not self._pushed(frame.claim):
                            break  # reconnect: the new stream sends every source again
                    elif isinstance(frame, ExecutionScheduledFrame):
                        self._offer(frame.execution_id)
                    elif isinstance(frame, ExecutionCancelledFrame):
                        self._cancel(frame.execution_id)
                attempt = await self._backoff(attempt, "stream closed")
            except ApiError as exc:
                if exc.status_code in (401, 403, 404):
                    await self._register()
                    continue
                attempt = await self._backoff(attempt, f"stream failed: {exc}")
            except OSError as exc:
                attempt = await self._backoff(attempt, f"stream lost: {exc}")
            except FluxError as exc:
                attempt = await self._backoff(attempt, f"stream error: {exc}")
            except Exception:  # a bug, or a frame this version cannot read: keep serving
                log.exception("unexpected error on the stream")
                attempt = await self._backoff(attempt, "stream error")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            try:
                resources = res.resources(self.home if self.home.exists() else ".", self._gpus)
                # Only executions already running when this heartbeat left can be judged by
                # its answer: a claim that commits meanwhile is not in ``held`` yet.
                sent_with = set(self.running)
                running = [*self.running, *self._claiming]
                response = await self.channel.heartbeat(resources, running)
            except ApiError as exc:
                if exc.status_code in (401, 403, 404):
                    with contextlib.suppress(ApiError, OSError):
                        await self._register()
                continue
            except (OSError, FluxError):
                continue
            except Exception:  # a bug: beat again next time rather than stop beating
                log.exception("unexpected error in the heartbeat")
                continue
            self.heartbeat_interval = response.heartbeat_interval
            held = set(response.held)
            for execution_id in sent_with - held:
                if execution_id in self.running:
                    self._abandon(execution_id, "no longer held by this worker")
            for execution_id in response.cancelling:
                self._cancel(execution_id)

    # -- executions ----------------------------------------------------------------------------

    def _offer(self, execution_id: str) -> None:
        if self._draining or execution_id in self.running or execution_id in self._claiming:
            return
        if len(self.running) + len(self._claiming) >= self.capacity:
            # The server offers only what it believes fits, so this worker is merely behind
            # (a run whose end the server has committed is still unwinding here): claim it as
            # soon as a run ends rather than leave it until the offer lapses.
            if len(self._deferred) < self.capacity:
                self._deferred[execution_id] = None
            return
        self._claiming.add(execution_id)
        self._to_claim.append(execution_id)
        self._claim_wake.set()
        if self._claimer is None or self._claimer.done():
            self._claimer = asyncio.get_running_loop().create_task(self._claim_loop())

    def _pushed(self, claim: Any) -> bool:
        """Run a claim the server pushed; ``False`` when its source is unknown here (the
        stream must be opened again)."""
        execution_id = claim.execution_id
        if claim.source:
            self._sources[claim.source_hash] = claim.source
        else:
            source = self._sources.get(claim.source_hash)
            if source is None:
                log.error("claim of %s came without a source this worker has", execution_id)
                self._spawn(self._release(execution_id, claim.generation))
                return False
            claim.source = source
        if self._draining or execution_id in self._claiming:
            self._spawn(self._release(execution_id, claim.generation))  # stopping
            return True
        self._claiming.add(execution_id)
        stale = self.running.get(execution_id)
        if stale is not None:
            # Taken back and given to this worker again while the old copy still runs: that
            # copy is fenced now; the new claim starts once it has stopped.
            self._abandon(execution_id, "claimed again with a newer generation")
            self._spawn(self._run_after(stale.task, claim))
        else:
            self._spawn(self._run_claimed(claim))
        return True

    async def _run_after(self, task: asyncio.Task[Any], claim: Any) -> None:
        await asyncio.wait([task])
        await self._run_claimed(claim)

    def _cancel(self, execution_id: str) -> None:
        execution = self.running.get(execution_id)
        if execution is not None:
            execution.run.cancel()

    def _abandon(self, execution_id: str, why: str) -> None:
        execution = self.running.get(execution_id)
        if execution is not None:
            log.warning("abandoning execution %s: %s", execution_id, why)
            execution.outbox.abandon()
            execution.task.cancel()

    async def _claim_loop(self) -> None:
        while True:
            await self._claim_wake.wait()
            await asyncio.sleep(0)  # offers that arrived in the same burst share the request
            self._claim_wake.clear()
            while self._to_claim:
                ids, self._to_claim = self._to_claim[:1000], self._to_claim[1000:]
                claims: list[Any] = []
                try:
                    claims = await self._claim_batch(ids)
                finally:
                    taken = {c.execution_id for c in claims}
                    self._claiming.difference_update(i for i in ids if i not in taken)
                    self._take_deferred()
                for claim in claims:
                    if self._draining:  # stopped while the claim was in flight: hand it back
                        self._claiming.discard(claim.execution_id)
                        self._spawn(self._release(claim.execution_id, claim.generation))
                    else:
                        self._spawn(self._run_claimed(claim))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._spawned.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._spawned.discard)

    async def _release(self, execution_id: str, generation: int) -> None:
        reason = "worker draining" if self._draining else "worker cannot run it now"
        with contextlib.suppress(ApiError, OSError):
            await self.channel.release(execution_id, generation, reason)

    async def _claim_batch(self, ids: list[str]) -> list[Any]:
        """The claims the server granted among ``ids`` (refused and failed ones are dropped:
        another worker has them, or the server offers them again after the claim timeout)."""
        if self._batch_claims:
            try:
                response = await self.channel.claims(
                    ids, self.modules.hashes(), decode_history=self._decode_history
                )
            except NotFoundError:
                log.info("the server has no batched claims (protocol 1.0): claiming one by one")
                self._batch_claims = False
            except (ApiError, OSError) as exc:
                log.info("claim of %d execution(s) failed: %s", len(ids), exc)
                return []
            else:
                for result in response.results:
                    if result.error is not None and result.error.code != "conflict":
                        log.info("claim of %s refused: %s", result.execution_id, result.error)
                return [r.claim for r in response.results if r.claim is not None]
        claims = await asyncio.gather(*(self._claim_one(i) for i in ids))
        return [c for c in claims if c is not None]

    async def _claim_one(self, execution_id: str) -> Any:
        try:
            return await self.channel.claim(execution_id, decode_history=self._decode_history)
        except ConflictError:
            return None  # another worker has it
        except (ApiError, OSError) as exc:
            log.info("claim of %s failed: %s", execution_id, exc)
            return None

    async def _run_claimed(self, claim: Any) -> None:
        gpus: list[int] = []
        if self.isolation == "subprocess":
            # A child process can be shown only its GPUs; in-process runs share the process.
            gpus = await self._take_gpus(claim)
        try:
            await self._run_claimed_with(claim, gpus)
        finally:
            if self.gpu_slots.give_back(claim.execution_id):
                self._gpus_freed.set()

    async def _take_gpus(self, claim: Any, patience: float = 10.0) -> list[int]:
        """The GPUs for ``claim``. The server counts GPUs as free once it has committed the
        end of the run holding them, which may be before that run has unwound here: wait for
        it (``patience`` seconds at most, then run without pinning and say so)."""
        deadline = asyncio.get_running_loop().time() + patience
        while True:
            taken = self.gpu_slots.take(claim.execution_id, claim.requests)
            if taken is not None:
                return taken
            remaining = deadline - asyncio.get_running_loop().time()
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

    async def _run_claimed_with(self, claim: Any, gpus: list[int]) -> None:
        execution_id = claim.execution_id
        try:
            outbox = Outbox(
                self.sender,
                execution_id,
                claim.generation,
                self.serializer,
                on_fenced=lambda: self._abandon(execution_id, "fenced by the server"),
                workflow_name=claim.workflow_name,
            )
            if self.isolation == "subprocess":
                runner: Any = _ChildRun(self, claim, outbox, gpus)
            else:
                try:
                    runner = self._in_process_run(claim, outbox)
                except Exception as exc:
                    log.error("execution %s cannot run: %s", execution_id, exc)
                    self._claiming.discard(execution_id)
                    await self._record_failure(claim, outbox, exc)
                    self._take_deferred()
                    return
            task = asyncio.current_task()
            assert task is not None
            self.running[execution_id] = _Execution(runner, outbox, task)
        finally:
            self._claiming.discard(execution_id)
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
            await self._record_failure(claim, outbox, exc)
        except FluxError as exc:
            log.warning("execution %s stopped: %s", execution_id, exc)
            if not outbox.fenced:
                with contextlib.suppress(ApiError, OSError):
                    await self.channel.release(execution_id, claim.generation, str(exc))
        finally:
            self.running.pop(execution_id, None)
            self._take_deferred()

    def _take_deferred(self) -> None:
        """Claim offers deferred for want of a free slot, now that slots are free."""
        while self._deferred and not self._draining:
            if len(self.running) + len(self._claiming) >= self.capacity:
                return
            execution_id = next(iter(self._deferred))
            del self._deferred[execution_id]
            self._offer(execution_id)

    def _in_process_run(self, claim: Any, outbox: Outbox) -> WorkflowRun:
        wf = self.modules.load(
            claim.workflow_name, claim.workflow_version, claim.source_hash, claim.source
        )
        ctx = context_from_claim(claim)
        return WorkflowRun(wf, ctx, outbox, _WorkerServices(self, claim.execution_id))

    async def _record_failure(self, claim: Any, outbox: Outbox, exc: BaseException) -> None:
        """End the execution FAILED with ``exc`` (source that cannot load, history that
        cannot be read back, nondeterminism)."""
        ctx = failed_context(claim, exc)
        with contextlib.suppress(FluxError, FencedError):
            outbox.save(ctx, ctx.events)
            await outbox.finish(ctx)

    def cache(self) -> LocalStore:
        return worker_cache(self.home, self.serializer)


class _WorkerServices:
    """Secrets from the server (for this execution only), a local cache, subworkflows by HTTP."""

    def __init__(self, worker: Worker, execution_id: str) -> None:
        self.worker = worker
        self.execution_id = execution_id

    async def get_secrets(self, names: list[str]) -> dict[str, Any]:
        from flux.errors import NotFoundError, SecretNotFoundError

        w = self.worker
        try:
            return await w.channel.get_secrets(self.execution_id, names)
        except NotFoundError as exc:
            raise SecretNotFoundError(exc.message) from None

    def cache_get(self, key: str) -> tuple[bool, Any]:
        return self.worker.cache().cache_get(key)

    def cache_put(self, key: str, value: Any) -> None:
        self.worker.cache().cache_put(key, value)

    async def call_workflow(self, target: Any, input: Any, execution_id: str) -> Any:
        name = target if isinstance(target, str) else target.name
        # The child's id is derived from the parent's and the call's: a parent that replays
        # the call (after its worker died mid-child) waits for the same child, not a new one.
        status = await self.worker.client.run(name, input, mode="sync", execution_id=execution_id)
        return subworkflow_outcome(name, status)


def worker_cache(home: str | Path, serializer: str) -> LocalStore:
    """Results of ``cache=True`` tasks, shared by the worker and its child processes."""
    return LocalStore.open(Path(home) / "worker-cache.db", serializer)


def context_from_claim(claim: Any) -> ExecutionContext[Any]:
    """The execution as the claim describes it: input and full history, ready to replay."""
    return ExecutionContext(
        claim.workflow_name,
        loads(b64decode(claim.input)),
        claim.execution_id,
        workflow_id=claim.workflow_id,
        events=claim.history(),
        state=claim.state,
        workflow_version=claim.workflow_version,
    )


def failed_context(claim: Any, exc: BaseException) -> ExecutionContext[Any]:
    """The execution ended FAILED by ``exc`` before its body could run; its one event is to
    be checkpointed."""
    ctx: ExecutionContext[Any] = ExecutionContext(
        claim.workflow_name, None, claim.execution_id, workflow_id=claim.workflow_id
    )
    ctx._apply(
        ExecutionEvent(EventType.WORKFLOW_FAILED, claim.execution_id, claim.workflow_name, exc)
    )
    return ctx


def subworkflow_outcome(name: str, status: Any) -> Any:
    """The output of a child run through the server, or its failure raised in the parent."""
    from flux.errors import ExecutionError, ExecutionPaused

    state = str(status.state)
    if state == "COMPLETED":
        return status.output
    if state == "PAUSED":
        raise ExecutionPaused(f"subworkflow:{status.execution_id}")
    raise ExecutionError(
        f"subworkflow {name!r} ended {state}: {status.output!r}",
        execution_id=status.execution_id,
    )


class _ChildRun:
    """An execution run by ``python -m flux_worker.child`` (subprocess isolation)."""

    def __init__(self, worker: Worker, claim: Any, outbox: Outbox, gpus: list[int]) -> None:
        self.worker = worker
        self.claim = claim
        self.outbox = outbox
        self.gpus = gpus
        self.proc: asyncio.subprocess.Process | None = None
        self._cancel_requested = False

    def cancel(self) -> None:
        self._cancel_requested = True
        self._send({"type": "cancel"})

    def _send(self, message: dict[str, Any]) -> None:
        proc = self.proc
        if proc is not None and proc.stdin is not None and not proc.stdin.is_closing():
            proc.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")

    async def execute(self) -> None:
        w = self.worker
        self.proc = proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "flux_worker.child",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, **res.gpu_env(self.gpus)} if self.gpus else None,
        )
        assert proc.stdout is not None
        header = {
            "claim": self.claim.model_dump(mode="json"),
            "serializer": w.serializer,
            "home": str(w.home),
            "server_url": w.server_url,
        }
        self._send(header)
        if self._cancel_requested:
            self._send({"type": "cancel"})
        done = False
        nondeterminism: str | None = None
        try:
            while line := await proc.stdout.readline():
                message = json.loads(line)
                kind = message["type"]
                if kind == "events":
                    self.outbox.enqueue([EventRecord.model_validate(e) for e in message["events"]])
                elif kind == "flush":
                    asyncio.get_running_loop().create_task(self._flushed(message["id"]))
                elif kind == "get_secrets":
                    asyncio.get_running_loop().create_task(self._secrets(message))
                elif kind == "nondeterminism":
                    nondeterminism = message["message"]
                elif kind == "done":
                    done = True
            await proc.wait()
        except BaseException:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            raise
        if nondeterminism is not None:
            raise NonDeterminismError(nondeterminism)
        if not done:
            raise _ChildCrashed(
                f"the child process of execution {self.claim.execution_id} exited with "
                f"{proc.returncode} before the run ended"
            )
        await self.outbox.flush()

    async def _flushed(self, request_id: int) -> None:
        with contextlib.suppress(FencedError):
            await self.outbox.flush()
        self._send({"type": "flushed", "id": request_id})

    async def _secrets(self, message: dict[str, Any]) -> None:
        services = _WorkerServices(self.worker, self.claim.execution_id)
        try:
            secrets = await services.get_secrets(message["names"])
        except FluxError as exc:
            self._send({"type": "secrets", "id": message["id"], "error": str(exc)})
        else:
            self._send({"type": "secrets", "id": message["id"], "secrets": secrets})


class _ChildCrashed(FluxError):
    code = "child_crashed"


class _Keepalive(threading.Thread):
    """Heartbeats from a thread while task code blocks the worker's event loop.

    The event loop's heartbeat task does the real work (resources, fenced and cancelled
    executions). This thread pings the loop (``call_soon_threadsafe``) about once a second;
    when a ping has gone unanswered for a heartbeat interval, it sends bare heartbeats over its
    own blocking connection so the server does not declare a busy worker dead and run its
    executions a second time elsewhere. After ``max_loop_stall`` seconds of stall it stops: a
    loop stuck that long is treated as hung, and the server requeues its work.
    """

    def __init__(self, worker: Worker, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(name=f"flux-keepalive-{worker.name}", daemon=True)
        self.worker = worker
        self.loop = loop
        self._halt = threading.Event()
        self._client: Any = None
        self._last_beat = 0.0
        self._pinged: float | None = None
        """When the unanswered ping was sent; ``None`` once the loop has run it."""

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()

    def _answer(self) -> None:  # runs on the event loop
        self._pinged = None

    def _stalled(self) -> float:
        """Seconds the loop has left a ping unanswered (0 when it answered the last one, which
        sends the next)."""
        pinged = self._pinged
        if pinged is not None:
            return time.monotonic() - pinged
        self._pinged = time.monotonic()
        try:
            self.loop.call_soon_threadsafe(self._answer)
        except RuntimeError:  # the loop is closed: the worker is shutting down
            self._halt.set()
        return 0.0

    def run(self) -> None:
        warned = gave_up = False
        while not self._halt.wait(min(1.0, self.worker.heartbeat_interval / 2)):
            stalled = self._stalled()
            if stalled < self.worker.heartbeat_interval:
                if warned:
                    log.warning("worker %s: event loop running again", self.worker.name)
                warned = gave_up = False
                continue
            if stalled > self.worker.max_loop_stall:
                if not gave_up:
                    log.error(
                        "worker %s: event loop blocked for %.0fs, over max_loop_stall; no more "
                        "heartbeats until it runs again (the server will requeue its work)",
                        self.worker.name,
                        stalled,
                    )
                gave_up = True
                continue
            if not warned:
                log.warning(
                    "worker %s: event loop blocked for %.1fs by task code; heartbeating from a "
                    "thread meanwhile (run blocking work with asyncio.to_thread)",
                    self.worker.name,
                    stalled,
                )
                warned = True
            if time.monotonic() - self._last_beat >= self.worker.heartbeat_interval:
                self._beat()

    def _beat(self) -> None:
        token = self.worker.session_token
        if token is None:
            return
        self._last_beat = time.monotonic()
        try:
            if self._client is None:
                from flux.client import FluxClient

                self._client = FluxClient(self.worker.server_url, timeout=5.0)
            self._client.worker(self.worker.name, token).heartbeat()
        except Exception as exc:  # the loop's own heartbeat reports and recovers from errors
            log.debug("keepalive heartbeat failed: %s", exc)
