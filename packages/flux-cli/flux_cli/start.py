"""``flux start server|worker|mcp``: run an installed Flux program in the foreground.

The program replaces the ``flux`` process (``exec``), so it receives signals directly and its
exit code is the command's. Only the options given are passed on: the program reads its
defaults from the Flux configuration itself. ``flux start worker`` and ``flux start mcp`` pass
their arguments to ``flux-worker`` and ``flux-mcp`` unchanged (``--help`` too), so each pair
takes the same options by construction.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated, NoReturn

import typer

from flux_cli.components import MCP, SERVER, WORKER, Component
from flux_cli.context import state

__all__ = ["app", "exec_program", "register"]

app = typer.Typer(
    name="start",
    help="Start the Flux server, a worker or the MCP server in the foreground.",
    no_args_is_help=True,
)


def register(root: typer.Typer) -> None:
    root.add_typer(app)


HostOption = Annotated[str | None, typer.Option("--host", help="Address to bind.")]
PortOption = Annotated[int | None, typer.Option("--port", min=0, max=65535, help="Port to bind.")]


@app.command("server")
def server(
    host: HostOption = None,
    port: PortOption = None,
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="SQLAlchemy URL, e.g. sqlite:///.flux/flux.db or postgresql://...",
        ),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow server.auth=off on an address other than loopback (a proxy in front "
            "must then authenticate every request).",
        ),
    ] = False,
) -> None:
    """Start the Flux server (HTTP API, dispatcher and scheduler). Needs flux-server.

    Defaults come from the configuration (server_host, server_port, database_url). Bound to
    an address other than loopback, it requires API keys (see flux auth).
    """
    args = _options(host=host, port=port, database_url=database_url)
    _start(SERVER, "flux start server", [*args, *(["--insecure"] if insecure else [])])


@app.command(
    "worker",
    # Every argument goes to flux-worker as given, --help included: the worker's options are
    # defined once, by the program that reads them.
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def worker(ctx: typer.Context) -> None:
    """Start a worker that claims and runs executions. Needs flux-worker.

    Takes the options of flux-worker (flux start worker --help lists them). The server is
    flux --server-url when given, unless the arguments name one.
    """
    args = list(ctx.args)
    server_url = state(ctx).server_url
    if server_url is not None and not _names(args, "--server-url"):
        # First, so that an option given after it (or after a "--") is read as given.
        args = ["--server-url", server_url, *args]
    _start(WORKER, "flux start worker", args)


def _names(args: list[str], option: str) -> bool:
    """Whether ``args`` give ``option`` (``--option value`` or ``--option=value``)."""
    return any(arg == option or arg.startswith(f"{option}=") for arg in args)


@app.command(
    "mcp",
    # As for the worker: flux-mcp defines its options (--host, --port, --transport,
    # --read-only, ...) and reads them; --help included.
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def mcp(ctx: typer.Context) -> None:
    """Start the MCP server that exposes workflows as tools. Needs flux-mcp.

    Takes the options of flux-mcp (flux start mcp --help lists them: --host, --port,
    --transport stdio|streamable-http|sse, --read-only, ...). The Flux server is flux
    --server-url when given, unless the arguments name one; defaults come from the [mcp]
    configuration.
    """
    args = list(ctx.args)
    server_url = state(ctx).server_url
    if server_url is not None and not _names(args, "--server-url"):
        args = ["--server-url", server_url, *args]
    _start(MCP, "flux start mcp", args)


def _options(**values: object) -> list[str]:
    """``--flag value`` for every value given, in order (``database_url`` -> ``--database-url``)."""
    args: list[str] = []
    for key, value in values.items():
        if value is not None:
            args += [f"--{key.replace('_', '-')}", str(value)]
    return args


def _start(component: Component, command: str, args: list[str]) -> NoReturn:
    component.require(command)
    exec_program(component.argv(*args))


def exec_program(argv: list[str]) -> NoReturn:
    """Replace this process with ``argv`` (POSIX); elsewhere run it and exit with its code.

    Tests replace this function to see the command line without running it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "posix":
        os.execv(argv[0], argv)
    # Windows has no real exec: wait for the child; Ctrl-C reaches it through the console.
    raise SystemExit(subprocess.call(argv))
