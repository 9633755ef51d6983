"""Progress (protocol 1.10): a worker hands over what a held execution's tasks published, and
streams may carry ``task.progress`` frames between their state frames."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from flux.client._calls._base import JSON, Call, model_body, parse_model, seg
from flux.protocol import (
    ProgressBatch,
    ProgressItem,
    ProgressResponse,
    TaskProgressFrame,
    parse_progress_frame,
)

__all__ = ["progress", "with_progress"]

F = TypeVar("F")


def progress(
    name: str, token: str, execution_id: str, items: Sequence[ProgressItem]
) -> Call[ProgressResponse]:
    return Call(
        "POST",
        f"/workers/{seg(name)}/progress/{seg(execution_id)}",
        parse_model(ProgressResponse),
        content=model_body(ProgressBatch(items=list(items))),
        content_type=JSON,
        token=token,
    )


def with_progress(
    parse: Callable[[str, str], F | None],
) -> Callable[[str, str], F | TaskProgressFrame | None]:
    """``parse``, that also reads ``task.progress`` frames."""

    def both(event: str, data: str) -> F | TaskProgressFrame | None:
        found = parse_progress_frame(event, data)
        return found if found is not None else parse(event, data)

    return both
