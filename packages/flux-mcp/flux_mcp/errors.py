"""Flux errors as MCP tool errors whose message tells the model what to do next.

A tool never answers a failure as a success carrying an error field: it raises
:class:`~mcp.server.mcpserver.exceptions.ToolError`, which the SDK returns as a result with
``isError`` set and this message as its text. The server's own messages name CLI commands
(``flux workflow register FILE``); here they name the tools that do the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flux.errors import (
    ApiError,
    ConflictError,
    ExecutionNotFoundError,
    ExecutionStateError,
    FluxError,
    NotFoundError,
    ProtocolError,
    UsageError,
)
from mcp.server.mcpserver.exceptions import ToolError

__all__ = ["flux_errors", "tool_message"]


@contextmanager
def flux_errors(context: str = "") -> Iterator[None]:
    """Turn a :class:`FluxError` raised inside into a :class:`ToolError`; ``context`` (a
    sentence, e.g. that an execution was started) goes before the message."""
    try:
        yield
    except FluxError as exc:
        message = tool_message(exc)
        raise ToolError(f"{context} {message}" if context else message) from None


def tool_message(exc: FluxError) -> str:
    """What the model reads for ``exc``: what went wrong, then what to do about it."""
    details = exc.details
    if isinstance(exc, ExecutionNotFoundError) or (
        isinstance(exc, NotFoundError) and "execution_id" in details
    ):
        eid = details.get("execution_id")
        return (
            f"No execution {eid!r} exists. Check the id; list_executions finds executions by "
            "workflow and state."
        )
    if isinstance(exc, NotFoundError) and "workflow" in details:
        return (
            f"No workflow named {details['workflow']!r} is registered. list_workflows shows the "
            "registered names; upload_workflow registers a Python file of workflows."
        )
    if isinstance(exc, NotFoundError) and "schedule" in details:
        return f"No schedule {details['schedule']!r} (by id or name). list_schedules shows them."
    if isinstance(exc, ExecutionStateError):
        hint = "Nothing was changed; get_execution_status shows its state."
        pauses = details.get("pauses")
        if isinstance(pauses, list) and pauses:
            names = ", ".join(repr(p.get("name", p) if isinstance(p, dict) else p) for p in pauses)
            hint = f"Pass pause_name, one of {names}."
        return f"{_sentence(exc.message)} {hint}"
    if isinstance(exc, ProtocolError):
        return (
            f"flux-mcp and the Flux server speak different protocol versions: {exc.message}. "
            "Ask the user to upgrade them to the same release."
        )
    if isinstance(exc, ApiError):
        return _api_message(exc)
    if isinstance(exc, UsageError):
        return f"Invalid arguments: {exc.message}. Fix them and call again."
    return f"{exc.message}."


def _api_message(exc: ApiError) -> str:
    status = exc.status_code
    if status == 0:
        return (
            f"{_sentence(exc.message)} Ask the user to start the Flux server (`flux start "
            "server`) or to point flux-mcp at the right one (mcp.server_url, --server-url); "
            "nothing was done."
        )
    if status in (401, 403):
        return (
            f"The Flux server refused flux-mcp's credentials (HTTP {status}): {exc.message}. "
            "Ask the user to give flux-mcp an API key with the needed role "
            "(FLUX_MCP__API_KEY or mcp.api_key in flux.toml)."
        )
    if isinstance(exc, ConflictError):
        return f"{_sentence(exc.message)} Nothing was changed."
    if status is not None and 400 <= status < 500:
        return (
            f"The Flux server refused the request (HTTP {status}): {exc.message}. Fix the "
            "arguments and call again."
        )
    return (
        f"The Flux server failed (HTTP {status}): {exc.message}. Try again shortly; if it "
        "keeps failing, ask the user to look at the server's log."
    )


def _sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."
