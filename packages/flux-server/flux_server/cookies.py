"""The console's cookies, as ``Set-Cookie`` values: scoped to ``/console``, never read by a
script (HttpOnly), never sent by another site (SameSite=Strict), HTTPS-only when served over
HTTPS. Written by the console's pages and by the gate (which answers before any route)."""

from __future__ import annotations

__all__ = ["CONSOLE_PATH", "set_cookie_header"]

CONSOLE_PATH = "/console"


def set_cookie_header(name: str, value: str, *, secure: bool, max_age: int | None = None) -> bytes:
    """The ``Set-Cookie`` value for ``name`` (``max_age=0`` removes it)."""
    parts = [f"{name}={value}", f"Path={CONSOLE_PATH}", "HttpOnly", "SameSite=strict"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    return "; ".join(parts).encode("latin-1")
