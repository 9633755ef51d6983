"""Checkpoints from worker to server: a per-execution outbox and one worker-wide sender.

``Outbox.save`` encodes events at once (so later mutation cannot change what is sent) and
queues them. One :class:`CheckpointSender` per worker posts whatever the outboxes have queued
in ``POST /workers/{name}/checkpoints`` requests (one database transaction each on the
server), so many executions finishing tasks at the same time share one round trip. Transport
failures retry with jittered backoff and resend the same event ids (the server merges them
idempotently). A conflict means the execution was claimed again elsewhere: that outbox is
fenced, drops what it holds and the worker abandons the run. Requests stay within a size
budget; a request whose content the server refuses is split until the refused execution
stands alone, and that execution fails with the reason. ``flush`` returns once the
server acknowledged everything saved so far; the engine awaits it before each side effect
that follows a completed task (``Run.settle``), and when the run ends or pauses.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from flux.context import ExecutionContext
from flux.domain import EventType, ExecutionEvent, ExecutionState
from flux.errors import ApiError, ExecutionError
from flux.protocol.claims import CheckpointBatchResponse, CheckpointItem
from flux.protocol.events import EventRecord

from flux_worker._backoff import backoff_delay

__all__ = ["CheckpointChannel", "CheckpointSender", "FencedError", "Outbox"]

log = logging.getLogger("flux.worker")

MAX_EVENTS_PER_REQUEST = 5_000
# What one request should carry at most, estimated from the events' sizes: well under the
# server's default limit (server.max_request_bytes, 10 MiB), so that executions with large
# values go in several requests rather than a refused one. A request refused as too large
# anyway (a lower limit, a view larger than estimated) is split until each part fits, or
# holds a single event that cannot fit: that execution fails (see Outbox.unstorable).
REQUEST_BUDGET = 4 * 1024 * 1024
# Ready executions are split among concurrent requests only in shares of at least this many:
# below it a request's own cost (HTTP, a statement, a commit) outweighs the overlap. With
# two workers of ten busy executions each, shares of five took a third more server and
# database CPU per task than one request of ten.
MIN_SHARE = 8
# A task's completion and the workflow's end that follows it are recorded a few loop
# iterations apart (the task's frames unwind, then the run's): with one iteration of grace
# the end travelled in a second request, one more round trip before a sync run answered.
_GRACE_ITERATIONS = 3
# Refusals that resending cannot fix; everything else (unreachable = status 0, 401 while the
# worker registers again, 5xx, 429) is retried. Of those, a refusal of the request's content
# (too large, or a value the server will not store) may be one item's doing: the request is
# split to find it, and only its execution fails.
_FATAL = frozenset({400, 403, 404, 413, 422, 426})
_CONTENT = frozenset({400, 413, 422})


class CheckpointChannel(Protocol):
    """Where checkpoints go: :class:`flux.client.AsyncWorkerChannel`."""

    async def checkpoints(self, items: Sequence[CheckpointItem]) -> CheckpointBatchResponse:
        """Store each item's events; each item is fenced on its own.

        Raises:
            ApiError: the request failed as a whole (``status_code`` 0 when unreachable).
        """
        ...


class FencedError(BaseException):
    """The server gave this execution to someone else; this copy must stop writing.

    A BaseException, like cancellation: a task's ``except Exception`` (or its fallback and
    rollback handling) must never treat losing the execution as a task failure.
    """


class Outbox:
    """The Checkpointer of one execution on this worker."""

    def __init__(
        self,
        sender: CheckpointSender,
        execution_id: str,
        generation: int,
        serializer: str = "pkl",
        on_fenced: Callable[[], None] | None = None,
        workflow_name: str = "",
    ) -> None:
        self.sender = sender
        self.execution_id = execution_id
        self.generation = generation
        self.serializer = serializer
        self.on_fenced = on_fenced
        self.workflow_name = workflow_name
        self.queue: list[EventRecord] = []
        self.in_flight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.fenced = False
        self.state: ExecutionState | None = None
        self.budget = REQUEST_BUDGET
        """How large an item of this execution may be, by estimate: halved each time the
        server refuses one of several events as too large."""
        self.failure: str | None = None
        """Why the server could not store this execution's events, once it could not: the
        run stops, and only the failure that says so is sent."""

    # -- Checkpointer --------------------------------------------------------------------------

    def save(self, ctx: ExecutionContext[Any], events: list[ExecutionEvent]) -> None:
        # A finished run's output is its terminal event's value, which the server takes as
        # the output when the checkpoint sends none: sending it as well doubled the largest
        # part of the last request (and pickled the output twice).
        self._check()
        fmt = self.serializer
        self.enqueue([EventRecord.from_event(e, fmt) for e in events])

    def enqueue(self, records: list[EventRecord]) -> None:
        """Queue already-encoded events."""
        self._check()
        self.queue.extend(records)
        self.idle.clear()
        self.sender.notify(self)

    async def flush(self) -> None:
        """Wait until the server acknowledged everything saved so far."""
        await self.idle.wait()
        self._check()

    async def finish(self, ctx: ExecutionContext[Any]) -> None:
        await self.flush()

    def abandon(self) -> None:
        """Drop everything queued and stop sending (the execution is no longer ours)."""
        self.fenced = True
        self.queue.clear()
        self.idle.set()

    def _check(self) -> None:
        if self.fenced:
            raise FencedError(f"execution {self.execution_id} was claimed again elsewhere")
        if self.failure is not None:
            raise FencedError(f"execution {self.execution_id} failed: {self.failure}")

    # -- used by the sender ----------------------------------------------------------------------

    def take(
        self, budget: int = REQUEST_BUDGET, at_least_one: bool = True
    ) -> tuple[CheckpointItem, int] | None:
        """The next item to send (the oldest queued events, as many as fit ``budget`` by
        estimate; at least one unless ``at_least_one`` is false) and its estimated size in
        bytes. ``None`` when there is nothing to send (or nothing that fits)."""
        if self.fenced or not self.queue:
            return None
        budget = min(budget, self.budget)
        size = 0
        n = 0
        for record in itertools.islice(self.queue, MAX_EVENTS_PER_REQUEST):
            cost = _estimate(record)
            if size + cost > budget and (n or not at_least_one):
                break
            size += cost
            n += 1
        if n == 0:
            return None
        batch = self.queue[:n]
        self.in_flight = n
        # Built from this worker's own values (events encoded by save, at most
        # MAX_EVENTS_PER_REQUEST of them): nothing to validate.
        item = CheckpointItem.model_construct(
            execution_id=self.execution_id,
            generation=self.generation,
            events=batch,
        )
        return item, size

    def smaller(self) -> bool:
        """The server refused the item in flight as a whole: send fewer of its events at a
        time (``False`` when it held a single event)."""
        if self.in_flight <= 1:
            return False
        sent = sum(_estimate(record) for record in self.queue[: self.in_flight])
        self.budget = max(1, sent // 2)
        self.in_flight = 0
        return True

    def unstorable(self, why: str) -> bool:
        """The server refused to store the events in flight (too large, or a value it will
        not take): end the execution FAILED saying why, instead of losing it to a retry
        loop. The run stops at its next checkpoint or flush. ``False`` when the failure
        itself was refused (the caller then gives the execution up)."""
        if self.failure is not None:
            return False
        self.failure = f"the server refused to store its events: {why}"
        log.error("execution %s: %s", self.execution_id, self.failure)
        error = ExecutionError(f"execution {self.execution_id} failed: {self.failure}")
        event = ExecutionEvent(
            EventType.WORKFLOW_FAILED, self.execution_id, self.workflow_name, error
        )
        self.queue = [EventRecord.from_event(event, self.serializer)]
        self.in_flight = 0
        return True

    def acknowledged(self, state: ExecutionState | None) -> None:
        del self.queue[: self.in_flight]
        self.in_flight = 0
        self.state = state
        if not self.queue:
            self.idle.set()

    def refused(self, why: str) -> None:
        log.warning("execution %s: checkpoint refused (%s); abandoning it", self.execution_id, why)
        self.abandon()
        if self.on_fenced is not None:
            self.on_fenced()


def _estimate(record: EventRecord) -> int:
    """A record's share of a request body, roughly: its value twice (base64, and the view,
    which for text and bytes is as long) plus the fields and JSON around them."""
    return 2 * len(record.value or "") + len(record.source_id) + len(record.scope) + 200


class CheckpointSender:
    """Posts the queued events of every outbox of a worker, batched into few requests.

    Up to ``max_in_flight`` requests travel at once, each with the outboxes that have nothing
    on the wire: while the server stores one batch, the executions acknowledged by the
    previous answer already run their next step and fill the next batch. An outbox has at
    most one batch in flight, so each execution's events still arrive in order.
    """

    def __init__(
        self,
        channel: Callable[[], CheckpointChannel],
        max_backoff: float = 5.0,
        max_in_flight: int = 2,
    ) -> None:
        self.channel = channel
        self.max_backoff = max_backoff
        self.max_in_flight = max_in_flight
        self._ready: dict[str, Outbox] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._attempt = 0

    def notify(self, outbox: Outbox) -> None:
        self._ready[outbox.execution_id] = outbox
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        tasks = [t for t in (self._task, *self._in_flight) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            # A few loop iterations' grace: runs woken with this one (a claim answered, an
            # acknowledgement received) reach their next wait first, and what they record
            # travels in this request rather than the next.
            for _ in range(_GRACE_ITERATIONS):
                await asyncio.sleep(0)
            self._wake.clear()
            while self._ready and len(self._in_flight) < self.max_in_flight:
                # Share what is ready among the free slots: executions split into groups
                # whose requests overlap, rather than moving in lockstep behind one request.
                # A share too small to be worth a request of its own goes with the rest.
                free = self.max_in_flight - len(self._in_flight)
                share = -(-len(self._ready) // free)
                items = self._take_ready(share if share >= MIN_SHARE else len(self._ready))
                if not items:
                    break  # what is ready has a batch on the wire; its answer wakes us
                task = asyncio.get_running_loop().create_task(self._send(items))
                self._in_flight.add(task)
                task.add_done_callback(self._sent)

    def _take_ready(self, limit: int) -> list[tuple[Outbox, CheckpointItem]]:
        """Up to ``limit`` items of ready outboxes, within :data:`REQUEST_BUDGET` together
        by estimate (an item larger than that goes alone)."""
        items: list[tuple[Outbox, CheckpointItem]] = []
        room = REQUEST_BUDGET
        for execution_id, box in list(self._ready.items()):
            if len(items) >= limit or room <= 0:
                break
            if box.in_flight:
                continue
            if not box.queue or box.fenced:
                del self._ready[execution_id]
                continue
            taken = box.take(room, at_least_one=not items)
            if taken is None:
                continue  # does not fit this request: the next one
            del self._ready[execution_id]
            item, size = taken
            items.append((box, item))
            room -= size
        return items

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()

    async def _send(self, items: list[tuple[Outbox, CheckpointItem]]) -> None:
        try:
            results = await self.channel().checkpoints([item for _, item in items])
        except ApiError as exc:
            if exc.status_code in _CONTENT and len(items) > 1:
                # One item may be the cause: halves, until the refused ones stand alone.
                half = len(items) // 2
                await self._send(items[:half])
                await self._send(items[half:])
                return
            if exc.status_code in _CONTENT:
                ((box, _),) = items
                if box.smaller() or box.unstorable(str(exc)):
                    self._ready[box.execution_id] = box
                    return
            if exc.status_code in _FATAL:
                for box, _ in items:
                    box.refused(str(exc))
                return
            await self._retry(items, exc)
            return
        self._attempt = 0
        for (box, _), result in zip(items, results.results, strict=True):
            if result.error is not None:
                box.refused(result.error.message)
                continue
            box.acknowledged(result.state)
            if box.queue and not box.fenced:
                self._ready[box.execution_id] = box

    async def _retry(self, items: list[tuple[Outbox, CheckpointItem]], exc: Exception) -> None:
        self._attempt += 1
        delay = backoff_delay(self._attempt, 0.05, self.max_backoff)
        log.info("checkpoint failed (%s); retry in %.2fs", exc, delay)
        await asyncio.sleep(delay)
        for box, _ in items:
            box.in_flight = 0
            if not box.fenced:
                self._ready[box.execution_id] = box
