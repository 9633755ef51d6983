"""Fixtures shared by every suite: real server and worker processes on a free port."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

PG_URL = os.environ.get("FLUX_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 10.0) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass
class FluxCluster:
    """A real uvicorn server and worker processes sharing one home folder."""

    home: Path
    port: int
    database_url: str
    env: dict[str, str]
    server: subprocess.Popen | None = None
    workers: dict[str, subprocess.Popen] = field(default_factory=dict)
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen:
        path = self.home / f"{name}.log"
        self.logs.append(path)
        with open(path, "ab") as log:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(cmd, env=self.env, stdout=log, stderr=log, cwd=self.home)

    def start_server(self) -> None:
        cmd = [
            sys.executable, "-m", "flux_server",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--database-url", self.database_url,
        ]  # fmt: skip
        self.server = self._spawn("server", cmd)
        wait_until(self._healthy, timeout=30, what=f"server health at {self.url}")

    def _healthy(self) -> bool:
        if self.server is not None and self.server.poll() is not None:
            raise AssertionError(f"server exited with {self.server.returncode}:\n{self.tail()}")
        try:
            return httpx.get(f"{self.url}/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self, name: str, *extra: str) -> subprocess.Popen:
        cmd = [
            sys.executable, "-m", "flux_worker", name,
            "--server-url", self.url, "--home", str(self.home), *extra,
        ]  # fmt: skip
        proc = self._spawn(f"worker-{name}", cmd)
        self.workers[name] = proc
        wait_until(lambda: self._worker_connected(name), timeout=30, what=f"worker {name}")
        return proc

    def _worker_connected(self, name: str) -> bool:
        proc = self.workers[name]
        if proc.poll() is not None:
            raise AssertionError(f"worker {name} exited with {proc.returncode}:\n{self.tail()}")
        try:
            workers = httpx.get(f"{self.url}/workers", timeout=1).json()
        except httpx.HTTPError:
            return False
        return any(w["name"] == name and w.get("connected") for w in workers)

    def stop(self) -> None:
        for proc in self.workers.values():
            stop_process(proc)
        if self.server is not None:
            stop_process(self.server)

    def tail(self, lines: int = 40) -> str:
        out = []
        for path in self.logs:
            if path.exists():
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)


def make_cluster(tmp_path: Path, database_url: str | None = None, **env: str) -> FluxCluster:
    home = tmp_path / "flux-home"
    home.mkdir(parents=True, exist_ok=True)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("FLUX_")}
    base_env.update(
        {
            "FLUX_HOME": str(home),
            "FLUX_SERVER__HEARTBEAT_TIMEOUT": "3",
            "FLUX_WORKERS__HEARTBEAT_INTERVAL": "0.5",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
    )
    return FluxCluster(
        home=home,
        port=free_port(),
        database_url=database_url or f"sqlite:///{home / 'flux.db'}",
        env=base_env,
    )


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[FluxCluster]:
    """A running server (SQLite) and no workers yet; stopped by pid afterwards."""
    c = make_cluster(tmp_path)
    try:
        c.start_server()
        yield c
    finally:
        c.stop()


@contextlib.contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """The URL of a new PostgreSQL database (on the server of ``FLUX_TEST_PG``), dropped on
    exit; the test is skipped when PostgreSQL is unreachable."""
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL at {PG_URL} is unreachable: {exc}")
    name = f"{prefix}_{secrets.token_hex(4)}"
    with admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            yield PG_URL.rsplit("/", 1)[0] + "/" + name
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL database of its own, dropped afterwards."""
    with fresh_pg_database("flux_e2e") as url:
        yield url
