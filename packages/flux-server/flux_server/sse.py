"""Server-Sent Events framing."""

from __future__ import annotations

from collections.abc import AsyncIterator

from pydantic import BaseModel
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

__all__ = ["event_stream", "frame", "json_frame"]

_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def frame(event: str, data: BaseModel) -> bytes:
    """One SSE frame: ``event: <name>`` and the model's JSON as ``data:``."""
    return json_frame(event, data.model_dump_json().encode())


def json_frame(event: str, data: bytes) -> bytes:
    """One SSE frame whose ``data:`` is ``data``, JSON already (one line). Joined in one copy:
    a pushed claim's history can be megabytes."""
    return b"".join((b"event: ", event.encode(), b"\ndata: ", data, b"\n\n"))


def event_stream(
    frames: AsyncIterator[bytes],
    headers: dict[str, str] | None = None,
    background: BackgroundTask | None = None,
) -> StreamingResponse:
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={**_HEADERS, **(headers or {})},
        background=background,
    )
