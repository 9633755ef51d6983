"""``flux-mcp`` (also ``python -m flux_mcp`` and ``flux start mcp``): serve Flux's workflows to
MCP clients.

Settings come from the ``mcp`` section of the Flux configuration (``[mcp]`` or ``[flux.mcp]``
in flux.toml, ``FLUX_MCP__*``); the options given here override them. The MCP SDK is imported
only once the options are read, so ``--help`` and a refused start answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from flux import logs
from flux.errors import FluxError

__all__ = ["main", "parse_args"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flux-mcp",
        description="Serve Flux workflows over the Model Context Protocol. Defaults come from "
        "the mcp section of the Flux configuration.",
    )
    parser.add_argument("--host", help="address to bind (default: mcp.host, localhost)")
    parser.add_argument("--port", type=int, help="port to bind (default: mcp.port, 8080)")
    parser.add_argument(
        "--transport",
        choices=["stdio", "streamable-http", "sse"],
        help="MCP transport (default: mcp.transport, streamable-http)",
    )
    parser.add_argument(
        "--server-url", help="the Flux server (default: mcp.server_url, http://localhost:8000)"
    )
    parser.add_argument("--name", help="the MCP server's name (default: flux-workflows)")
    parser.add_argument(
        "--read-only",
        action="store_true",
        default=None,
        help="offer only the tools that change nothing",
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        dest="allowed_hosts",
        metavar="HOST",
        help="also accept this Host header (repeatable; default: mcp.allowed_hosts)",
    )
    parser.add_argument(
        "--allowed-origin",
        action="append",
        dest="allowed_origins",
        metavar="ORIGIN",
        help="also accept this Origin header (repeatable; default: mcp.allowed_origins)",
    )
    parser.add_argument(
        "--sync-wait-seconds",
        type=float,
        help="how long the *_sync tools wait before answering with the current state "
        "(default: mcp.sync_wait_seconds, 60)",
    )
    parser.add_argument(
        "--insecure",
        action="store_true",
        help="serve HTTP beyond loopback without authentication",
    )
    parser.add_argument("--log-level", help="default: log_level, INFO")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line's options (exits 2 with a usage message when they are wrong)."""
    return _parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        from flux.config import Configuration

        from flux_mcp.config import McpConfig

        settings = Configuration.get().settings
        config = McpConfig.load(
            host=args.host,
            port=args.port,
            transport=args.transport,
            server_url=args.server_url,
            name=args.name,
            read_only=args.read_only,
            allowed_hosts=args.allowed_hosts,
            allowed_origins=args.allowed_origins,
            sync_wait_seconds=args.sync_wait_seconds,
            insecure=args.insecure,
        )
        level = (args.log_level or settings.log_level).upper()
        logs.configure(level, settings.log_format)  # stderr: on stdio, stdout is the protocol
        # A line per call to the Flux server would drown flux-mcp's own log.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        from flux_mcp.serving import serve

        serve(config, log_level=level)
    except FluxError as exc:
        print(f"flux-mcp: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
