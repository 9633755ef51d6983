"""Helpers for CLI tests that run real processes: the ``flux`` script, a clean environment,
polling with a deadline, stopping by pid, and the workflows the tests register."""

from __future__ import annotations

import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
from flux.client import FluxClient
from flux.errors import ApiError

T = TypeVar("T")

STACK_WORKER = "cli-e2e"
"""The worker the ``stack`` fixture starts."""

FLUX = str(Path(sys.executable).with_name("flux"))
"""The installed console script."""

needs_server = pytest.mark.skipif(
    importlib.util.find_spec("flux_server") is None,
    reason="flux-server is not installed (import flux_server fails)",
)

WORKFLOWS = """\
from flux import ExecutionContext, task, workflow
from flux.tasks import pause, sleep


@task
async def say_hello(name: str) -> str:
    return f"Hello, {name}"


@workflow
async def hello_world(ctx: ExecutionContext[str]) -> str:
    return await say_hello(ctx.input)


@workflow
async def approval(ctx: ExecutionContext[dict]) -> dict:
    decision = await pause("approve")
    return {"request": ctx.input, "decision": decision}


@workflow
async def countdown(ctx: ExecutionContext[float]) -> str:
    await sleep(ctx.input)
    return "done"


@workflow
async def broken(ctx: ExecutionContext[None]) -> None:
    raise ValueError("this workflow always fails")
"""


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any FLUX_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FLUX_")}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def wait_for(predicate: Callable[[], T], what: str, timeout: float = 30.0) -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)  # polling interval, not a wait for state


def start(args: list[str], cwd: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Run ``flux ARGS`` in the background, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [FLUX, *args], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 30.0) -> int:
    """Signal ``process`` by pid and wait for it (kill after ``grace``); its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
            raise AssertionError(
                f"pid {process.pid} ignored signal {sig} for {grace:g} s"
            ) from None
    return process.returncode


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """A real server (``python -m flux_server``, SQLite) and workers sharing one home.

    The same shape as ``FluxCluster`` in tests/conftest.py, which the CLI tests cannot use yet:
    it leaves each log file open after handing it to the child, and the ResourceWarning fails
    tests under ``filterwarnings = error``.
    """

    home: Path
    port: int = field(default_factory=free_port)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return clean_env(
            FLUX_HOME=str(self.home),
            FLUX_CONFIG_DIR=str(self.home),
            FLUX_SERVER__HEARTBEAT_TIMEOUT="3",
            FLUX_WORKERS__HEARTBEAT_INTERVAL="0.5",
        )

    def _spawn(self, key: str, argv: list[str]) -> subprocess.Popen[bytes]:
        with (self.home / f"{key}.log").open("ab") as log:
            process = subprocess.Popen(
                argv, cwd=self.home, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log
            )
        self.processes[key] = process
        return process

    def start_server(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "flux_server",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        argv += ["--database-url", f"sqlite:///{self.home / 'flux.db'}"]
        server = self._spawn("server", argv)

        def healthy() -> bool:
            assert server.poll() is None, f"the server exited:\n{self.tail()}"
            try:
                with FluxClient(self.url, timeout=2) as flux:
                    flux.health()
            except ApiError:
                return False
            return True

        wait_for(healthy, f"{self.url}/health")

    def start_worker(self, name: str) -> None:
        argv = [sys.executable, "-m", "flux_worker", name, "--server-url", self.url]
        worker = self._spawn(f"worker-{name}", [*argv, "--home", str(self.home)])

        def connected() -> bool:
            assert worker.poll() is None, f"worker {name} exited:\n{self.tail()}"
            with FluxClient(self.url) as flux:
                return any(w.name == name and w.connected for w in flux.list_workers())

        wait_for(connected, f"worker {name} to connect")

    def stop(self) -> None:
        """Workers first (they drain), then the server; each by pid."""
        for key in sorted(self.processes, key=lambda key: key == "server"):
            stop(self.processes[key])

    def tail(self, lines: int = 30) -> str:
        parts = []
        for key in self.processes:
            text = (self.home / f"{key}.log").read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {key}\n" + "\n".join(text))
        return "\n".join(parts)
