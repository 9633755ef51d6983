"""``flux dev``: the server (with its scheduler) and workers on this machine, on SQLite.

The server and every worker are subprocesses sharing one Flux home: the server keeps its
database at ``{home}/flux.db`` and, when no bootstrap token is configured, writes one to
``{home}/bootstrap-token``, where the workers read it. ``flux dev`` waits until the server
answers ``/health``, starts the workers, and stays in the foreground. Ctrl-C or SIGTERM stops
the workers (they drain), then the server, each by pid: SIGTERM, then SIGKILL after the grace
period; the command then exits 0. When a child dies on its own, ``flux dev`` names it, stops the
others and exits 1.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from flux._files import private_dir

from flux_cli.components import SERVER, WORKER
from flux_cli.context import client_host, state
from flux_cli.errors import CliError
from flux_cli.output import show
from flux_cli.processes import Child, Supervisor, describe_exit

__all__ = ["dev", "register"]


def register(root: typer.Typer) -> None:
    root.command("dev")(dev)


def dev(
    ctx: typer.Context,
    host: Annotated[str, typer.Option("--host", help="Address the server binds.")] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Server port (0: any free port).")
    ] = 8000,
    home: Annotated[
        Path, typer.Option("--home", help="Flux home: database, bootstrap token, worker files.")
    ] = Path(".flux"),
    workers: Annotated[int, typer.Option("--workers", min=0, help="Workers to start.")] = 1,
    startup_timeout: Annotated[
        float, typer.Option("--startup-timeout", min=1, help="Seconds to wait for /health.")
    ] = 60.0,
    grace: Annotated[
        float,
        typer.Option("--grace", min=0, help="Seconds each child gets to stop before it is killed."),
    ] = 10.0,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure",
            help="Allow server.auth=off with --host other than loopback (warned about loudly).",
        ),
    ] = False,
) -> None:
    """Start a local Flux: the server on SQLite and workers, until Ctrl-C.

    Needs flux-server and flux-worker.
    """
    SERVER.require("flux dev")
    if workers:
        WORKER.require("flux dev")
    home = home.expanduser().resolve()
    private_dir(home)
    if port == 0:
        port = _free_port(host)
    url = f"http://{client_host(host)}:{port}"
    database_url = f"sqlite:///{home / 'flux.db'}"
    env = {**os.environ, "FLUX_HOME": str(home)}
    supervisor = Supervisor(grace=grace)

    with _signals() as signals:
        try:
            server_args = ["--host", host, "--port", str(port), "--database-url", database_url]
            if insecure:
                server_args.append("--insecure")
            server = supervisor.start("the server", SERVER.argv(*server_args), env)
            if not _wait_healthy(ctx, url, server, startup_timeout, signals):
                return
            started = [
                supervisor.start(
                    f"worker {name!r}",
                    WORKER.argv(name, "--server-url", url, "--home", str(home)),
                    env,
                )
                for name in (f"dev-worker-{i}" for i in range(1, workers + 1))
            ]
            _banner(url, home, database_url, server, started)
            while not signals.wait(1.0):
                dead = supervisor.exited()
                if dead is not None:
                    raise CliError(f"{describe_exit(dead)}; stopping flux dev")
        finally:
            if signals.received:
                show("Stopping Flux...")
            supervisor.stop([[c for c in supervisor.children if c.label != "the server"]])
    show("Flux stopped.")


def _wait_healthy(
    ctx: typer.Context, url: str, server: Child, timeout: float, signals: _Signals
) -> bool:
    """Poll ``/health`` until it answers; ``False`` when a stop signal came first.

    Raises:
        CliError: the server exited, or did not answer within ``timeout`` seconds.
    """
    from flux.client import FluxClient
    from flux.errors import ApiError

    deadline = time.monotonic() + timeout
    with FluxClient(url, timeout=2.0, transport=state(ctx).transport) as flux:
        while True:
            if server.process.poll() is not None:
                raise CliError(
                    f"{describe_exit(server)} before answering at {url} "
                    "(is the port in use? see its output above)"
                )
            try:
                flux.health()
                return True
            except ApiError:
                pass  # not listening yet, or not ready
            if time.monotonic() >= deadline:
                raise CliError(f"the server did not answer {url}/health within {timeout:g} s")
            if signals.wait(0.1):
                return False


def _banner(url: str, home: Path, database_url: str, server: Child, workers: list[Child]) -> None:
    lines = [
        "Flux is running.",
        f"  API:      {url}",
        f"  Docs:     {url}/docs",
        f"  Home:     {home}",
        f"  Database: {database_url}",
        f"  Server:   pid {server.pid}",
    ]
    lines += [f"  Worker:   {w.label.removeprefix('worker ')} (pid {w.pid})" for w in workers]
    lines.append("Press Ctrl-C to stop.")
    show(*lines)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host.strip("[]"), 0))
        return int(sock.getsockname()[1])


class _Signals:
    """SIGINT/SIGTERM ask to stop; SIGCHLD only wakes :meth:`wait`.

    Handlers only record the signal; the wakeup file descriptor makes :meth:`wait` return
    promptly, with no lock touched inside a signal handler.
    """

    def __init__(self, reader: socket.socket) -> None:
        self.received: int | None = None
        self._reader = reader

    def handle(self, signum: int, frame: Any) -> None:
        if signum != getattr(signal, "SIGCHLD", None):
            self.received = signum

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a signal; whether stopping was asked."""
        if self.received is None:
            select.select([self._reader], [], [], timeout)
            try:
                while self._reader.recv(512):
                    pass
            except (BlockingIOError, InterruptedError):
                pass
        return self.received is not None


@contextmanager
def _signals() -> Iterator[_Signals]:
    reader, writer = socket.socketpair()
    reader.setblocking(False)
    writer.setblocking(False)
    signals = _Signals(reader)
    wanted = [signal.SIGINT, signal.SIGTERM]
    if hasattr(signal, "SIGCHLD"):
        wanted.append(signal.SIGCHLD)
    previous: dict[int, Callable[..., Any] | int | None] = {}
    in_main = threading.current_thread() is threading.main_thread()
    old_fd = -1
    try:
        if in_main:
            old_fd = signal.set_wakeup_fd(writer.fileno(), warn_on_full_buffer=False)
            for signum in wanted:
                previous[signum] = signal.signal(signum, signals.handle)
        yield signals
    finally:
        for number, handler in previous.items():
            # None: a handler installed from C, which cannot be reinstated; use the default.
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        if in_main:
            signal.set_wakeup_fd(old_fd)
        reader.close()
        writer.close()
