"""The asyncio client: :class:`AsyncFluxClient` (a worker's channel is in ``_async_worker``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

import httpx
from httpx_sse import aconnect_sse

from flux.client import _calls as calls
from flux.client._async_worker import AsyncWorkerChannel
from flux.client._calls import Call, StreamCall
from flux.client._http import (
    RequestTemplates,
    base_headers,
    check_response,
    request_headers,
    unreachable,
)
from flux.client._lean import LeanClient, transport_for
from flux.client._servers import (
    FAILOVER_STATUSES,
    Servers,
    new_request_id,
    not_sent,
    server_urls,
)
from flux.protocol import (
    ApiKeyInfo,
    ApiKeyRevoked,
    CancelBatchResponse,
    CatchUpPolicy,
    CreatedApiKey,
    EventPage,
    ExecutionFrame,
    ExecutionList,
    ExecutionStatus,
    ExecutionStreamFrame,
    HealthResponse,
    PruneResponse,
    RegisterWorkerRequest,
    RegisterWorkerResponse,
    ScheduleDeleted,
    ScheduleInfo,
    ScheduleRun,
    SecretDeleted,
    SecretInfo,
    TaskProgressFrame,
    WhoAmI,
    WorkerInfo,
    WorkflowDetail,
    WorkflowSummary,
    parse_execution_frame,
)
from flux.schedules import Schedule

__all__ = ["AsyncFluxClient"]

T = TypeVar("T")
F = TypeVar("F")


class AsyncFluxClient:
    """Typed asyncio client for a Flux server, or for several replicas of one.

    Every method raises :class:`flux.errors.NotFoundError` (404),
    :class:`flux.errors.ConflictError` (409), :class:`flux.errors.ProtocolError` (the server
    speaks another major protocol version) or :class:`flux.errors.ApiError` (any other error;
    ``status_code`` 0 when the server cannot be reached), each carrying the server's message.

    Args:
        base_url: the server, e.g. ``"http://localhost:8000"``; or several servers of one
            database (a list, or URLs separated by commas): a call goes to the one that
            answered last and, when it cannot be reached or is going away, to the next, when
            that cannot do its work twice (see :mod:`flux.client._servers`). With several,
            runs, streams and resumes get an id chosen here before their first attempt.
        timeout: seconds for connecting and for each answer (sync-mode calls and streams wait
            without a read timeout: the server bounds them).
        headers: extra headers for every request.
        api_key: sent as ``Authorization: Bearer <api_key>`` with every request (a server
            with authentication on needs one; see :func:`flux.client.default_api_key`).
        transport: an httpx transport (tests pass an in-process ASGI transport). By default
            a plain-HTTP server is reached through :class:`flux.client._lean.LeanTransport`,
            any other (TLS, behind a proxy from the environment) through httpx's own.
        max_connections: concurrent connections to each server, all kept alive.

    Requests go through an :class:`httpx.AsyncClient` per server (a
    :class:`flux.client._lean.LeanClient`), which keeps no cookies.

    Raises:
        UsageError: no URL, or one that is not ``http://`` or ``https://``.
    """

    def __init__(
        self,
        base_url: str | Sequence[str] = "http://localhost:8000",
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self._timeout = timeout
        self._headers = base_headers(headers, api_key)
        self._transport = transport
        # Keep every connection alive: a worker checkpointing many executions at once would
        # otherwise open and close connections (httpx keeps only 20 by default).
        self._limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        )
        self._servers = Servers(server_urls(base_url))
        self._endpoints: dict[int, tuple[LeanClient, RequestTemplates]] = {}
        self._http, self._requests = self._endpoint(0)

    def _endpoint(self, index: int) -> tuple[LeanClient, RequestTemplates]:
        """The httpx client of server ``index`` and its request templates (made once)."""
        found = self._endpoints.get(index)
        if found is None:
            url = self._servers.urls[index]
            http = LeanClient(
                base_url=url,
                timeout=self._timeout,
                headers=self._headers,
                transport=self._transport or transport_for(url, self._limits),
                limits=self._limits,
            )
            found = self._endpoints[index] = (
                http,
                RequestTemplates(http, httpx.Timeout(self._timeout, read=None)),
            )
        return found

    @property
    def base_url(self) -> str:
        """The server calls go to first now."""
        return str(self._endpoint(self._servers.current)[0].base_url)

    @property
    def server_urls(self) -> list[str]:
        """Every server of this client, in the order given."""
        return list(self._servers.urls)

    async def aclose(self) -> None:
        for http, _ in self._endpoints.values():
            await http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _chosen(self, request_id: str | None) -> str | None:
        """The id of a run or resume: the caller's, else one chosen now when the call may go to
        another server (repeating it there then finds this attempt's work)."""
        if request_id is None and len(self._servers) > 1:
            return new_request_id()
        return request_id

    # -- sending -------------------------------------------------------------------------------

    async def send(self, call: Call[T]) -> T:
        """Send any :class:`Call` (the extension point for endpoints added later)."""
        if len(self._servers) == 1:
            try:
                response = await self._http.send(self._requests.build(call))
            except httpx.TransportError as exc:
                raise unreachable(exc, self._http.base_url) from exc
            check_response(response)
            return call.parse(response.content)
        return await self._send_failover(call)

    async def _send_failover(self, call: Call[T]) -> T:
        servers = self._servers
        order = servers.order()
        for attempt, index in enumerate(order):
            http, requests = self._endpoint(index)
            last = attempt == len(order) - 1
            try:
                response = await http.send(requests.build(call))
            except httpx.TransportError as exc:
                if last or not (not_sent(exc) or call.repeatable):
                    raise servers.unreachable(exc, order[: attempt + 1]) from exc
                servers.moving_on(index, f"failed: {exc or type(exc).__name__}")
                continue
            if not last and response.status_code in FAILOVER_STATUSES and call.repeatable:
                servers.moving_on(index, f"answered {response.status_code}")
                continue
            servers.answered(index)
            check_response(response)
            return call.parse(response.content)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def events(
        self, call: StreamCall, parse: Callable[[str, str], F | None]
    ) -> AsyncIterator[F]:
        """Send a streaming call and yield each Server-Sent Event ``parse`` recognises.

        With several servers, opening the stream goes to the next one as :meth:`send` does;
        once it is open, a broken stream raises."""
        servers = self._servers
        order = servers.order()
        for attempt, index in enumerate(order):
            http, _ = self._endpoint(index)
            last = attempt == len(order) - 1
            opened = False
            try:
                async with aconnect_sse(
                    http,
                    call.method,
                    call.path,
                    params=call.params,
                    content=call.content,
                    headers=request_headers(call.token, call.content_type),
                    timeout=httpx.Timeout(self._timeout, read=None),
                ) as source:
                    response = source.response
                    if not last and response.status_code in FAILOVER_STATUSES and call.repeatable:
                        servers.moving_on(index, f"answered {response.status_code}")
                        continue
                    if response.status_code >= 400:
                        await response.aread()
                    check_response(response)
                    opened = True
                    servers.answered(index)
                    async for sse in source.aiter_sse():
                        frame = parse(sse.event, sse.data)
                        if frame is not None:
                            yield frame
                    return
            except httpx.TransportError as exc:
                if opened or last or not (not_sent(exc) or call.repeatable):
                    if len(servers) == 1:
                        raise unreachable(exc, http.base_url) from exc
                    raise servers.unreachable(exc, order[: attempt + 1]) from exc
                servers.moving_on(index, f"failed: {exc or type(exc).__name__}")

    # -- health --------------------------------------------------------------------------------

    async def health(self) -> HealthResponse:
        return await self.send(calls.health())

    # -- workflows -----------------------------------------------------------------------------

    async def list_workflows(self) -> list[WorkflowSummary]:
        """The latest version of every registered workflow."""
        return await self.send(calls.list_workflows())

    async def get_workflow(self, name: str) -> WorkflowDetail:
        """The latest version of ``name`` with its source and all its versions."""
        return await self.send(calls.get_workflow(name))

    async def register_workflows(
        self, source: str | PathLike[str] | bytes, *, filename: str | None = None
    ) -> list[WorkflowSummary]:
        """Upload a Python file; every workflow in it is registered (a new version when its
        source changed). ``source`` is a path, or the file's content as bytes.

        Raises:
            ApiError: 400 when the file has a syntax error or defines no workflow.
        """
        if isinstance(source, bytes):
            content, name = source, filename or "workflows.py"
        else:
            path = Path(source)
            content, name = await asyncio.to_thread(path.read_bytes), filename or path.name
        return await self.send(calls.register_workflows(content, name))

    async def run(
        self,
        name: str,
        input: Any = None,
        *,
        mode: str = "async",
        execution_id: str | None = None,
    ) -> ExecutionStatus:
        """Start the latest version of ``name`` with JSON ``input``.

        ``mode="async"`` answers at once; ``"sync"`` waits until it finishes or pauses (or the
        server's sync timeout passes: check ``state``). For ``"stream"`` use :meth:`stream`.
        ``execution_id`` chooses the new execution's id; when an execution of ``name`` with
        that id exists, it is that one that is answered for (and waited for), not a new one:
        a retried request starts its workflow at most once. A client of several servers
        chooses one when none is given.
        """
        return await self.send(calls.run(name, input, mode, self._chosen(execution_id)))

    @overload
    def stream(
        self,
        name: str,
        input: Any = None,
        *,
        execution_id: str | None = None,
        progress: Literal[False] = False,
    ) -> AsyncIterator[ExecutionFrame]: ...

    @overload
    def stream(
        self, name: str, input: Any = None, *, execution_id: str | None = None, progress: bool
    ) -> AsyncIterator[ExecutionFrame | TaskProgressFrame]: ...

    def stream(
        self,
        name: str,
        input: Any = None,
        *,
        execution_id: str | None = None,
        progress: bool = False,
    ) -> AsyncIterator[Any]:
        """Start ``name`` and yield a frame per state change until it finishes or pauses;
        with ``progress=True`` also each :class:`TaskProgressFrame` (protocol 1.10)."""
        call = calls.run_stream(name, input, self._chosen(execution_id))
        return self.events(call, _parser(parse_execution_frame, progress))

    async def resume(
        self,
        name: str,
        execution_id: str,
        input: Any = None,
        *,
        mode: str = "async",
        pause: str | None = None,
        resume_id: str | None = None,
    ) -> ExecutionStatus:
        """Resume a PAUSED execution: its waiting ``await pause(...)`` returns ``input``.
        ``pause`` names the pause this answers, needed only when several wait (the status
        lists them in ``pauses``). ``resume_id`` names this resume: repeating it with the
        same id changes nothing, whatever the execution did since, and answers its status
        now (a client of several servers chooses one when none is given).

        Raises:
            ExecutionStateError: it is not paused; several pauses wait and ``pause`` is
                missing, or no waiting pause has that name.
        """
        call = calls.resume(name, execution_id, input, mode, pause, self._chosen(resume_id))
        return await self.send(call)

    @overload
    def stream_resume(
        self,
        name: str,
        execution_id: str,
        input: Any = None,
        *,
        pause: str | None = None,
        resume_id: str | None = None,
        progress: Literal[False] = False,
    ) -> AsyncIterator[ExecutionFrame]: ...

    @overload
    def stream_resume(
        self,
        name: str,
        execution_id: str,
        input: Any = None,
        *,
        pause: str | None = None,
        resume_id: str | None = None,
        progress: bool,
    ) -> AsyncIterator[ExecutionFrame | TaskProgressFrame]: ...

    def stream_resume(
        self,
        name: str,
        execution_id: str,
        input: Any = None,
        *,
        pause: str | None = None,
        resume_id: str | None = None,
        progress: bool = False,
    ) -> AsyncIterator[Any]:
        """Resume and yield a frame per state change until it finishes or pauses again;
        ``progress=True`` as in :meth:`stream`."""
        call = calls.resume_stream(name, execution_id, input, pause, self._chosen(resume_id))
        return self.events(call, _parser(parse_execution_frame, progress))

    async def status(
        self, name: str, execution_id: str, *, detailed: bool = False
    ) -> ExecutionStatus:
        """The execution's state; ``detailed`` adds its events."""
        return await self.send(calls.status(name, execution_id, detailed))

    async def cancel(self, name: str, execution_id: str, *, mode: str = "async") -> ExecutionStatus:
        """Request cancellation; ``mode="sync"`` waits until it has finished.

        Raises:
            ConflictError: the execution has already finished.
        """
        return await self.send(calls.cancel(name, execution_id, mode))

    # -- executions by id (protocol 1.5) -------------------------------------------------------

    async def list_executions(
        self,
        *,
        workflow: str | None = None,
        state: str | Sequence[str] | None = None,
        created_after: datetime | str | None = None,
        created_before: datetime | str | None = None,
        updated_after: datetime | str | None = None,
        updated_before: datetime | str | None = None,
        worker: str | None = None,
        schedule: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionList:
        """A page of executions, newest first, with ``counts`` per state of all that match.

        Every filter given must match: ``workflow`` (a name), ``state`` (one or several),
        creation and update times (exclusive bounds; a naive datetime is UTC), ``worker``
        (that holds or ran it), ``schedule`` (id or name of the schedule that started it).
        For the next page pass the answer's ``next_cursor`` as ``cursor`` with the same
        filters.

        Raises:
            UsageError: an unknown state, a bad time, ``limit`` out of 1..500, or a cursor
                that is not the server's or belongs to other filters.
        """
        call = calls.list_executions(
            workflow=workflow,
            state=state,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
            worker=worker,
            schedule=schedule,
            limit=limit,
            cursor=cursor,
        )
        return await self.send(call)

    async def get_execution(self, execution_id: str, *, detailed: bool = False) -> ExecutionStatus:
        """An execution by id alone; ``detailed`` adds its events.

        Raises:
            ExecutionNotFoundError: no execution has that id.
        """
        return await self.send(calls.get_execution(execution_id, detailed))

    async def execution_events(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int = 100,
        types: str | Sequence[str] | None = None,
        payloads: bool = False,
    ) -> EventPage:
        """A page of the execution's events, oldest first, after position ``after`` (each
        event has its ``position``; the page's ``next_after`` is set when more follow).
        ``types`` keeps those event types only; ``payloads`` adds values and views.

        Raises:
            ExecutionNotFoundError: no execution has that id.
            UsageError: an unknown event type, or ``limit`` out of 1..1000.
        """
        call = calls.execution_events(execution_id, after, limit, types, payloads)
        return await self.send(call)

    @overload
    def stream_execution(
        self, execution_id: str, *, after: int | None = None, progress: Literal[False] = False
    ) -> AsyncIterator[ExecutionStreamFrame]: ...

    @overload
    def stream_execution(
        self, execution_id: str, *, after: int | None = None, progress: bool
    ) -> AsyncIterator[ExecutionStreamFrame | TaskProgressFrame]: ...

    def stream_execution(
        self, execution_id: str, *, after: int | None = None, progress: bool = False
    ) -> AsyncIterator[Any]:
        """Yield a frame per workflow-level event of the execution (its state changes) until
        it finishes; a pause does not end it. ``after``: a frame's ``position``, to resume
        after it (a dropped stream loses nothing). ``progress=True`` as in :meth:`stream`."""
        call = calls.execution_stream(execution_id, after)
        return self.events(call, _parser(calls.parse_stream_frame, progress))

    async def rerun(self, execution_id: str, *, new_id: str | None = None) -> ExecutionStatus:
        """Start the latest version of the execution's workflow again with the same input;
        the new execution's status. ``new_id`` chooses its id (as ``execution_id`` of
        :meth:`run` does: a retried rerun starts at most one; a client of several servers
        chooses one when none is given).

        Raises:
            ExecutionNotFoundError: no execution has that id.
        """
        return await self.send(calls.rerun(execution_id, self._chosen(new_id)))

    async def cancel_executions(self, execution_ids: Sequence[str]) -> CancelBatchResponse:
        """Cancel several executions by id (up to 1000); each result says what its id did:
        its ``state`` now (CANCELLED, or CANCELLING while its worker unwinds it) or the
        ``error`` that left it as it was (unknown, already finished)."""
        return await self.send(calls.cancel_executions(execution_ids))

    async def prune_executions(
        self, older_than: float | timedelta, *, workflow: str | None = None
    ) -> PruneResponse:
        """Delete finished executions last updated longer ago than ``older_than`` (seconds or
        a timedelta), of ``workflow`` or of all, with their events and schedule history;
        running, paused and queued ones are never touched."""
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        return await self.send(calls.prune_executions(seconds, workflow))

    # -- workers -------------------------------------------------------------------------------

    async def list_workers(self) -> list[WorkerInfo]:
        return await self.send(calls.list_workers())

    async def register_worker(
        self, request: RegisterWorkerRequest, *, bootstrap_token: str
    ) -> RegisterWorkerResponse:
        """Register a worker; use the answer's ``session_token`` with :meth:`worker`.

        Raises:
            ApiError: 401 for a wrong bootstrap token.
        """
        return await self.send(calls.register_worker(request, bootstrap_token))

    def worker(self, name: str, session_token: str) -> AsyncWorkerChannel:
        """The calls of a registered worker, authenticated with its session token."""
        return AsyncWorkerChannel(self, name, session_token)

    # -- identity and API keys ------------------------------------------------------------------

    async def whoami(self) -> WhoAmI:
        """Who the server takes this client for (its API key's name and role, or anonymous when
        the server's authentication is off)."""
        return await self.send(calls.whoami())

    async def list_keys(self) -> list[ApiKeyInfo]:
        """Every API key (never the keys themselves); needs the admin role."""
        return await self.send(calls.list_keys())

    async def create_key(
        self, name: str, role: str, *, expires_at: datetime | None = None
    ) -> CreatedApiKey:
        """Create an API key with ``role`` (admin, operator or viewer); the answer's ``key`` is
        shown this once. Needs the admin role.

        Raises:
            UsageError: an invalid name or role, or an expiry in the past (400).
        """
        return await self.send(calls.create_key(name, role, expires_at))

    async def revoke_key(self, key_id: str) -> ApiKeyRevoked:
        """Revoke an API key at once. Needs the admin role.

        Raises:
            NotFoundError: no key has that id.
        """
        return await self.send(calls.revoke_key(key_id))

    # -- schedules -----------------------------------------------------------------------------

    async def list_schedules(
        self, workflow_id: str | None = None, *, active_only: bool = False
    ) -> list[ScheduleInfo]:
        """Every schedule, by name; ``workflow_id`` (a workflow's name or a version id) keeps
        that workflow's, ``active_only`` drops paused and completed ones."""
        return await self.send(calls.list_schedules(workflow_id, active_only))

    async def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        """A schedule by id or name.

        Raises:
            NotFoundError: no such schedule.
        """
        return await self.send(calls.get_schedule(schedule_id))

    async def create_schedule(
        self,
        workflow_name: str,
        name: str,
        schedule_config: Mapping[str, Any] | Schedule,
        *,
        description: str | None = None,
        input: Any = None,
    ) -> ScheduleInfo:
        """Run ``workflow_name`` on a schedule: ``cron(...)``, ``interval(...)``, ``once(...)``
        or their ``schedule_config`` mapping; every execution gets ``input``.

        Raises:
            ApiError: 400 for an invalid schedule (the message says why).
            NotFoundError: the workflow is not registered.
            ConflictError: a schedule of that name exists.
        """
        call = calls.create_schedule(workflow_name, name, schedule_config, description, input)
        return await self.send(call)

    async def update_schedule(
        self,
        schedule_id: str,
        schedule_config: Mapping[str, Any] | Schedule | calls.Keep = calls.KEEP,
        *,
        timezone: str | calls.Keep = calls.KEEP,
        input: Any = calls.KEEP,
        description: str | calls.Keep | None = calls.KEEP,
        catch_up: CatchUpPolicy | calls.Keep | None = calls.KEEP,
    ) -> ScheduleInfo:
        """Change a schedule in place (by id or name); the arguments left out stay as they are,
        and so do its counters and history.

        ``schedule_config`` replaces the schedule (a mapping without ``timezone`` keeps the
        current zone); ``timezone`` alone moves the cron or interval schedule to another
        zone. A changed schedule fires next at its first time after now. ``None`` clears
        ``description`` or ``input``, and sets ``catch_up`` back to the server's default.

        Raises:
            UsageError: nothing to change.
            ApiError: 400 for an invalid change (the message says why).
            NotFoundError: no such schedule.
        """
        changes = {
            "schedule_config": schedule_config,
            "timezone": timezone,
            "input": input,
            "description": description,
            "catch_up": catch_up,
        }
        return await self.send(calls.update_schedule(schedule_id, changes))

    async def pause_schedule(self, schedule_id: str) -> ScheduleInfo:
        """Stop firing until resumed (idempotent)."""
        return await self.send(calls.pause_schedule(schedule_id))

    async def resume_schedule(self, schedule_id: str) -> ScheduleInfo:
        """Fire again from the next time after now; ticks missed while paused are not run.

        Raises:
            ConflictError: a completed ``once`` schedule, or one whose time passed while paused.
        """
        return await self.send(calls.resume_schedule(schedule_id))

    async def delete_schedule(self, schedule_id: str) -> ScheduleDeleted:
        """Delete a schedule and its history (executions it started are kept)."""
        return await self.send(calls.delete_schedule(schedule_id))

    async def schedule_history(self, schedule_id: str, *, limit: int = 50) -> list[ScheduleRun]:
        """The latest ``limit`` runs of a schedule, newest first."""
        return await self.send(calls.schedule_history(schedule_id, limit))

    # -- admin: secrets ------------------------------------------------------------------------

    async def list_secrets(self) -> list[SecretInfo]:
        """Secret names (never values), sorted."""
        return await self.send(calls.list_secrets())

    async def get_secret(self, name: str) -> Any:
        """The value of a secret.

        Raises:
            NotFoundError: no such secret.
            ApiError: 400 for an invalid name; 500 when the server's encryption key differs
                from the one the secret was stored with.
        """
        return (await self.send(calls.get_secret(name))).value

    async def set_secret(self, name: str, value: Any) -> SecretInfo:
        """Create or replace a secret; ``value`` is any JSON value.

        Raises:
            ApiError: 400 for an invalid name.
        """
        return await self.send(calls.set_secret(name, value))

    async def delete_secret(self, name: str) -> SecretDeleted:
        """Delete a secret.

        Raises:
            NotFoundError: no such secret.
        """
        return await self.send(calls.delete_secret(name))


def _parser(parse: Callable[[str, str], Any], progress: bool) -> Callable[[str, str], Any]:
    return calls.with_progress(parse) if progress else parse
