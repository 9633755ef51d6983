"""What an agent publishes while it runs, through ``flux.tasks.progress``: never recorded, never
replayed, sent to whoever watches the execution (its streams on a server, the ``on_progress``
callback of a local run). Each value is a dict with ``agent`` and ``type``:

============== ============================================================================
``type``       the other keys
============== ============================================================================
``text``       ``turn``, ``text``: a piece of the reply (``stream=True``), several tokens at
               a time
``usage``      ``turn``, ``usage`` (prompt/completion/total tokens), ``cost``: a turn ended
``tool_start`` ``call_id``, ``tool``, ``arguments``
``tool_end``   ``call_id``, ``tool``, ``ok`` (false when the tool's error went to the model)
``approval``   ``call_id``, ``tool``, ``pause``: the call waits for a person's answer
============== ============================================================================
"""

from __future__ import annotations

import time
from typing import Any

__all__ = ["TextStream", "publish"]

TEXT_CHARS = 64
"""Characters of reply gathered before they are published (or :data:`TEXT_SECONDS`)."""
TEXT_SECONDS = 0.1


async def publish(agent: str, kind: str, **fields: Any) -> None:
    # flux.tasks loads every built-in: imported with the first run, not with flux_agents.
    from flux.tasks.progress import progress

    await progress({"agent": agent, "type": kind, **fields})


class TextStream:
    """The reply of one turn as it arrives, published a few tokens at a time."""

    __slots__ = ("agent", "pieces", "since", "size", "turn")

    def __init__(self, agent: str, turn: int) -> None:
        self.agent = agent
        self.turn = turn
        self.pieces: list[str] = []
        self.size = 0
        self.since = time.monotonic()

    async def add(self, text: str) -> None:
        self.pieces.append(text)
        self.size += len(text)
        if self.size >= TEXT_CHARS or time.monotonic() - self.since >= TEXT_SECONDS:
            await self.flush()

    async def flush(self) -> None:
        if self.pieces:
            text = "".join(self.pieces)
            self.pieces.clear()
            self.size = 0
            await publish(self.agent, "text", turn=self.turn, text=text)
        self.since = time.monotonic()
