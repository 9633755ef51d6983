"""The server's and the worker's log lines: text for people, or one JSON object per line for
log pipelines (``log_format = "json"``, ``FLUX_LOG_FORMAT=json``), whose records carry the
execution and the trace they belong to.

A worker binds each execution's id and trace id (:func:`bind`) in the task that runs it, so
everything logged there (by Flux or by task code) carries them; a log call may also name
them itself (``extra={"execution_id": ...}``). When OpenTelemetry is loaded and a span is
current, its trace and span ids are used.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

__all__ = ["TEXT_FORMAT", "JsonFormatter", "bind", "configure", "unbind"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_bound: ContextVar[tuple[str, str | None] | None] = ContextVar("flux_log_context", default=None)


def bind(execution_id: str, trace_id: str | None) -> Token[tuple[str, str | None] | None]:
    """Log records made in this context (and the tasks it starts) carry ``execution_id`` and
    ``trace_id``; give the token to :func:`unbind` to stop."""
    return _bound.set((execution_id, trace_id))


def unbind(token: Token[tuple[str, str | None] | None]) -> None:
    _bound.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``time`` (UTC, ISO 8601), ``level``, ``logger``,
    ``message``; ``execution_id``, ``trace_id`` and ``span_id`` where known; ``exception``
    (the formatted traceback) when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        execution_id = getattr(record, "execution_id", None)
        trace_id = getattr(record, "trace_id", None)
        span_id = None
        bound = _bound.get()
        if bound is not None:
            execution_id = execution_id or bound[0]
            trace_id = trace_id or bound[1]
        current = _current_span_ids()
        if current is not None:
            trace_id, span_id = current
        if execution_id:
            out["execution_id"] = execution_id
        if trace_id:
            out["trace_id"] = trace_id
        if span_id:
            out["span_id"] = span_id
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


def _current_span_ids() -> tuple[str, str] | None:
    """The current span's (trace id, span id), when OpenTelemetry is loaded (it is never
    imported here) and a valid span is current."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return None
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def configure(level: str, format: str = "text") -> None:
    """Log to stderr at ``level`` in ``format`` (``"text"`` or ``"json"``), for the whole
    process (the root logger)."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if format == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler])
