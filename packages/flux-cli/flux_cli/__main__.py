"""``flux``: the console script and ``python -m flux_cli``."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence


def main() -> None:
    """Run ``flux`` with the process's arguments; exits with the command's code."""
    _exec_pass_through(sys.argv[1:])
    from flux_cli.app import app

    app()


def _exec_pass_through(args: Sequence[str]) -> None:
    """``flux start mcp|worker ARGS``, with no global option before ``start``: exec the
    program at once, before the command line loads (Typer, Rich and every command group, CPU
    that a start which must be ready in 2 s would spend for nothing). These commands pass
    their arguments on unchanged (see :mod:`flux_cli.start`), so the program gets what
    ``flux_cli.start`` would give it; a missing package, or anything else, takes the full
    path and its messages."""
    if os.name != "posix" or len(args) < 2 or args[0] != "start":
        return
    from flux_cli.components import MCP, WORKER

    component = {"mcp": MCP, "worker": WORKER}.get(args[1])
    if component is None or not component.installed():
        return
    argv = component.argv(*args[2:])
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)


if __name__ == "__main__":
    main()
