"""The ``flux`` command: root group, global options, error reporting and the command groups.

Command groups live in their own modules, listed in :data:`COMMAND_MODULES`. Each module defines
``register(root: typer.Typer) -> None`` that adds its group or command to the root, e.g.::

    app = typer.Typer(name="schedule", help="Manage schedules.", no_args_is_help=True)

    def register(root: typer.Typer) -> None:
        root.add_typer(app)

Modules in :data:`OPTIONAL_MODULES` are skipped while they do not exist, so ``flux_cli.schedules``
and ``flux_cli.secrets`` appear in ``flux --help`` as soon as their files are added.

A command raises what it naturally raises (``flux.errors`` from the client,
:class:`~flux_cli.errors.CliError`, ``typer.BadParameter``); :class:`FluxGroup` prints it as one
``error: ...`` line on stderr and exits 1 (2 for usage errors), with the traceback only under
``--debug``.
"""

from __future__ import annotations

import errno
import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from flux_cli.context import state
from flux_cli.errors import CliError, describe, one_line

__all__ = ["COMMAND_MODULES", "OPTIONAL_MODULES", "FluxGroup", "app", "build_app"]

COMMAND_MODULES: tuple[str, ...] = (
    "flux_cli.workflows",
    "flux_cli.executions",
    "flux_cli.workers",
    "flux_cli.schedules",
    "flux_cli.secrets",
    "flux_cli.auth",
    "flux_cli.start",
    "flux_cli.dev",
)
"""Modules that each add a command group (or command) to ``flux``, in help order."""

OPTIONAL_MODULES: frozenset[str] = frozenset({"flux_cli.schedules", "flux_cli.secrets"})
"""Modules skipped while they do not exist (groups other people add later)."""


class FluxGroup(TyperGroup):
    """The root group: turns every failure into one line on stderr and an exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]  # Typer hands its Context
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort, CliError):
            raise
        except OSError as exc:
            if exc.errno == errno.EPIPE:
                raise  # Typer exits quietly when stdout is a closed pipe (`flux ... | head`)
            raise self._failure(ctx, exc) from exc
        except Exception as exc:
            raise self._failure(ctx, exc) from exc

    @staticmethod
    def _failure(ctx: typer.Context, exc: Exception) -> CliError:
        current = state(ctx)
        if current.debug:
            traceback.print_exc()
        message, code = describe(exc, current.server_url)
        return CliError(message, code)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args,
                prog_name,
                complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            code = result if isinstance(result, int) and not isinstance(result, bool) else 0
        except CliError as exc:
            _print_error(exc.message)
            code = exc.exit_code
        except typer.Abort:
            _print_error("aborted")
            code = 1
        except typer.TyperException as exc:
            code = exc.exit_code
            if type(exc).__name__ == "NoArgsIsHelpError":
                getattr(exc, "show", lambda: None)()  # a bare group: its help
            else:
                _print_error(_usage_message(exc))
        if standalone_mode:
            sys.exit(code)
        return code


def _print_error(message: str) -> None:
    typer.echo(f"error: {one_line(message)}", err=True)


def _usage_message(exc: typer.TyperException) -> str:
    message = exc.format_message()
    command_ctx = getattr(exc, "ctx", None)
    if command_ctx is not None:
        message += f" (see '{command_ctx.command_path} --help')"
    return message


def _version(value: bool) -> None:
    if value:
        try:
            number = version("flux-cli")
        except PackageNotFoundError:
            number = "unknown"
        typer.echo(f"flux-cli {number}")
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    server_url: Annotated[
        list[str] | None,
        typer.Option(
            "--server-url",
            help="Flux server to talk to; repeat it (or separate URLs by commas) for several "
            "servers of one database, tried in turn when one does not answer. Default: "
            "http://{server_host}:{server_port} from the configuration (FLUX_SERVER_HOST, "
            "FLUX_SERVER_PORT, flux.toml), i.e. http://localhost:8000.",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
    _: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """Flux: durable workflow orchestration. Run workflows on a Flux server, start the server
    and workers, or everything at once with flux dev."""
    current = state(ctx)
    if server_url:
        from flux.client import server_urls

        current.server_url = ",".join(server_urls(server_url))
    current.debug = current.debug or debug


def build_app(modules: Sequence[str] = COMMAND_MODULES) -> typer.Typer:
    """A fresh ``flux`` app with the command groups of ``modules`` (missing optional ones are
    skipped; any other import error propagates)."""
    root = typer.Typer(
        cls=FluxGroup,
        name="flux",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    root.callback()(_root)
    for name in modules:
        if name in OPTIONAL_MODULES and importlib.util.find_spec(name) is None:
            continue
        importlib.import_module(name).register(root)
    return root


app = build_app()
"""The ``flux`` command (``flux_cli.__main__:main`` runs it)."""
