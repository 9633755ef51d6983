"""The CLI against real processes: a uvicorn server and a worker (``stack``), ``flux start ...``
and ``flux dev`` started as programs and stopped by pid."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest
from cli_support import Cli
from e2e_support import FLUX, STACK_WORKER, WORKFLOWS, needs_server
from flux.client import FluxClient
from flux.errors import ApiError
from typer.testing import Result

from tests.support.cluster import FluxCluster, alive, clean_env, free_port, spawn, stop_process
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, needs_server]

WORKER = STACK_WORKER


class Flux:
    """``flux --server-url URL ...`` in process against ``stack``."""

    def __init__(self, cli: Cli, stack: FluxCluster) -> None:
        self.cli = cli
        self.stack = stack

    def __call__(self, *args: str) -> Result:
        return self.cli("--server-url", self.stack.url, *args)

    def json(self, *args: str) -> Any:
        result = self(*args, "--format", "json")
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        return json.loads(result.stdout)

    def json_lines(self, *args: str) -> list[Any]:
        result = self(*args, "--format", "json")
        assert result.exit_code == 0, result.output
        return [json.loads(line) for line in result.stdout.splitlines()]

    def state_becomes(self, name: str, execution_id: str, *states: str) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            with FluxClient(self.stack.url) as flux:
                status = flux.status(name, execution_id)
            return status.model_dump(mode="json") if status.state in states else None

        return wait_until(check, what=f"{name} {execution_id} to be {' or '.join(states)}")


@pytest.fixture
def flux(cli: Cli, stack: FluxCluster) -> Flux:
    return Flux(cli, stack)


def test_register_inspect_and_run_in_every_mode(flux: Flux) -> None:
    registered = flux.json("workflow", "register", "workflows.py")
    names = sorted(w["name"] for w in registered)
    assert names == ["approval", "broken", "countdown", "hello_world"]
    table = flux("workflow", "list")
    assert table.exit_code == 0 and "hello_world" in table.stdout
    assert sorted(w["name"] for w in flux.json("workflow", "list")) == names
    shown = flux.json("workflow", "show", "hello_world")
    assert shown["version"] == 1 and "async def hello_world" in shown["source"]
    assert "async def hello_world" in flux("workflow", "show", "hello_world").stdout

    # sync: waits for the output
    done = flux.json("workflow", "run", "hello_world", '"World"', "--mode", "sync")
    assert (done["state"], done["output"], done["worker"]) == ("COMPLETED", "Hello, World", WORKER)

    # a chosen execution id: the second run reports on the first execution
    args = ("workflow", "run", "hello_world", '"Once"', "--mode", "sync", "--execution-id", "cli-1")
    first, again = flux.json(*args), flux.json(*args[:3], '"Twice"', "--execution-id", "cli-1")
    assert (first["execution_id"], first["output"]) == ("cli-1", "Hello, Once")
    assert (again["execution_id"], again["output"]) == ("cli-1", "Hello, Once")
    bad = flux("workflow", "run", "hello_world", "--execution-id", "not ok")
    assert bad.exit_code != 0 and "execution_id" in bad.output and "Traceback" not in bad.output

    # async: answers at once; the status shows it finishing
    execution_id = flux.json("workflow", "run", "hello_world", '"Async"')["execution_id"]
    final = flux.state_becomes("hello_world", execution_id, "COMPLETED")
    assert final["output"] == "Hello, Async"
    status = flux("workflow", "status", "hello_world", execution_id)
    assert status.exit_code == 0 and '"Hello, Async"' in status.stdout
    detailed = flux.json("workflow", "status", "hello_world", execution_id, "--detailed")
    types = [e["type"] for e in detailed["events"]]
    assert types[0] == "WORKFLOW_STARTED" and types[-1] == "WORKFLOW_COMPLETED"
    assert "TASK_COMPLETED" in types
    assert "TASK_COMPLETED" in flux("workflow", "status", "hello_world", execution_id, "-d").stdout

    # stream: every frame as it comes, then the output
    streamed = flux("workflow", "run", "hello_world", '"Stream"', "--mode", "stream")
    assert streamed.exit_code == 0, streamed.output
    lines = streamed.stdout.splitlines()
    assert re.fullmatch(r"execution \S+", lines[0])
    events = [line.split()[2] for line in lines[1:-1]]
    assert events[0] == "workflow.execution.running"
    assert events[-1] == "workflow.execution.completed"
    assert lines[-1] == 'output: "Hello, Stream"'
    frames = flux.json_lines("workflow", "run", "hello_world", '"J"', "--mode", "stream")
    assert frames[-1]["event"] == "workflow.execution.completed"
    assert frames[-1]["output"] == "Hello, J"

    workers = flux.json("workers", "list")
    assert [(w["name"], w["connected"]) for w in workers] == [(WORKER, True)]
    assert WORKER in flux("workers", "list").stdout


def test_pause_resume_cancel_and_failures(flux: Flux) -> None:
    assert flux("workflow", "register", "workflows.py").exit_code == 0

    # sync returns when the execution pauses, with a hint on how to resume it
    paused = flux("workflow", "run", "approval", '{"amount": 120}', "--mode", "sync")
    assert paused.exit_code == 0, paused.output
    execution_id = re.search(r"execution\s+(\S+)", paused.stdout).group(1)  # type: ignore[union-attr]
    assert "PAUSED" in paused.stdout
    assert f"flux workflow resume approval {execution_id} INPUT_JSON" in paused.stdout
    resume = ("workflow", "resume", "approval", execution_id, '{"approved": true}')
    resumed = flux.json(*resume, "--mode", "sync")
    assert resumed["state"] == "COMPLETED"
    assert resumed["output"] == {"request": {"amount": 120}, "decision": {"approved": True}}
    detailed = flux.json("workflow", "status", "approval", execution_id, "--detailed")
    types = [e["type"] for e in detailed["events"]]
    assert "WORKFLOW_PAUSED" in types and "WORKFLOW_RESUMED" in types

    # resume in stream mode; resuming what is not paused is the server's 409, in one line
    second = flux.json("workflow", "run", "approval", '{"amount": 1}')["execution_id"]
    flux.state_becomes("approval", second, "PAUSED")
    streamed = flux("workflow", "resume", "approval", second, '"no"', "--mode", "stream")
    assert streamed.exit_code == 0, streamed.output
    assert "workflow.execution.completed" in streamed.stdout
    again = flux("workflow", "resume", "approval", second, "{}")
    assert again.exit_code == 1
    assert again.stdout == ""
    assert len(again.stderr.splitlines()) == 1 and again.stderr.startswith("error: ")

    # cancel a running execution and wait for it to stop; cancelling it again fails (409)
    slow = flux.json("workflow", "run", "countdown", "3600")["execution_id"]
    flux.state_becomes("countdown", slow, "RUNNING")
    cancelled = flux.json("workflow", "cancel", "countdown", slow, "--mode", "sync")
    assert cancelled["state"] == "CANCELLED"
    twice = flux("workflow", "cancel", "countdown", slow)
    assert twice.exit_code == 1 and len(twice.stderr.splitlines()) == 1
    # an async cancel answers at once
    other = flux.json("workflow", "run", "countdown", "3600")["execution_id"]
    quick = flux.json("workflow", "cancel", "countdown", other)
    assert quick["state"] in {"CANCELLING", "CANCELLED"}
    flux.state_becomes("countdown", other, "CANCELLED")

    # a failing run exits 1 with one line; a missing workflow is the server's 404 message
    failed = flux("workflow", "run", "broken", "--mode", "sync")
    assert failed.exit_code == 1
    assert "FAILED" in failed.stdout
    assert failed.stderr.startswith("error: execution ") and "ended FAILED" in failed.stderr
    assert len(failed.stderr.splitlines()) == 1
    missing = flux("workflow", "show", "no_such_workflow")
    assert missing.exit_code == 1
    assert "no_such_workflow" in missing.stderr and len(missing.stderr.splitlines()) == 1


def test_start_worker_joins_the_server(stack: Any, tmp_path: Path) -> None:
    args = [
        "start",
        "worker",
        "started-by-cli",
        "--server-url",
        stack.url,
        "--home",
        str(stack.home),
    ]
    process = spawn([FLUX, *args], cwd=tmp_path, env=clean_env(), log=tmp_path / "worker.log")
    try:

        def connected() -> bool:
            assert process.poll() is None, (tmp_path / "worker.log").read_text()
            with FluxClient(stack.url) as flux:
                return any(w.name == "started-by-cli" and w.connected for w in flux.list_workers())

        wait_until(connected, what="the worker to connect")
        # exec: the flux process itself became the worker
        assert "flux_worker" in " ".join(psutil.Process(process.pid).cmdline())
    finally:
        assert stop_process(process) == 0, (tmp_path / "worker.log").read_text()


def test_start_server_serves_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    args = ["start", "server", "--host", "127.0.0.1", "--port", str(port)]
    args += ["--database-url", f"sqlite:///{home / 'flux.db'}"]
    process = spawn(
        [FLUX, *args], cwd=tmp_path, env=clean_env(FLUX_HOME=str(home)), log=tmp_path / "server.log"
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", process, tmp_path / "server.log")
        assert "flux_server" in " ".join(psutil.Process(process.pid).cmdline())
        assert (home / "bootstrap-token").exists()
    finally:
        code = stop_process(process)
    log = (tmp_path / "server.log").read_text()
    # uvicorn re-raises SIGTERM once it has shut down gracefully
    assert code in (0, -signal.SIGTERM), log
    assert "Application shutdown complete" in log


def _wait_healthy(url: str, process: Any, log: Path) -> None:
    def healthy() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            with FluxClient(url, timeout=2) as flux:
                flux.health()
        except ApiError:
            return False
        return True

    wait_until(healthy, what=f"{url}/health")


def _start_dev(tmp_path: Path, *extra: str) -> tuple[Any, str, Path]:
    port = free_port()
    log = tmp_path / "dev.log"
    args = ["dev", "--port", str(port), "--home", str(tmp_path / ".flux"), *extra]
    process = spawn([FLUX, *args], cwd=tmp_path, env=clean_env(), log=log)
    url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: process.poll() is not None or "Press Ctrl-C" in log.read_text(), what="flux dev"
    )
    assert process.poll() is None, log.read_text()
    return process, url, log


def _children(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def test_dev_runs_workflows_and_stops_cleanly_on_ctrl_c(cli: Cli, tmp_path: Path) -> None:
    process, url, log = _start_dev(tmp_path, "--workers", "2")
    try:
        output = log.read_text()
        assert f"API:      {url}" in output and f"Docs:     {url}/docs" in output

        def workers_connected() -> bool:
            with FluxClient(url) as flux:
                return sum(w.connected for w in flux.list_workers()) == 2

        wait_until(workers_connected, what="two dev workers")
        children = _children(process.pid)
        assert len(children) == 3  # the server and two workers
        # the workers found the bootstrap token the server generated into the home
        (tmp_path / "workflows.py").write_text(WORKFLOWS)
        assert cli("--server-url", url, "workflow", "register", "workflows.py").exit_code == 0
        result = cli("--server-url", url, "workflow", "run", "hello_world", '"dev"', "-m", "sync")
        assert result.exit_code == 0 and '"Hello, dev"' in result.stdout
    finally:
        code = stop_process(process, signal.SIGINT)
    assert code == 0, log.read_text()
    assert not [pid for pid in children if alive(pid)]
    assert "Flux stopped." in log.read_text()


def test_dev_stops_on_sigterm(tmp_path: Path) -> None:
    process, _, log = _start_dev(tmp_path, "--workers", "0")
    children = _children(process.pid)
    assert len(children) == 1
    assert stop_process(process, signal.SIGTERM) == 0, log.read_text()
    assert not alive(children[0])


def test_dev_names_a_child_that_dies_and_exits_1(tmp_path: Path) -> None:
    process, _, log = _start_dev(tmp_path, "--workers", "1")
    try:

        def worker_pid() -> int | None:
            for child in psutil.Process(process.pid).children():
                if "flux_worker" in " ".join(child.cmdline()):
                    return child.pid
            return None

        pid = wait_until(worker_pid, what="the dev worker")
        server = [c for c in _children(process.pid) if c != pid]
        psutil.Process(pid).kill()
        code = process.wait(60)
    finally:
        stop_process(process)
    output = log.read_text()
    assert code == 1, output
    assert (
        f"error: worker 'dev-worker-1' (pid {pid}) was killed by SIGKILL; stopping flux dev"
        in output
    )
    assert not [p for p in server if alive(p)]


def test_dev_says_when_the_server_cannot_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [FLUX, "dev", "--port", str(port), "--home", str(tmp_path / ".flux")],
            cwd=tmp_path,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )
    assert done.returncode == 1, done.stderr
    last = done.stderr.splitlines()[-1]
    assert last.startswith("error: the server (pid ")
    assert f"before answering at http://127.0.0.1:{port} (is the port in use?" in last
