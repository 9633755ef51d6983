"""``flux secrets ...``: the secrets tasks ask for with ``secret_requests``, kept encrypted by the
server. Listings show names only; ``get`` asks before it prints a value."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from flux.secrets import validate_secret_name

from flux_cli.context import client
from flux_cli.output import FormatOption, OutputFormat, format_time, print_json, show, table

__all__ = ["app", "register"]

app = typer.Typer(
    name="secrets",
    help="Manage the secrets workflows use (stored encrypted by the server).",
    no_args_is_help=True,
)

NameArg = Annotated[
    str,
    typer.Argument(metavar="NAME", help="Secret name, e.g. API_KEY.", show_default=False),
]


def register(root: typer.Typer) -> None:
    root.add_typer(app)


@app.command("list")
def list_secrets(ctx: typer.Context, format: FormatOption = OutputFormat.TABLE) -> None:
    """List secret names (never their values)."""
    with client(ctx) as flux:
        secrets = flux.list_secrets()
    if format is OutputFormat.JSON:
        print_json(secrets)
        return
    if not secrets:
        show("No secrets. Add one with: flux secrets set NAME VALUE")
        return
    show(table(("NAME", "UPDATED"), ((s.name, format_time(s.updated_at)) for s in secrets)))


@app.command("set")
def set_secret(
    ctx: typer.Context,
    name: NameArg,
    value: Annotated[
        str,
        typer.Argument(
            metavar="VALUE",
            help="The value, as text; - reads it from stdin (keeps it out of shell history).",
            show_default=False,
        ),
    ],
) -> None:
    """Create a secret, or replace its value."""
    validate_secret_name(name)
    if value == "-":
        value = sys.stdin.read().removesuffix("\n")
    with client(ctx) as flux:
        flux.set_secret(name, value)
    show(f"Secret {name!r} saved.")


@app.command("get")
def get_secret(
    ctx: typer.Context,
    name: NameArg,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Print the value without asking first.")
    ] = False,
) -> None:
    """Print a secret's value (asks first: it will be on your screen)."""
    validate_secret_name(name)
    if not yes:
        typer.confirm(f"Print the value of secret {name!r}?", abort=True, err=True)
    with client(ctx) as flux:
        value = flux.get_secret(name)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


@app.command("remove")
def remove_secret(ctx: typer.Context, name: NameArg) -> None:
    """Delete a secret."""
    validate_secret_name(name)
    with client(ctx) as flux:
        flux.delete_secret(name)
    show(f"Secret {name!r} removed.")
