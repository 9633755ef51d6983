"""``flux auth ...``: who the server takes you for, and its API keys (``flux auth key
create|list|revoke``, admins only). A key is shown once, when it is created."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from flux.errors import UsageError
from flux.protocol import ApiKeyInfo, Role

from flux_cli.context import client
from flux_cli.errors import CliError
from flux_cli.output import FormatOption, OutputFormat, format_time, print_json, show, table

__all__ = ["app", "register"]

app = typer.Typer(
    name="auth",
    help="Who you are to the server, and its API keys.",
    no_args_is_help=True,
)
keys = typer.Typer(
    name="key",
    help="Create, list and revoke API keys (needs the admin role).",
    no_args_is_help=True,
)
app.add_typer(keys)

_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def register(root: typer.Typer) -> None:
    root.add_typer(app)


@app.command("whoami")
def whoami(ctx: typer.Context, format: FormatOption = OutputFormat.TABLE) -> None:
    """Show the key (its name and role) or worker the server takes you for."""
    with client(ctx) as flux:
        me = flux.whoami()
    if format is OutputFormat.JSON:
        print_json(me)
        return
    if not me.authentication:
        show("The server's authentication is off: every caller may do everything.")
        return
    expires = f", expires {format_time(me.expires_at)}" if me.expires_at else ""
    show(f"{me.kind} {me.name!r} ({me.key_id or 'no id'}), role {me.role}{expires}")


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """``30d``, ``12h``, ``1w2d`` from now, or an ISO 8601 time (UTC without an offset).

    Raises:
        UsageError: neither.
    """
    now = now or datetime.now(UTC)
    compact = text.strip().lower().replace(" ", "")
    if compact and _DURATION.sub("", compact) == "":
        seconds = sum(int(n) * _UNITS[u] for n, u in _DURATION.findall(compact))
        if seconds > 0:
            return now + timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--expires {text!r} is neither a duration (30d, 12h, 1w) nor an ISO 8601 time"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


@keys.command("create")
def create_key(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="What to call it, e.g. ci.", show_default=False)
    ],
    role: Annotated[
        Role,
        typer.Option("--role", case_sensitive=False, help="admin, operator or viewer."),
    ] = Role.VIEWER,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="When it stops working: a duration (30d, 12h, 1w) or an ISO 8601 time. "
            "Default: never (revoke it instead).",
            show_default=False,
        ),
    ] = None,
    format: FormatOption = OutputFormat.TABLE,
) -> None:
    """Create an API key; it is printed this once (the server keeps only its hash)."""
    expires_at = parse_expiry(expires) if expires is not None else None
    with client(ctx) as flux:
        created = flux.create_key(name, role.value, expires_at=expires_at)
    if format is OutputFormat.JSON:
        print_json({**created.model_dump(mode="json"), "key": created.key})
        return
    until = f", until {format_time(created.expires_at)}" if created.expires_at else ""
    show(
        f"Created key {created.name!r} (id {created.id}), role {created.role.value}{until}.",
        "It is shown this once; keep it somewhere safe (clients read FLUX_API_KEY):",
        created.key,
    )


@keys.command("list")
def list_keys(ctx: typer.Context, format: FormatOption = OutputFormat.TABLE) -> None:
    """List API keys (never the keys themselves), revoked and expired ones included."""
    with client(ctx) as flux:
        found = flux.list_keys()
    if format is OutputFormat.JSON:
        print_json(found)
        return
    if not found:
        show("No API keys. Create one with: flux auth key create NAME --role viewer")
        return
    now = datetime.now(UTC)
    rows = (
        (k.id, k.name, k.role.value, _state(k, now), format_time(k.created_at),
         format_time(k.expires_at))
        for k in found
    )  # fmt: skip
    show(table(("ID", "NAME", "ROLE", "STATE", "CREATED", "EXPIRES"), rows))


def _state(key: ApiKeyInfo, now: datetime) -> str:
    if key.revoked_at is not None:
        return "revoked"
    if key.expires_at is not None and key.expires_at <= now:
        return "expired"
    return "active"


@keys.command("revoke")
def revoke_key(
    ctx: typer.Context,
    key: Annotated[
        str,
        typer.Argument(
            metavar="KEY",
            help="The key's id, or its name when one active key has it.",
            show_default=False,
        ),
    ],
) -> None:
    """Revoke an API key: every server refuses it from now on."""
    with client(ctx) as flux:
        key_id = key
        if not re.fullmatch(r"[0-9a-f]{12}", key):
            now = datetime.now(UTC)
            named = [k for k in flux.list_keys() if k.name == key and _state(k, now) == "active"]
            if len(named) != 1:
                found = "no active key" if not named else f"{len(named)} active keys"
                raise CliError(f"{found} named {key!r}; give the key's id (flux auth key list)")
            key_id = named[0].id
        flux.revoke_key(key_id)
    show(f"Key {key_id} revoked.")
