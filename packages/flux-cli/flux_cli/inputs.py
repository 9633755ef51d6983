"""What commands take from the command line: JSON (workflow and resume input), an execution id."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

__all__ = ["ExecutionArg", "parse_json"]


def parse_json(text: str | None, param: str = "INPUT_JSON") -> Any:
    """The value of the JSON ``text``; ``None`` when it is not given; ``-`` reads stdin.

    Raises:
        typer.BadParameter: ``text`` is not JSON (a usage error: exit code 2), with the position
            of the problem.
    """
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if exc.pos == 0 and text.strip() and text.strip()[0] not in '{["-0123456789tfn':
            # The common slip: a bare word where a JSON string needs quotes.
            hint = f"; a string needs JSON quotes, e.g. '{json.dumps(text)}'"
        raise typer.BadParameter(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}{hint}",
            param_hint=param,
        ) from None


ExecutionArg = Annotated[
    str, typer.Argument(metavar="EXECUTION_ID", help="Execution id.", show_default=False)
]
"""An execution id argument, as every command that takes one names it."""
