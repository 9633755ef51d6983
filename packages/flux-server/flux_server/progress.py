"""Progress (protocol 1.10): what tasks publish while they run, fanned out to every open stream of
their execution, on this replica and the others, and never stored.

A worker posts progress to the replica it talks to (:mod:`flux_server.api.progress`). That
replica puts each ``task.progress`` frame on its own streams of the execution and sends it to
the other replicas as ``progress`` notes: hints, batched after no commit, dropped while no other
replica listens (:class:`flux_server.db.notifier.Notifier`). A note holds at most 8000 bytes,
so a frame travels in base64 pieces, put back together on arrival. A stream's client that
falls behind loses progress frames, never state frames.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator

from flux.protocol import TaskProgressFrame

from flux_server.notes import PROGRESS
from flux_server.sse import frame

__all__ = ["NOTE_PIECE_BYTES", "ProgressHub"]

log = logging.getLogger(__name__)

NOTE_PIECE_BYTES = 5000
"""Bytes of frame per note (about 6,700 in base64, under PostgreSQL's 8,000 per payload)."""
STREAM_BACKLOG = 1000
"""Progress frames a stream holds for a slow client before it drops new ones."""
_PARTIAL_LIMIT = 256
"""Frames from other replicas being put back together at once (older ones are dropped)."""


class ProgressHub:
    """The streams of this process that watch an execution's progress.

    Args:
        to_replicas: sends notes to the other replicas (:meth:`Database.hint_replicas`).
    """

    def __init__(self, to_replicas: Callable[[list[str]], None]) -> None:
        self._to_replicas = to_replicas
        self._streams: dict[str, set[asyncio.Queue[bytes | None]]] = {}
        self._partial: OrderedDict[str, list[str | None]] = OrderedDict()

    def streams(self, execution_id: str) -> int:
        """How many streams of this process watch ``execution_id``."""
        return len(self._streams.get(execution_id, ()))

    def publish(self, frames: list[TaskProgressFrame]) -> None:
        """Put ``frames`` on this process's streams of their execution, and send them to the
        other replicas."""
        notes: list[str] = []
        for item in frames:
            data = frame(TaskProgressFrame.EVENT, item)
            self._deliver(item.execution_id, data)
            notes.extend(_pieces(item.model_dump_json().encode()))
        if notes:
            self._to_replicas(notes)

    def receive(self, text: str) -> None:
        """A ``progress`` note from another replica (its text after ``progress:``)."""
        try:
            message, _, rest = text.partition(":")
            position, _, piece = rest.partition(":")
            index, _, count = position.partition("/")
            i, n = int(index), int(count)
        except ValueError:
            log.debug("ignoring a malformed progress note")
            return
        pieces = self._partial.get(message)
        if pieces is None:
            if len(self._partial) >= _PARTIAL_LIMIT:
                self._partial.popitem(last=False)
            pieces = self._partial[message] = [None] * n
        if not 0 <= i < len(pieces):
            return
        pieces[i] = piece
        if any(p is None for p in pieces):
            return
        del self._partial[message]
        try:
            raw = b"".join(base64.b64decode(p) for p in pieces if p is not None)
            item = TaskProgressFrame.model_validate_json(raw)
        except ValueError:
            log.debug("ignoring a progress frame that does not read back")
            return
        self._deliver(item.execution_id, frame(TaskProgressFrame.EVENT, item))

    def _deliver(self, execution_id: str, data: bytes) -> None:
        for queue in self._streams.get(execution_id, ()):
            if queue.qsize() < STREAM_BACKLOG:
                queue.put_nowait(data)

    @contextlib.contextmanager
    def _listen(self, execution_id: str, queue: asyncio.Queue[bytes | None]) -> Iterator[None]:
        self._streams.setdefault(execution_id, set()).add(queue)
        try:
            yield
        finally:
            queues = self._streams.get(execution_id)
            if queues is not None:
                queues.discard(queue)
                if not queues:
                    del self._streams[execution_id]

    async def merged(self, execution_id: str, frames: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``frames`` (an execution's stream) with its progress frames in between, until
        ``frames`` ends; closing this closes ``frames``."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()  # None: the stream has ended

        async def pump() -> None:
            try:
                async for data in frames:
                    queue.put_nowait(data)
            finally:
                queue.put_nowait(None)

        with self._listen(execution_id, queue):
            task = asyncio.create_task(pump())
            try:
                while (data := await queue.get()) is not None:
                    yield data
                await task  # its error, if the stream failed
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task


def _pieces(raw: bytes) -> list[str]:
    """The notes that carry one frame's JSON to the other replicas."""
    message = uuid.uuid4().hex  # unique, so a batch of notes never merges two pieces
    chunks = [raw[i : i + NOTE_PIECE_BYTES] for i in range(0, len(raw), NOTE_PIECE_BYTES)]
    n = len(chunks)
    return [
        f"{PROGRESS}:{message}:{i}/{n}:{base64.b64encode(chunk).decode()}"
        for i, chunk in enumerate(chunks)
    ]
