"""``flux-worker [NAME] [--server-url URL ...] [--token TOKEN] [--capacity N]
[--metrics-port N]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import socket
import sys
from pathlib import Path

from flux import logs
from flux.errors import FluxError


def default_name() -> str:
    host = socket.gethostname().split(".")[0] or "worker"
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in host)
    return f"{safe}-{secrets.token_hex(3)}"


def bootstrap_token(configured: str | None, home: Path) -> str | None:
    """The configured token, else the one a local server generated into its home."""
    if configured:
        return configured
    path = home / "bootstrap-token"
    if path.exists():
        return path.read_text().strip() or None
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="flux-worker", description="Run a Flux worker.")
    parser.add_argument("name", nargs="?", help="worker name (default: <host>-<random>)")
    parser.add_argument(
        "--server-url",
        action="append",
        help="Flux server URL; repeat it (or separate URLs by commas) for several servers of "
        "one database, in order of preference: the worker moves to the next when its server "
        "stops answering (default: workers.server_url)",
    )
    parser.add_argument("--token", help="bootstrap token (default: workers.bootstrap_token)")
    parser.add_argument("--capacity", type=int, help="executions run at once")
    parser.add_argument("--home", help="Flux home folder (default: home setting)")
    parser.add_argument(
        "--isolation",
        choices=["inprocess", "subprocess"],
        help="run executions in this process (default) or one child process each",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics on this port (default: workers.metrics_port, off)",
    )
    parser.add_argument(
        "--metrics-host",
        help="address the metrics port binds (default: workers.metrics_host, localhost)",
    )
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING...")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    from flux.config import Configuration

    args = parse_args(argv)
    try:
        settings = Configuration.get().settings
    except FluxError as exc:
        print(f"flux-worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure(args.log_level or settings.log_level, settings.log_format)
    # One line per HTTP call would drown the worker's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    home = Path(args.home or settings.home)
    token = bootstrap_token(args.token or settings.workers.bootstrap_token, home)
    if not token:
        print(
            "flux-worker: no bootstrap token: pass --token, set FLUX_WORKERS__BOOTSTRAP_TOKEN, "
            f"or run next to a server whose home is {home}",
            file=sys.stderr,
        )
        raise SystemExit(2)
    capacity = args.capacity or settings.workers.max_concurrent_executions
    if capacity < 1:
        print(f"flux-worker: --capacity must be >= 1, got {capacity}", file=sys.stderr)
        raise SystemExit(2)
    metrics_port = args.metrics_port
    if metrics_port is None:
        metrics_port = settings.workers.metrics_port
    if metrics_port is not None and not 0 <= metrics_port <= 65535:
        print(f"flux-worker: --metrics-port must be 0..65535, got {metrics_port}", file=sys.stderr)
        raise SystemExit(2)
    from flux.client import server_urls

    try:
        urls = server_urls(args.server_url or settings.workers.server_url)
    except FluxError as exc:
        print(f"flux-worker: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    from flux_worker.worker import Worker

    worker = Worker(
        args.name or default_name(),
        urls,
        token,
        capacity=capacity,
        serializer=settings.serializer,
        home=home,
        isolation=args.isolation or settings.workers.isolation,
        metrics_port=metrics_port,
        metrics_host=args.metrics_host or settings.workers.metrics_host,
    )

    from flux._gc import settle_startup_objects

    settle_startup_objects()

    async def serve() -> None:
        worker.install_signal_handlers()
        await worker.run()

    try:
        asyncio.run(serve())
    except FluxError as exc:
        print(f"flux-worker: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
