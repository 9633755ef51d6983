"""Real processes for end-to-end tests: a uvicorn server and workers (:class:`FluxCluster`)
on a free port, started with a clean environment, awaited on ``/health`` and stopped by pid.

The CLI's tests start ``flux`` itself with the same pieces: :func:`clean_env`,
:func:`spawn`, :func:`stop_process` and :func:`alive`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from flux.client import FluxClient
from flux.config import ADMIN_KEY_FILE
from flux.errors import ApiError

from tests.support.waiting import wait_until

STOP_GRACE = 10.0
"""Seconds a cluster's process gets to exit on SIGTERM at the end of a test before it is
killed: a worker drains running executions for longer, and some tests leave one running."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any FLUX_* variable, unbuffered, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FLUX_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def spawn(argv: list[str], *, cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in the background, no stdin, its output appended to ``log``."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def stop_process(
    process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 30.0
) -> int:
    """Send ``sig`` to ``process`` by pid and wait up to ``grace`` seconds, then kill it; its
    exit code (``-9`` when it had to be killed)."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    return process.returncode


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    import psutil  # flux-worker's dependency, there whenever a cluster can start

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@dataclass
class FluxCluster:
    """A real uvicorn server and worker processes sharing one home folder (also their working
    directory and configuration folder); each process logs to ``home/<name>.log``."""

    home: Path
    port: int
    database_url: str
    env: dict[str, str]
    server: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str | None:
        """The admin key the server wrote to its home (authentication on), else ``None``."""
        path = self.home / ADMIN_KEY_FILE
        return path.read_text().strip() if path.exists() else None

    def client(self, timeout: float = 30.0) -> FluxClient:
        """A client of the server with its admin key, if it has one."""
        return FluxClient(self.url, timeout=timeout, api_key=self.api_key)

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.home / f"{name}.log"
        if log not in self.logs:
            self.logs.append(log)
        return spawn(argv, cwd=self.home, env=self.env, log=log)

    def start_server(self, *extra: str, host: str = "127.0.0.1") -> None:
        """Start ``python -m flux_server`` (with ``extra`` arguments) bound to ``host`` and wait
        until it answers ``/health``."""
        argv = [
            sys.executable, "-m", "flux_server",
            "--host", host, "--port", str(self.port),
            "--database-url", self.database_url, *extra,
        ]  # fmt: skip
        server = self.server = self._spawn("server", argv)

        def healthy() -> bool:
            if server.poll() is not None:
                raise AssertionError(f"server exited with {server.returncode}:\n{self.tail()}")
            try:
                with FluxClient(self.url, timeout=2) as flux:
                    flux.health()
            except ApiError:
                return False
            return True

        wait_until(healthy, what=f"server health at {self.url}")

    def start_worker(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        """Start ``python -m flux_worker NAME`` (with ``extra`` arguments) and wait until the
        server lists it as connected."""
        argv = [
            sys.executable, "-m", "flux_worker", name,
            "--server-url", self.url, "--home", str(self.home), *extra,
        ]  # fmt: skip
        worker = self.workers[name] = self._spawn(f"worker-{name}", argv)

        def connected() -> bool:
            if worker.poll() is not None:
                raise AssertionError(
                    f"worker {name} exited with {worker.returncode}:\n{self.tail()}"
                )
            with self.client(timeout=2) as flux:
                return any(w.name == name and w.connected for w in flux.list_workers())

        wait_until(connected, what=f"worker {name} to connect")
        return worker

    def stop(self) -> None:
        """Workers first (they drain), then the server; each by pid."""
        for worker in self.workers.values():
            stop_process(worker, grace=STOP_GRACE)
        if self.server is not None:
            stop_process(self.server, grace=STOP_GRACE)

    def tail(self, lines: int = 40) -> str:
        """The last ``lines`` of every process's log, for a failure message."""
        out = []
        for path in self.logs:
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


def make_cluster(tmp_path: Path, database_url: str | None = None, **env: str) -> FluxCluster:
    """A :class:`FluxCluster` (nothing started yet) with its home in ``tmp_path/flux-home``, on
    SQLite there unless ``database_url`` names another database; ``env`` adds variables."""
    home = tmp_path / "flux-home"
    home.mkdir(parents=True, exist_ok=True)
    return FluxCluster(
        home=home,
        port=free_port(),
        database_url=database_url or f"sqlite:///{home / 'flux.db'}",
        env=clean_env(
            **{
                "FLUX_HOME": str(home),
                "FLUX_CONFIG_DIR": str(home),
                "FLUX_SERVER__HEARTBEAT_TIMEOUT": "3",
                "FLUX_WORKERS__HEARTBEAT_INTERVAL": "0.5",
                **env,
            }
        ),
    )


@contextlib.contextmanager
def running_cluster(
    tmp_path: Path,
    source: str,
    *,
    workers: tuple[str, ...] = ("w1",),
    database_url: str | None = None,
    **env: str,
) -> Iterator[FluxCluster]:
    """A started server with ``workers`` connected and the workflow file ``source`` registered
    over HTTP; every process stopped by pid on exit."""
    cluster = make_cluster(tmp_path, database_url, **env)
    try:
        cluster.start_server()
        for name in workers:
            cluster.start_worker(name)
        path = tmp_path / "workflows.py"
        path.write_text(source)
        with cluster.client() as client:
            client.register_workflows(path)
        yield cluster
    finally:
        cluster.stop()
