"""Following an execution for the ``*_sync`` tools: each state change of the server's execution
stream (``GET /executions/{id}/stream``) becomes an MCP progress notification, until the
execution finishes or pauses, or the configured wait runs out.

The wait is flux-mcp's own, shorter than any client's request timeout: once it passes, the
tool answers with the execution's current state (RUNNING) and the model asks again later,
instead of the call timing out and the execution id being lost.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import aclosing
from typing import NamedTuple, cast

import anyio
from flux.client import AsyncFluxClient
from flux.domain import FINISHED_STATES, EventType, ExecutionState
from flux.errors import ApiError
from flux.protocol import ExecutionStatus, ExecutionStreamFrame

__all__ = ["RECONNECTS", "Followed", "Report", "follow", "last_workflow_position"]

Report = Callable[[str], Awaitable[None]]
"""Sends one progress message (the notifications are numbered by :func:`follow`)."""

_STOPS = FINISHED_STATES | {ExecutionState.PAUSED}
RECONNECTS = 8
"""Drops of the stream in a row (no frame between them) before following gives up."""
_BACKOFF = (0.1, 0.25, 0.5, 1.0, 2.0)
"""Seconds before opening the stream again, by the number of drops so far."""
_WORKFLOW_TYPES = [t.value for t in EventType if t.is_workflow]


class Followed(NamedTuple):
    """How following ended: ``stopped`` when the execution finished or paused before the wait
    ran out; ``end``, its finishing frame when the stream brought one (state, output and time:
    with what the start answered, the whole result, without reading the execution again)."""

    stopped: bool
    end: ExecutionStreamFrame | None = None

    def status(self, start: ExecutionStatus) -> ExecutionStatus | None:
        """The execution's status at its end, from ``start`` (what starting, resuming or
        cancelling it answered) and the finishing frame; ``None`` without one. Its
        ``updated_at`` is the finishing event's time; the worker is not known."""
        if self.end is None:
            return None
        end = self.end
        update = {"state": end.state, "output": end.output, "updated_at": end.timestamp}
        return start.model_copy(update={**update, "pauses": [], "worker": None, "events": None})


async def follow(
    flux: AsyncFluxClient,
    execution_id: str,
    *,
    wait: float,
    report: Report,
    after: int | None = None,
    until_finished: bool = False,
) -> Followed:
    """Report each frame of the execution's stream after position ``after`` until one that
    finishes or pauses it (only one that finishes it with ``until_finished``); not stopped
    when ``wait`` seconds passed first.

    A stream that drops (the server restarted, a replica drained, the connection broke) is
    opened again after the last frame seen, so no frame is reported twice or lost; after
    :data:`RECONNECTS` drops in a row without a frame between them the error is raised.

    Raises:
        flux.errors.ApiError: the stream could not be opened (unknown execution, refused),
            or kept dropping.
    """
    stops = FINISHED_STATES if until_finished else _STOPS
    end: ExecutionStreamFrame | None = None
    with anyio.move_on_after(wait):
        drops = 0
        while True:
            # The stream is an async generator: closing it at once ends the HTTP request, where
            # leaving it to the garbage collector would hold the connection open.
            stream = cast(
                "AsyncGenerator[ExecutionStreamFrame, None]",
                flux.stream_execution(execution_id, after=after),
            )
            try:
                async with aclosing(stream) as frames:
                    async for frame in frames:
                        drops = 0
                        after = frame.position
                        await report(_describe(frame))
                        if frame.state in FINISHED_STATES:
                            # The server ends the stream after this frame: reading on to its
                            # end keeps the connection for the next call (closing it early
                            # would cost a new one). Whatever happens then, it finished.
                            end = frame
                        elif frame.state in stops:
                            return Followed(True)
                if end is not None:
                    return Followed(True, end)
                # The server ends a stream after its finishing frame (reported above, or
                # before ``after``), or when it shuts down: which one, its state tells.
                if (await flux.get_execution(execution_id)).state in stops:
                    return Followed(True)
                if drops >= RECONNECTS:
                    raise ApiError(f"the stream of execution {execution_id!r} kept ending", 0)
            except ApiError as exc:
                if end is not None:
                    return Followed(True, end)
                if not _dropped(exc) or drops >= RECONNECTS:
                    raise
            await anyio.sleep(_BACKOFF[min(drops, len(_BACKOFF) - 1)])
            drops += 1
    return Followed(end is not None, end)


def _dropped(exc: ApiError) -> bool:
    """Whether ``exc`` is a stream lost on the way (worth opening again), not a refusal."""
    status = exc.status_code or 0
    return status == 0 or status >= 500


def _describe(frame: ExecutionStreamFrame) -> str:
    return f"execution {frame.execution_id} is {frame.state.value}"


async def last_workflow_position(flux: AsyncFluxClient, execution_id: str) -> int | None:
    """The position of the execution's last workflow-level event (its stream's last frame),
    ``None`` when it has none yet: following from there skips the frames already reported.

    Raises:
        flux.errors.ExecutionNotFoundError: no execution has that id.
    """
    position, after = None, None
    while True:
        page = await flux.execution_events(
            execution_id, after=after, limit=1000, types=_WORKFLOW_TYPES
        )
        if page.items:
            position = page.items[-1].position
        if page.next_after is None:
            return position
        after = page.next_after
