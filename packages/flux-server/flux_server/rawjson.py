"""JSON answers with pieces the database wrote already.

A long history read on PostgreSQL comes back as one JSON text built by the database (see
``_READ_HISTORY_COLUMNS`` in :mod:`flux_server.store._claims`). Parsing it only to write it
out again would cost more than reading the rows did, so it travels as :class:`RawJson`, and
:func:`to_json` splices it into the answer byte for byte.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from pydantic_core import to_json as _to_json

__all__ = ["RawJson", "to_json"]


class RawJson:
    """A JSON text to be written as it is, in place of a value."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        # A newline outside a string is whitespace, and inside one JSON escapes it: making it
        # a space keeps the text one line (an SSE ``data:`` field) and means the same.
        self.text = text.replace("\n", " ")


# Each RawJson is first written as a string that holds a per-process secret, then replaced:
# data from outside (a workflow's source, an input) cannot hold the secret by chance.
_MARK = f"__flux_raw_{secrets.token_hex(12)}_"
_MARKED = re.compile(b'"' + _MARK.encode() + rb'(\d+)"')


def to_json(value: Any) -> bytes:
    """``value`` as JSON bytes (as :func:`pydantic_core.to_json` writes it), each
    :class:`RawJson` in it written as its text."""
    pieces: list[bytes] = []

    def mark(item: Any) -> Any:
        if isinstance(item, RawJson):
            pieces.append(item.text.encode())
            return f"{_MARK}{len(pieces) - 1}"
        raise TypeError(f"{type(item).__name__} is not JSON serializable")

    data = _to_json(value, fallback=mark)
    if not pieces:
        return data
    return _MARKED.sub(lambda m: pieces[int(m.group(1))], data)
