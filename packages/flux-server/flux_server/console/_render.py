"""Rendering pages: the Jinja2 environment (autoescaped: every value is text unless a template
says otherwise, and none does), the filters templates format values with, and the answers a
console route gives (a page, a redirect after a form).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jinja2
from fastapi import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from flux_server.console import _security

__all__ = ["render", "render_page", "see_other"]

VIEW_CHARS = 20_000
"""The most characters of one value (an input, an output, an event's view) a page shows."""


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _pretty(value: Any, limit: int = VIEW_CHARS) -> str:
    """A value's JSON, indented; cut at ``limit`` characters with a note saying so."""
    try:
        text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > limit:
        return f"{text[:limit]}\n… ({len(text) - limit:,} more characters)"
    return text


def _compact(value: Any, limit: int = 120) -> str:
    """A value's JSON on one line, cut at ``limit`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bytes(value: int | None) -> str:
    if not value:
        return "—"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _number(value: int | float) -> str:
    return f"{value:,}"


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("flux_server.console", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.filters.update(
    when=_when,
    iso=_iso,
    duration=_duration,
    pretty=_pretty,
    compact=_compact,
    bytes=_bytes,
    number=_number,
)


def render(request: Request, template: str, **context: Any) -> str:
    """``template`` rendered with ``context``, plus what every page uses: the request, the
    CSRF token (``request.state.csrf``, set by the route) and the auth seam's identity."""
    context.setdefault("nav", "")
    context.setdefault("notice", None)
    return _ENV.get_template(template).render(
        request=request,
        csrf=request.state.csrf,
        identity=getattr(request.state, "identity", None),
        **context,
    )


def render_page(request: Request, template: str, code: int = 200, **context: Any) -> Response:
    """A whole page; the notice a redirect left is shown on it, then forgotten."""
    notice = _security.take_flash(request)
    response = HTMLResponse(render(request, template, notice=notice, **context), code)
    if notice is not None:
        _security.clear_flash(response)
    return response


def see_other(request: Request, url: str, notice: str | None = None, kind: str = "ok") -> Response:
    """The answer to a form that did what it asked: 303 to ``url``, with ``notice`` shown
    there once."""
    response = RedirectResponse(url, 303)
    if notice is not None:
        _security.flash(request, response, kind, notice)
    return response
