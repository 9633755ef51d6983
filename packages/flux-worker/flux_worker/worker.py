"""The worker's life: register, hold one SSE stream, heartbeat, drain and stop.

1. ``POST /workers/register`` with the bootstrap token -> session token.
2. ``GET /workers/{name}/connect?push=true`` (SSE): claims arrive on the stream (or offers,
   with ``push_claims=False``) and go to the :class:`~flux_worker.claims.Claimer`, which starts
   them as :class:`~flux_worker.executions.Executions`; ``execution.cancelled`` cancels a run.
3. A heartbeat task reports resources; an execution missing from the server's ``held`` list
   was fenced and is abandoned. While task code blocks the event loop, a
   :class:`~flux_worker.keepalive.Keepalive` thread heartbeats in its place, up to
   ``max_loop_stall`` seconds.
4. Lost stream or server restart: reconnect with jittered backoff, registering again if the
   session is gone. A worker given several servers (replicas of one database) moves to the
   next when its server stops answering or is draining, keeping its session and what it has
   in flight (:mod:`~flux_worker.servers`). SIGTERM drains: no new claims, running
   executions get ``drain_timeout`` seconds to finish, the rest are released back to the
   queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from flux.errors import ApiError, FluxError, UsageError
from flux.protocol.frames import (
    ExecutionCancelledFrame,
    ExecutionClaimedFrame,
    ExecutionScheduledFrame,
)
from flux.protocol.workers import RegisterWorkerRequest, WorkerResources

from flux_worker import resources as res
from flux_worker._backoff import backoff_delay
from flux_worker.claims import Claimer
from flux_worker.executions import Executions
from flux_worker.keepalive import BlockingHeartbeat, Keepalive
from flux_worker.outbox import CheckpointChannel, CheckpointSender
from flux_worker.servers import ServerList, server_gone
from flux_worker.tracing import worker_tracer

if TYPE_CHECKING:
    from flux.client import AsyncFluxClient, AsyncWorkerChannel
    from opentelemetry.sdk.trace import TracerProvider

    from flux_worker.metrics import WorkerMetrics

__all__ = ["Worker"]

log = logging.getLogger("flux.worker")

# Refusals of a registration that retrying cannot fix: a wrong token, name or version.
_REGISTER_FATAL = frozenset({400, 401, 403, 422, 426})
LEAVE_TIMEOUT = 5.0
"""Seconds a stopping worker waits for the server to take its goodbye."""
# The session is gone (the server restarted, or declared this worker dead): register again.
_SESSION_GONE = frozenset({401, 403, 404})


class Worker:
    """A Flux worker: claims executions from a server and runs them until stopped.

    Args:
        name: unique per worker; registering again under the same name starts a new session.
        server_url: the Flux server; or several servers of one database (a list, or URLs
            separated by commas), in order of preference.
        bootstrap_token: the server's bootstrap token (exchanged for a session token).
        capacity: executions run at once.
        serializer: ``"pkl"`` or ``"json"``, for the values of recorded events.
        home: the Flux home (the task cache ``worker-cache.db`` lives there).
        drain_timeout: seconds running executions get to finish once stopped.
        max_backoff: the longest wait between reconnects and checkpoint retries.
        isolation: ``"inprocess"``, or ``"subprocess"`` for one child process per execution.
        client: the client to talk to the server through (default: one per server URL); when
            given, the worker uses that server only.
        max_loop_stall: seconds of blocked event loop after which the keepalive thread stops
            heartbeating (the server then requeues this worker's executions).
        push_claims: take claims pushed on the stream; ``False`` takes offers and claims them.
        tracer_provider: an OpenTelemetry ``TracerProvider`` for the worker's spans; ``None``:
            the process's, when the ``OTEL_*`` environment asks for traces
            (:mod:`flux_worker.tracing`).
        metrics_port: serve Prometheus metrics on this port while running
            (:mod:`flux_worker.metrics`; ``0`` picks a free one); ``None``: not served.
        metrics_host: the address the metrics port binds.

    Raises:
        UsageError: ``isolation`` is not one of the two, or a server URL is not one.
    """

    def __init__(
        self,
        name: str,
        server_url: str | Sequence[str],
        bootstrap_token: str,
        *,
        capacity: int = 16,
        serializer: str = "pkl",
        home: str | Path = ".flux",
        drain_timeout: float = 30.0,
        max_backoff: float = 5.0,
        isolation: str = "inprocess",
        client: AsyncFluxClient | None = None,
        max_loop_stall: float = 300.0,
        push_claims: bool = True,
        tracer_provider: TracerProvider | None = None,
        metrics_port: int | None = None,
        metrics_host: str = "localhost",
    ) -> None:
        from flux.client import AsyncFluxClient, server_urls

        if isolation not in ("inprocess", "subprocess"):
            raise UsageError(f"unknown isolation {isolation!r}; use 'inprocess' or 'subprocess'")
        mode: Literal["inprocess", "subprocess"] = (
            "subprocess" if isolation == "subprocess" else "inprocess"
        )
        self.name = name
        if client is None:
            self.servers = ServerList(server_urls(server_url), AsyncFluxClient)
        else:
            self.servers = ServerList([client.base_url], lambda url: client)
        self.bootstrap_token = bootstrap_token
        self.capacity = capacity
        self.serializer = serializer
        self.home = Path(home)
        self.drain_timeout = drain_timeout
        self.max_backoff = max_backoff
        self.isolation = isolation
        self.max_loop_stall = max_loop_stall
        self.push_claims = push_claims
        self.session_token: str | None = None
        self.channel: AsyncWorkerChannel | None = None
        self.heartbeat_interval = 5.0
        self.metrics: WorkerMetrics | None = None
        self.metrics_port = metrics_port
        """The port metrics are served on (the one bound once running, when ``0`` was asked)."""
        self.metrics_host = metrics_host
        checkpoints: Callable[[], CheckpointChannel] = self._channel
        if metrics_port is not None:
            from flux_worker.metrics import WorkerMetrics  # prometheus_client only when asked

            self.metrics = WorkerMetrics(self._workflow_of)
            checkpoints = self.metrics.checkpoints_through(checkpoints)
        self.sender = CheckpointSender(checkpoints, max_backoff)
        self._gpus = res.detect_gpus()
        self.gpu_slots = res.GpuSlots(self._gpus)
        """The GPUs each execution run in a child process was given."""
        self.executions = Executions(
            self._channel,
            self.sender,
            self.gpu_slots,
            isolation=mode,
            serializer=serializer,
            home=self.home,
            # A child process calls subworkflows through any of them (a client of several).
            server_url=",".join(self.servers.urls),
            tracer=worker_tracer(tracer_provider, name),
        )
        if self.metrics is not None:
            self.executions.on_claim = self.metrics.claimed
        # In-process runs replay from domain events decoded straight off the wire; a child
        # process gets the claim as it came and decodes it itself.
        self.claims = Claimer(
            self._channel,
            self.executions,
            capacity=capacity,
            draining=lambda: self._draining,
            decode_history=mode == "inprocess",
        )
        self._draining = False
        self._stopped = asyncio.Event()
        self._reading: asyncio.Task[None] | None = None
        """Reads the current stream."""
        self._attempt = 0
        """Reconnects since the stream last delivered a frame."""

    def _channel(self) -> AsyncWorkerChannel:
        if self.channel is None:
            raise RuntimeError("the worker has not registered yet")
        return self.channel

    def _workflow_of(self, execution_id: str) -> str | None:
        execution = self.executions.running.get(execution_id)
        return None if execution is None else execution.outbox.workflow_name

    @property
    def client(self) -> AsyncFluxClient:
        """The client of the server the worker works through now."""
        return self.servers.client

    @property
    def server_url(self) -> str:
        """The server the worker works through now."""
        return self.servers.url

    @property
    def server_urls(self) -> list[str]:
        """Every server the worker may work through, in order of preference."""
        return list(self.servers.urls)

    # -- lifecycle -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until :meth:`stop` (or SIGTERM/SIGINT when installed) has drained the worker.

        Raises:
            ApiError: the server refused the registration (wrong token, name or version).
            UsageError: the metrics port cannot be bound.
        """
        if self.metrics is not None and self.metrics_port is not None:
            self.metrics_port = self.metrics.serve(self.metrics_host, self.metrics_port)
            log.info("worker %s metrics on %s:%d", self.name, self.metrics_host, self.metrics_port)
        try:
            await self._serve()
        finally:
            if self.executions.tracer is not None:  # the spans it still holds, to the exporters
                self.executions.tracer.flush()
            if self.metrics is not None:
                self.metrics.close()

    async def _serve(self) -> None:
        await self._register()
        heartbeat = asyncio.create_task(self._heartbeat_loop())
        stream = asyncio.create_task(self._stream_loop())
        keepalive = Keepalive(
            asyncio.get_running_loop(),
            BlockingHeartbeat(lambda: self.server_url, self.name, lambda: self.session_token),
            name=self.name,
            interval=lambda: self.heartbeat_interval,
            max_stall=self.max_loop_stall,
        )
        keepalive.start()
        try:
            await self._stopped.wait()
        finally:
            stream.cancel()
            heartbeat.cancel()
            await asyncio.gather(stream, heartbeat, return_exceptions=True)
            await self.claims.close()
            await self.executions.drain(self.drain_timeout)
            keepalive.stop()
            await self.sender.close()
            await self._leave()
            await self.servers.aclose()

    async def _leave(self) -> None:
        """Tell the server this worker stops, once its checkpoints are sent: it shows it
        disconnected at once. A server that cannot be told finds out when the heartbeats stop."""
        if self.channel is None:
            return
        try:
            async with asyncio.timeout(LEAVE_TIMEOUT):
                left = await self.channel.leave()
        except (FluxError, OSError, TimeoutError) as exc:
            log.info("worker %s could not tell the server it stops: %s", self.name, exc)
            return
        if left.released:
            log.warning(
                "worker %s stopped holding %d execution(s); the server requeued them",
                self.name,
                len(left.released),
            )

    def install_signal_handlers(self) -> None:
        """Drain on SIGTERM and SIGINT (where the loop supports signal handlers)."""
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

    async def _register(self) -> None:
        attempt = 0
        while True:
            try:
                request = RegisterWorkerRequest(
                    name=self.name,
                    runtime=res.runtime(),
                    resources=self._resources(),
                    packages=res.installed_packages(),
                    capacity=self.capacity,
                )
                response = await self.client.register_worker(
                    request, bootstrap_token=self.bootstrap_token
                )
            except ApiError as exc:
                if exc.status_code in _REGISTER_FATAL:
                    raise
                if server_gone(exc):
                    attempt = await self._move(attempt, f"register failed: {exc}")
                else:
                    attempt = await self._backoff(attempt, f"register failed: {exc}")
            except OSError as exc:
                attempt = await self._move(attempt, f"server unreachable: {exc}")
            else:
                self.servers.answered()
                self.session_token = response.session_token
                self.channel = self.client.worker(self.name, response.session_token)
                self.heartbeat_interval = response.heartbeat_interval
                log.info("worker %s registered with %s", self.name, self.server_url)
                return

    async def _backoff(self, attempt: int, why: str) -> int:
        delay = backoff_delay(attempt, 0.1, self.max_backoff)
        log.warning("%s; retrying in %.1fs", why, delay)
        await asyncio.sleep(delay)
        return attempt + 1

    async def _move(self, attempt: int, why: str) -> int:
        """The current server cannot be worked through: go on with the next one, at once
        while some server has not failed since one last answered, else after a backoff. The
        session goes along (every replica reads it from the database), and so does whatever
        the worker sends from now on: claims, checkpoints, heartbeats."""
        if len(self.servers) == 1:
            return await self._backoff(attempt, why)
        untried = self.servers.failed()
        if self.session_token is not None:
            self.channel = self.client.worker(self.name, self.session_token)
        log.warning("worker %s: %s; moving to %s", self.name, why, self.server_url)
        if untried:
            return attempt
        return await self._backoff(attempt, "no server answers")

    def _resources(self) -> WorkerResources:
        return res.resources(self.home if self.home.exists() else ".", self._gpus)

    # -- the stream and the heartbeat ----------------------------------------------------------

    async def _stream_loop(self) -> None:
        self._attempt = 0
        while not self._draining:
            # The stream is read in a task of its own, so that a heartbeat that finds the
            # server gone can end it (a hung server never closes it).
            reading = self._reading = asyncio.create_task(self._read_stream())
            try:
                await reading
                self._attempt = await self._backoff(self._attempt, "stream closed")
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not reading.cancelled() or (task is not None and task.cancelling()):
                    raise  # the worker stops
                self._attempt = await self._move(self._attempt, "heartbeats to it failed")
            except ApiError as exc:
                if exc.status_code in _SESSION_GONE:
                    await self._register()
                    continue
                if server_gone(exc):
                    self._attempt = await self._move(self._attempt, f"stream lost: {exc}")
                    continue
                self._attempt = await self._backoff(self._attempt, f"stream failed: {exc}")
            except OSError as exc:
                self._attempt = await self._move(self._attempt, f"stream lost: {exc}")
            except FluxError as exc:
                self._attempt = await self._backoff(self._attempt, f"stream error: {exc}")
            except Exception:  # a bug, or a frame this version cannot read: keep serving
                log.exception("unexpected error on the stream")
                self._attempt = await self._backoff(self._attempt, "stream error")
            finally:
                reading.cancel()

    async def _read_stream(self) -> None:
        """Read the stream until it closes (a reconnect is in order when it returns)."""
        frames = self._channel().connect(
            push=self.push_claims, decode_history=self.claims.decode_history
        )
        async for frame in frames:
            self._attempt = 0
            self.servers.answered()
            if isinstance(frame, ExecutionClaimedFrame):
                if not self.claims.pushed(frame.claim):
                    return  # reconnect: the new stream sends every source again
            elif isinstance(frame, ExecutionScheduledFrame):
                self.claims.offer(frame.execution_id)
            elif isinstance(frame, ExecutionCancelledFrame):
                self.executions.cancel(frame.execution_id)

    def _server_silent(self, url: str, exc: BaseException) -> None:
        """A heartbeat to ``url`` found it gone: when the stream is still on it and another
        server is known, end the stream, so that the worker moves."""
        reading = self._reading
        if len(self.servers) > 1 and url == self.server_url and reading is not None:
            log.warning("worker %s: heartbeat to %s failed (%s)", self.name, url, exc)
            reading.cancel()

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            url = self.server_url
            try:
                resources = self._resources()
                # Only executions already running when this heartbeat left can be judged by
                # its answer: a claim that commits meanwhile is not in ``held`` yet.
                sent_with = set(self.executions.running)
                running = [*sent_with, *self.claims.claiming]
                response = await self._channel().heartbeat(resources, running)
            except ApiError as exc:
                if exc.status_code in _SESSION_GONE:
                    with contextlib.suppress(ApiError, OSError):
                        await self._register()
                elif server_gone(exc):
                    self._server_silent(url, exc)
                continue
            except OSError as exc:
                self._server_silent(url, exc)
                continue
            except FluxError:
                continue
            except Exception:  # a bug: beat again next time rather than stop beating
                log.exception("unexpected error in the heartbeat")
                continue
            self.heartbeat_interval = response.heartbeat_interval
            held = set(response.held)
            for execution_id in sent_with - held:
                if execution_id in self.executions:
                    self.executions.abandon(execution_id, "no longer held by this worker")
            for execution_id in response.cancelling:
                self.executions.cancel(execution_id)
