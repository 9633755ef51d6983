"""``flux-server``: serve the API, or ``flux-server db upgrade`` to migrate the database.

Settings come from ``flux.config`` (``flux.toml``, ``FLUX_*``); the options override them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from flux import logs
from flux.errors import FluxError

from flux_server.options import ServerOptions

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flux-server", description=__doc__)
    parser.add_argument("--host", help="bind address (default: server_host, 'localhost')")
    parser.add_argument("--port", type=int, help="port (default: server_port, 8000)")
    parser.add_argument("--database-url", help="default: database_url, sqlite:///.flux/flux.db")
    parser.add_argument("--log-level", default=None, help="default: log_level, INFO")
    parser.add_argument(
        "--auth",
        choices=("auto", "on", "off"),
        help="require API keys (default: server.auth, 'auto': off on loopback, on elsewhere)",
    )
    parser.add_argument(
        "--tls-certfile", help="serve HTTPS with this certificate chain (PEM; server.tls_certfile)"
    )
    parser.add_argument("--tls-keyfile", help="the certificate's private key (server.tls_keyfile)")
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="allow authentication off on an address other than loopback (warned about loudly)",
    )
    commands = parser.add_subparsers(dest="command")
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_commands.add_parser("upgrade", help="apply the schema migrations and exit")
    upgrade.add_argument("--database-url", dest="db_url", help="default: database_url")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        from flux.config import Configuration

        settings = Configuration.get().settings
        level = (args.log_level or settings.log_level).upper()
        logs.configure(level, settings.log_format)
        overrides: dict[str, object] = {}
        if args.host:
            overrides["host"] = args.host
        if args.port is not None:
            overrides["port"] = args.port
        if args.auth:
            overrides["auth"] = args.auth
        if args.insecure:
            overrides["insecure"] = True
        for name in ("tls_certfile", "tls_keyfile"):
            if getattr(args, name):
                overrides[name] = getattr(args, name)
        url = getattr(args, "db_url", None) or args.database_url
        if url:
            overrides["database_url"] = url
        options = ServerOptions.from_settings(settings, **overrides)
        if args.command == "db":
            return _upgrade(options)
        return _serve(options, level, settings.log_format)
    except FluxError as exc:
        print(f"flux-server: {exc}", file=sys.stderr)
        return 2


def _upgrade(options: ServerOptions) -> int:
    from flux_server.db import Database, upgrade

    async def run() -> None:
        db = Database(options.database_url)
        try:
            await upgrade(db)
        finally:
            await db.dispose()

    asyncio.run(run())
    print(f"database at {options.database_url} is up to date")
    return 0


def _serve(options: ServerOptions, level: str, log_format: str) -> int:
    from flux._gc import settle_startup_objects

    from flux_server.app import create_app
    from flux_server.exposure import auth_required
    from flux_server.runtime import preflight
    from flux_server.serving import check_tls, serve

    auth_required(options)  # refusals are one line (main catches FluxError)
    check_tls(options)
    asyncio.run(preflight(options))
    app = create_app(options)
    settle_startup_objects()
    serve(app, options, level.lower(), log_format)
    return 0


if __name__ == "__main__":
    sys.exit(main())
