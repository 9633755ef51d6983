"""Everything one server process runs: database, stores, dispatcher, liveness, listener,
scheduler, retention."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from flux.config import ADMIN_KEY_FILE
from flux.errors import ApiError, UsageError

from flux_server import notes
from flux_server.auth import Authenticator, bootstrap_digest
from flux_server.db import Database, upgrade
from flux_server.db.migrate import applied, heads
from flux_server.dispatch import Dispatcher
from flux_server.exposure import auth_required, warn_if_insecure
from flux_server.hub import WorkerHub
from flux_server.keys import write_private
from flux_server.liveness import Liveness
from flux_server.metrics import ServerMetrics
from flux_server.options import ServerOptions
from flux_server.principals import PrincipalResolver
from flux_server.progress import ProgressHub
from flux_server.retention import Retention
from flux_server.scheduler import Scheduler
from flux_server.store import ExecutionStore, SecretStore, WorkerStore, WorkflowStore
from flux_server.store.gauges import read_gauges
from flux_server.store.keys import KeyStore
from flux_server.store.memory import MemoryStore
from flux_server.store.schedules import ScheduleStore
from flux_server.store.server_state import check_secrets_key, recorded_key_fingerprint
from flux_server.tracing import execution_tracer
from flux_server.watchers import Watchers

__all__ = ["Runtime", "draining", "preflight", "previous_keys", "secrets_key"]

log = logging.getLogger(__name__)


class Runtime:
    """Created by the app's lifespan; reachable from routes as ``request.app.state.runtime``."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.auth_required = auth_required(options)
        """Whether callers need API keys (:mod:`flux_server.exposure`)."""
        self.db = Database(options.database_url)
        self.db.sink = self.deliver
        self.metrics: ServerMetrics | None = None
        """What ``GET /metrics`` shows; ``None`` when ``server.metrics`` is off."""
        if options.metrics:
            self.metrics = ServerMetrics(lambda: read_gauges(self.db))
            self.db.counter = self.metrics.count
        self.workflows = WorkflowStore(self.db)
        self.executions = ExecutionStore(self.db)
        self.workers = WorkerStore(self.db)
        self.secrets = SecretStore(self.db, self._secrets_key, previous_keys(options))
        self.memory = MemoryStore(self.db)
        self.hub = WorkerHub()
        self.progress = ProgressHub(self.db.hint_replicas)
        self.watchers = Watchers()
        self.executions.wanted = self.watchers.watching
        self.executions.on_settled = self.watchers.settled
        self.executions.tracer = execution_tracer(options.tracer_provider)
        self.dispatcher = Dispatcher(
            self.executions,
            self.hub,
            options.claim_timeout,
            options.sweep_interval,
            chore=self.chore,
        )
        self.liveness = Liveness(
            self.workers, self.executions, options.heartbeat_timeout, options.liveness_interval
        )
        self.schedules = ScheduleStore(self.db, self.workflows, options.scheduling)
        self.scheduler = Scheduler(self.db, self.executions, self.workflows, options.scheduling)
        self.retention = Retention(self.db, options.retention)
        self.keys = KeyStore(self.db)
        self.auth: Authenticator | None = None
        self._principals: PrincipalResolver | None = None
        self.stopping = False
        """Set when the server starts draining or shutting down: ``/ready`` answers 503, and
        workers get no more work, from then on."""
        self._tasks: list[asyncio.Task[Any]] = []
        self._work: list[asyncio.Task[Any]] = []
        """What hands out or takes back work: stopped first when the server drains."""
        self._chores: set[asyncio.Task[Any]] = set()

    def _secrets_key(self) -> bytes:
        return secrets_key(self.options)

    @property
    def authenticator(self) -> Authenticator:
        assert self.auth is not None, "the runtime has not started"
        return self.auth

    @property
    def principals(self) -> PrincipalResolver:
        assert self._principals is not None, "the runtime has not started"
        return self._principals

    async def start(self) -> None:
        try:
            await upgrade(self.db)
            await _check_key(self.db, self.options)
            digest = await bootstrap_digest(
                self.db, self.options.bootstrap_token, self.options.home
            )
        except BaseException:  # refused to start: nothing is left open
            await self.db.dispose()
            raise
        self.auth = Authenticator(digest, self.workers)
        self._principals = PrincipalResolver(self.keys, self.auth)
        warn_if_insecure(self.options)
        if self.auth_required:
            await self._provision_admin_key()
        self._work = [
            self._spawn(self.dispatcher.run(), "dispatcher"),
            self._spawn(self.liveness.run(), "liveness"),
            self._spawn(self.scheduler.run(), "scheduler"),
        ]
        if self.retention.enabled:
            self._work.append(self._spawn(self.retention.run(), "retention"))
        if not self.db.is_sqlite:
            from flux_server.db.statistics import StatisticsKeeper
            from flux_server.listener import listen

            self._work.append(self._spawn(StatisticsKeeper(self.db).run(), "statistics"))

            ready = asyncio.Event()
            self._spawn(listen(self.db, self.deliver, ready), "listener")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await ready.wait()
        self.dispatcher.wake()

    async def _provision_admin_key(self) -> None:
        """With authentication on and no usable admin key in the database, create one and
        write it to ``{home}/admin-key`` (0600) for the operator; log where, never the key."""
        created = await self.keys.create_first_admin("admin")
        path = Path(self.options.home) / ADMIN_KEY_FILE
        if created is None:
            log.info("authentication is on; API keys are required (see `flux auth key list`)")
            return
        await asyncio.to_thread(write_private, path, created.key + "\n")
        log.warning(
            "authentication is on and the database had no admin key: generated one (id %s) "
            "into %s, readable by this user only; use it to create the keys others need "
            "(`flux auth key create`)",
            created.id,
            path.resolve(),
        )

    async def readiness(self) -> dict[str, str]:
        """What ``GET /ready`` reports: each check ``ok``, or why not."""
        checks = {"server": "stopping" if self.stopping else "ok"}
        try:
            await self.db.ping()
        except Exception as exc:  # any failure to answer is the answer
            checks["database"] = f"unreachable: {type(exc).__name__}"
            checks["migrations"] = "unknown"
            return checks
        checks["database"] = "ok"
        at, head = await applied(self.db), sorted(heads())
        checks["migrations"] = "ok" if at == head else f"at {at or 'none'}, head {head}"
        return checks

    async def drain(self) -> None:
        """Stop taking work, and let the requests in flight finish (the server drains on
        SIGTERM before it stops serving).

        From now on ``/ready`` answers 503; worker registrations, streams and claims are
        refused with 503 (a worker moves to another server); the scheduler, the dispatcher,
        heartbeat expiry and retention stop here (the other replicas go on with them);
        worker streams close; sync-mode waits answer 503 (a client retries elsewhere: the
        execution goes on) and execution streams end. Checkpoints, heartbeats, releases and
        reads are still served.
        """
        if self.stopping:
            return
        self.stopping = True
        log.info("draining: no more work is handed out here; finishing the requests in flight")
        await self.scheduler.stop()
        await self.dispatcher.stop()  # its round's claims reach their workers before the close
        for task in self._work:
            task.cancel()
        if self._work:
            await asyncio.wait(self._work, timeout=10)
        self.hub.close_all()
        self.watchers.wake_all()

    async def stop(self) -> None:
        self.stopping = True
        self.hub.close_all()
        await self.scheduler.stop()
        tasks = [*self._tasks, *self._chores]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        self._tasks.clear()
        await self.db.dispose()
        if self.executions.tracer is not None:  # the create spans it holds, to the exporters
            self.executions.tracer.spans.hand_over()

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"flux-{name}")
        self._tasks.append(task)
        return task

    def chore(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` in the background (kept referenced until done; errors are logged)."""
        task = asyncio.create_task(coro)
        self._chores.add(task)
        task.add_done_callback(self._chore_done)

    def _chore_done(self, task: asyncio.Task[Any]) -> None:
        self._chores.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    def deliver(self, note: str) -> None:
        """Act on a committed note (:mod:`flux_server.notes`) from this process or another
        replica."""
        kind, subject, detail = notes.parse(note)
        if kind == notes.DISPATCH:
            self.dispatcher.wake()
        elif kind == notes.EXEC:
            self.watchers.changed(subject, detail or None)
            self.scheduler.execution_changed(subject)
        elif kind == notes.CANCEL:
            self.hub.cancel(subject, detail)
        elif kind == notes.TOKEN:
            if self.auth is not None:
                self.auth.forget(subject)
        elif kind == notes.KEY:
            self.keys.forget(subject)
        elif kind == notes.DROP:
            self.hub.close(subject)
        elif kind == notes.WORKFLOWS:
            self.workflows.invalidate()
        elif kind == notes.SCHEDULES:
            self.scheduler.wake()
        elif kind == notes.PROGRESS:
            self.progress.receive(subject)
        elif kind == notes.MISSED:
            # A revoked key or session token, a new workflow version, a changed schedule may
            # have gone unheard: what the notes would have cleared is read again.
            self.keys.forget_all()
            if self.auth is not None:
                self.auth.forget_all()
            self.workflows.invalidate()
            self.scheduler.wake()
            self.dispatcher.wake()
        else:
            log.debug("ignoring unknown note %r", note)


def draining(what: str, **details: Any) -> ApiError:
    """The 503 a draining server answers instead of ``what`` (a client or worker of several
    servers goes to another; nothing was lost)."""
    return ApiError(
        f"this server is shutting down and {what}: ask another server of this database",
        503,
        draining=True,
        **details,
    )


def previous_keys(options: ServerOptions) -> list[bytes]:
    """The keys being rotated away from (``security.previous_encryption_keys``)."""
    from flux.secrets import derive_key

    return [derive_key(material) for material in options.previous_encryption_keys]


def secrets_key(options: ServerOptions) -> bytes:
    """The key the server's secrets are encrypted with (:func:`flux.secrets.load_or_create_key`)."""
    from flux.secrets import load_or_create_key

    return load_or_create_key(options.home, options.encryption_key)


async def preflight(options: ServerOptions) -> None:
    """What starting would refuse, checked before serving so that ``flux-server`` can say it in
    one line: migrate the database, then check this server's secrets key against it.

    Raises:
        UsageError: the key is not the database's (see :func:`check_secrets_key`), or the
            server has none and the database's secrets were written with one.
    """
    db = Database(options.database_url)
    try:
        await upgrade(db)
        await _check_key(db, options)
    finally:
        await db.dispose()


async def _check_key(db: Database, options: ServerOptions) -> None:
    """Check this server's secrets key against the database's, without generating a key file
    of its own when the database's secrets were already written with another server's key.

    Raises:
        UsageError: the key is not the database's, or this server has none and the database's
            secrets were written with a key.
    """
    from flux.secrets import KEY_FILE_NAME

    path = Path(options.home) / KEY_FILE_NAME
    if options.encryption_key is None and not await asyncio.to_thread(path.exists):
        recorded = await recorded_key_fingerprint(db)
        if recorded is not None:
            raise UsageError(
                f"this server has no secrets key (no security.encryption_key, no {path}) and "
                f"this database's secrets were written with one (fingerprint {recorded}): "
                "give it the key the other servers of this database have, in "
                "security.encryption_key (FLUX_SECURITY__ENCRYPTION_KEY) or that file",
                expected=recorded,
            )
    await check_secrets_key(
        db, await asyncio.to_thread(secrets_key, options), previous_keys(options)
    )
