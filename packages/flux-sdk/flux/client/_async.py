"""The asyncio client: :class:`AsyncFluxClient` (its connection is in ``_async_base``, the
administration calls in ``_async_admin``, a worker's channel in ``_async_worker``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Any, Literal, overload

from flux.client import _calls as calls
from flux.client._async_admin import AsyncAdminCalls
from flux.protocol import (
    CancelBatchResponse,
    EventPage,
    ExecutionFrame,
    ExecutionList,
    ExecutionStatus,
    ExecutionStreamFrame,
    PruneResponse,
    TaskProgressFrame,
    WorkflowDetail,
    WorkflowSummary,
    parse_execution_frame,
)

__all__ = ["AsyncFluxClient"]


class AsyncFluxClient(AsyncAdminCalls):
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


def _parser(parse: Callable[[str, str], Any], progress: bool) -> Callable[[str, str], Any]:
    return calls.with_progress(parse) if progress else parse
