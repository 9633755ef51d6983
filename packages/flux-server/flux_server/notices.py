"""One-shot notices for the console: a short text a redirect carries, in a cookie, to the next
console page the browser opens, which shows it once. Written by the console's forms and by the
gate when it refuses one (a role that may not do what the form asks)."""

from __future__ import annotations

import base64
import json

__all__ = ["KINDS", "NOTICE_COOKIE", "decode", "encode"]

NOTICE_COOKIE = "flux_flash"
KINDS = ("ok", "error")
LIMIT = 2000
"""Characters of a notice kept (a cookie holds about 4 KB)."""


def encode(kind: str, text: str) -> str:
    """The cookie's value for ``text`` shown as ``kind`` (``ok`` or ``error``)."""
    raw = json.dumps([kind, text[:LIMIT]]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode(value: str | None) -> tuple[str, str] | None:
    """(kind, text) of a cookie's value; ``None`` when it holds no valid notice."""
    if not value:
        return None
    try:
        kind, text = json.loads(base64.urlsafe_b64decode(value.encode()))
    except (ValueError, TypeError):
        return None
    if kind not in KINDS or not isinstance(text, str):
        return None
    return kind, text
