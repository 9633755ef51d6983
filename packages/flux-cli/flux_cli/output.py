"""Printing results: Rich tables for people, JSON for programs.

JSON goes straight to stdout (never through Rich, which would wrap long lines), so
``--format json`` output is exactly one JSON document, or one JSON object per line for streams.
User data never passes through Rich markup: cells are :class:`rich.text.Text`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Collection, Iterable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

__all__ = [
    "FormatOption",
    "OutputFormat",
    "console",
    "details_table",
    "dump",
    "format_time",
    "format_value",
    "print_json",
    "print_json_line",
    "show",
    "table",
]


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"


FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        "-f",
        case_sensitive=False,
        help="table for people, json for programs (valid JSON on stdout, nothing else).",
    ),
]
"""The ``--format table|json`` option every listing or showing command takes."""


_PIPE_WIDTH = 240
"""Width when stdout is not a terminal (and COLUMNS is unset): wide enough that ids never fold."""


def console() -> Console:
    """A console on the current stdout (looked up at each call, so test runners capture it)."""
    out = Console(file=sys.stdout, highlight=False, soft_wrap=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(file=sys.stdout, highlight=False, soft_wrap=False, width=_PIPE_WIDTH)
    return out


def show(*renderables: RenderableType) -> None:
    """Print each renderable (a ``str`` is plain text, never markup) on its own line(s).

    On a terminal this is Rich's own output; into a pipe or file, lines lose the padding Rich
    adds to fill columns, so the text is clean for grep and friends.
    """
    out = console()
    items = [Text(r) if isinstance(r, str) else r for r in renderables]
    if out.is_terminal:
        for item in items:
            out.print(item)
        return
    with out.capture() as captured:
        for item in items:
            out.print(item)
    lines = captured.get().splitlines()
    sys.stdout.write("".join(line.rstrip() + "\n" for line in lines))
    sys.stdout.flush()


def dump(value: Any) -> Any:
    """``value`` as plain JSON data: models (and lists of them) through ``model_dump``."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [dump(item) for item in value]
    return value


def print_json(value: Any) -> None:
    """Print ``value`` (models allowed) as one indented JSON document."""
    sys.stdout.write(json.dumps(dump(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    """Print ``value`` as one compact JSON line and flush (for streams: JSON Lines)."""
    sys.stdout.write(json.dumps(dump(value), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def format_time(value: datetime | None) -> str:
    """``2025-01-02 03:04:05Z``: UTC, to the second; empty for ``None``."""
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


def format_value(value: Any, limit: int | None = None) -> str:
    """A JSON view as compact JSON text, cut to ``limit`` characters (with an ellipsis)."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if limit is not None and len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    wrap: Collection[str] = (),
) -> Table:
    """A table whose cells are plain text (``None`` shows as empty).

    Only the columns named in ``wrap`` give up width on a narrow terminal, so names and ids stay
    on one line, copyable; a value that still does not fit folds rather than being cut.
    """
    result = Table(title=title, header_style="bold", show_edge=False, pad_edge=False)
    for column in columns:
        result.add_column(column, overflow="fold", no_wrap=column not in wrap)
    for row in rows:
        result.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    return result


def details_table(pairs: Iterable[tuple[str, Any]]) -> Table:
    """Two columns, label and value, without borders (for one object)."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in pairs:
        grid.add_row(Text(label), Text("" if value is None else str(value)))
    return grid
