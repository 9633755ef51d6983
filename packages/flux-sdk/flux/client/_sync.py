"""The blocking client: :class:`FluxClient` (a worker's channel is in ``_sync_worker``).

Same methods, arguments and errors as :mod:`flux.client._async`; see there for the details.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, overload

import httpx
from httpx_sse import connect_sse

from flux.client import _calls as calls
from flux.client._calls import Call, StreamCall
from flux.client._http import (
    base_headers,
    check_response,
    keepalive_limits,
    request_headers,
    unreachable,
)
from flux.client._servers import (
    FAILOVER_STATUSES,
    Servers,
    new_request_id,
    not_sent,
    server_urls,
)
from flux.client._sync_worker import WorkerChannel
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

__all__ = ["FluxClient"]

T = TypeVar("T")
F = TypeVar("F")


class FluxClient:
    """Typed blocking client for a Flux server, or for several replicas of one (the CLI's).
    See :class:`AsyncFluxClient`."""

    def __init__(
        self,
        base_url: str | Sequence[str] = "http://localhost:8000",
        *,
        timeout: float = 30.0,
        headers: dict[str, str] | None = None,
        api_key: str | None = None,
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 100,
    ) -> None:
        self._timeout = timeout
        self._headers = base_headers(headers, api_key)
        self._transport = transport
        self._limits = keepalive_limits(max_connections)
        self._servers = Servers(server_urls(base_url))
        self._endpoints: dict[int, httpx.Client] = {}
        self._http = self._endpoint(0)

    def _endpoint(self, index: int) -> httpx.Client:
        """The httpx client of server ``index`` (made once)."""
        found = self._endpoints.get(index)
        if found is None:
            found = self._endpoints[index] = httpx.Client(
                base_url=self._servers.urls[index],
                timeout=self._timeout,
                headers=self._headers,
                transport=self._transport,
                limits=self._limits,
            )
        return found

    @property
    def base_url(self) -> str:
        """The server calls go to first now."""
        return str(self._endpoint(self._servers.current).base_url)

    @property
    def server_urls(self) -> list[str]:
        """Every server of this client, in the order given."""
        return list(self._servers.urls)

    def close(self) -> None:
        for http in self._endpoints.values():
            http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _chosen(self, request_id: str | None) -> str | None:
        """As :meth:`AsyncFluxClient._chosen`."""
        if request_id is None and len(self._servers) > 1:
            return new_request_id()
        return request_id

    # -- sending -------------------------------------------------------------------------------

    def send(self, call: Call[T]) -> T:
        """Send any :class:`Call` (the extension point for endpoints added later); with several
        servers, to the next when one fails as :meth:`AsyncFluxClient.send` says."""
        timeout = httpx.Timeout(self._timeout, read=None) if call.wait else httpx.USE_CLIENT_DEFAULT
        servers = self._servers
        order = servers.order()
        for attempt, index in enumerate(order):
            http = self._endpoint(index)
            last = attempt == len(order) - 1
            try:
                response = http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    content=call.content,
                    files=call.files,
                    headers=request_headers(call.token, call.content_type),
                    timeout=timeout,
                )
            except httpx.TransportError as exc:
                if len(order) == 1:
                    raise unreachable(exc, http.base_url) from exc
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

    def events(self, call: StreamCall, parse: Callable[[str, str], F | None]) -> Iterator[F]:
        """Send a streaming call and yield each Server-Sent Event ``parse`` recognises (see
        :meth:`AsyncFluxClient.events`)."""
        servers = self._servers
        order = servers.order()
        for attempt, index in enumerate(order):
            http = self._endpoint(index)
            last = attempt == len(order) - 1
            opened = False
            try:
                with connect_sse(
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
                        response.read()
                    check_response(response)
                    opened = True
                    servers.answered(index)
                    for sse in source.iter_sse():
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

    def health(self) -> HealthResponse:
        return self.send(calls.health())

    # -- workflows -----------------------------------------------------------------------------

    def list_workflows(self) -> list[WorkflowSummary]:
        return self.send(calls.list_workflows())

    def get_workflow(self, name: str) -> WorkflowDetail:
        return self.send(calls.get_workflow(name))

    def register_workflows(
        self, source: str | PathLike[str] | bytes, *, filename: str | None = None
    ) -> list[WorkflowSummary]:
        if isinstance(source, bytes):
            content, name = source, filename or "workflows.py"
        else:
            path = Path(source)
            content, name = path.read_bytes(), filename or path.name
        return self.send(calls.register_workflows(content, name))

    def run(
        self,
        name: str,
        input: Any = None,
        *,
        mode: str = "async",
        execution_id: str | None = None,
    ) -> ExecutionStatus:
        return self.send(calls.run(name, input, mode, self._chosen(execution_id)))

    @overload
    def stream(
        self,
        name: str,
        input: Any = None,
        *,
        execution_id: str | None = None,
        progress: Literal[False] = False,
    ) -> Iterator[ExecutionFrame]: ...

    @overload
    def stream(
        self, name: str, input: Any = None, *, execution_id: str | None = None, progress: bool
    ) -> Iterator[ExecutionFrame | TaskProgressFrame]: ...

    def stream(
        self,
        name: str,
        input: Any = None,
        *,
        execution_id: str | None = None,
        progress: bool = False,
    ) -> Iterator[Any]:
        call = calls.run_stream(name, input, self._chosen(execution_id))
        return self.events(call, _parser(parse_execution_frame, progress))

    def resume(
        self,
        name: str,
        execution_id: str,
        input: Any = None,
        *,
        mode: str = "async",
        pause: str | None = None,
        resume_id: str | None = None,
    ) -> ExecutionStatus:
        call = calls.resume(name, execution_id, input, mode, pause, self._chosen(resume_id))
        return self.send(call)

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
    ) -> Iterator[ExecutionFrame]: ...

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
    ) -> Iterator[ExecutionFrame | TaskProgressFrame]: ...

    def stream_resume(
        self,
        name: str,
        execution_id: str,
        input: Any = None,
        *,
        pause: str | None = None,
        resume_id: str | None = None,
        progress: bool = False,
    ) -> Iterator[Any]:
        call = calls.resume_stream(name, execution_id, input, pause, self._chosen(resume_id))
        return self.events(call, _parser(parse_execution_frame, progress))

    def status(self, name: str, execution_id: str, *, detailed: bool = False) -> ExecutionStatus:
        return self.send(calls.status(name, execution_id, detailed))

    def cancel(self, name: str, execution_id: str, *, mode: str = "async") -> ExecutionStatus:
        return self.send(calls.cancel(name, execution_id, mode))

    # -- executions by id (protocol 1.5) -------------------------------------------------------

    def list_executions(
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
        """See :meth:`AsyncFluxClient.list_executions`."""
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
        return self.send(call)

    def get_execution(self, execution_id: str, *, detailed: bool = False) -> ExecutionStatus:
        return self.send(calls.get_execution(execution_id, detailed))

    def execution_events(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int = 100,
        types: str | Sequence[str] | None = None,
        payloads: bool = False,
    ) -> EventPage:
        return self.send(calls.execution_events(execution_id, after, limit, types, payloads))

    @overload
    def stream_execution(
        self, execution_id: str, *, after: int | None = None, progress: Literal[False] = False
    ) -> Iterator[ExecutionStreamFrame]: ...

    @overload
    def stream_execution(
        self, execution_id: str, *, after: int | None = None, progress: bool
    ) -> Iterator[ExecutionStreamFrame | TaskProgressFrame]: ...

    def stream_execution(
        self, execution_id: str, *, after: int | None = None, progress: bool = False
    ) -> Iterator[Any]:
        call = calls.execution_stream(execution_id, after)
        return self.events(call, _parser(calls.parse_stream_frame, progress))

    def rerun(self, execution_id: str, *, new_id: str | None = None) -> ExecutionStatus:
        return self.send(calls.rerun(execution_id, self._chosen(new_id)))

    def cancel_executions(self, execution_ids: Sequence[str]) -> CancelBatchResponse:
        return self.send(calls.cancel_executions(execution_ids))

    def prune_executions(
        self, older_than: float | timedelta, *, workflow: str | None = None
    ) -> PruneResponse:
        seconds = older_than.total_seconds() if isinstance(older_than, timedelta) else older_than
        return self.send(calls.prune_executions(seconds, workflow))

    # -- workers -------------------------------------------------------------------------------

    def list_workers(self) -> list[WorkerInfo]:
        return self.send(calls.list_workers())

    def register_worker(
        self, request: RegisterWorkerRequest, *, bootstrap_token: str
    ) -> RegisterWorkerResponse:
        return self.send(calls.register_worker(request, bootstrap_token))

    def worker(self, name: str, session_token: str) -> WorkerChannel:
        return WorkerChannel(self, name, session_token)

    # -- identity and API keys ------------------------------------------------------------------

    def whoami(self) -> WhoAmI:
        """Who the server takes this client for (its API key's name and role, or anonymous when
        the server's authentication is off)."""
        return self.send(calls.whoami())

    def list_keys(self) -> list[ApiKeyInfo]:
        """Every API key (never the keys themselves); needs the admin role."""
        return self.send(calls.list_keys())

    def create_key(
        self, name: str, role: str, *, expires_at: datetime | None = None
    ) -> CreatedApiKey:
        """Create an API key with ``role`` (admin, operator or viewer); the answer's ``key`` is
        shown this once. Needs the admin role.

        Raises:
            UsageError: an invalid name or role, or an expiry in the past (400).
        """
        return self.send(calls.create_key(name, role, expires_at))

    def revoke_key(self, key_id: str) -> ApiKeyRevoked:
        """Revoke an API key at once. Needs the admin role.

        Raises:
            NotFoundError: no key has that id.
        """
        return self.send(calls.revoke_key(key_id))

    # -- schedules -----------------------------------------------------------------------------

    def list_schedules(
        self, workflow_id: str | None = None, *, active_only: bool = False
    ) -> list[ScheduleInfo]:
        return self.send(calls.list_schedules(workflow_id, active_only))

    def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        return self.send(calls.get_schedule(schedule_id))

    def create_schedule(
        self,
        workflow_name: str,
        name: str,
        schedule_config: Mapping[str, Any] | Schedule,
        *,
        description: str | None = None,
        input: Any = None,
    ) -> ScheduleInfo:
        call = calls.create_schedule(workflow_name, name, schedule_config, description, input)
        return self.send(call)

    def update_schedule(
        self,
        schedule_id: str,
        schedule_config: Mapping[str, Any] | Schedule | calls.Keep = calls.KEEP,
        *,
        timezone: str | calls.Keep = calls.KEEP,
        input: Any = calls.KEEP,
        description: str | calls.Keep | None = calls.KEEP,
        catch_up: CatchUpPolicy | calls.Keep | None = calls.KEEP,
    ) -> ScheduleInfo:
        """See :meth:`AsyncFluxClient.update_schedule`."""
        changes = {
            "schedule_config": schedule_config,
            "timezone": timezone,
            "input": input,
            "description": description,
            "catch_up": catch_up,
        }
        return self.send(calls.update_schedule(schedule_id, changes))

    def pause_schedule(self, schedule_id: str) -> ScheduleInfo:
        return self.send(calls.pause_schedule(schedule_id))

    def resume_schedule(self, schedule_id: str) -> ScheduleInfo:
        return self.send(calls.resume_schedule(schedule_id))

    def delete_schedule(self, schedule_id: str) -> ScheduleDeleted:
        return self.send(calls.delete_schedule(schedule_id))

    def schedule_history(self, schedule_id: str, *, limit: int = 50) -> list[ScheduleRun]:
        return self.send(calls.schedule_history(schedule_id, limit))

    # -- admin: secrets ------------------------------------------------------------------------

    def list_secrets(self) -> list[SecretInfo]:
        return self.send(calls.list_secrets())

    def get_secret(self, name: str) -> Any:
        return self.send(calls.get_secret(name)).value

    def set_secret(self, name: str, value: Any) -> SecretInfo:
        return self.send(calls.set_secret(name, value))

    def delete_secret(self, name: str) -> SecretDeleted:
        return self.send(calls.delete_secret(name))


def _parser(parse: Callable[[str, str], Any], progress: bool) -> Callable[[str, str], Any]:
    return calls.with_progress(parse) if progress else parse
