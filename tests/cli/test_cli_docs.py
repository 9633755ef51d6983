"""Every ``flux ...`` example in docs/cli.md and packages/flux-cli/README.md runs here.

Examples are the lines of ```` ```bash ```` blocks. A trailing ``# exit code N`` comment gives the
expected exit code (default 0); ``<execution-id>`` stands for the id of the latest execution of
the workflow the command names. The one ```` ```python ```` block of docs/cli.md is the
``workflows.py`` the examples register.

Short commands run in order, in process, against a real server and worker: the configuration
points the default server URL at it (``FLUX_SERVER_HOST``/``FLUX_SERVER_PORT``), and
``http://localhost:8000`` in an example means that server. Long-running ones (``flux dev``,
``flux start ...``) each run as a program; port 8000/8080 in them means a free port, and each is
stopped by pid once it works.
"""

from __future__ import annotations

import re
import shlex
import signal
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli
from e2e_support import FLUX, needs_server
from flux.client import FluxClient
from flux.config import Configuration
from flux.errors import ApiError

from tests.support.cluster import (
    FluxCluster,
    clean_env,
    free_port,
    make_cluster,
    spawn,
    stop_process,
)
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "docs" / "cli.md", ROOT / "packages" / "flux-cli" / "README.md"]
LOCAL_URL = "http://localhost:8000"
PLACEHOLDER = "<execution-id>"
# The id in a run's output: the table's first line, or the JSON field.
EXECUTION_ID = r'^execution\s+(\S+)|"execution_id":\s*"([^"]+)"'


@dataclass(frozen=True)
class Example:
    where: str
    command: str
    exit_code: int

    @property
    def args(self) -> list[str]:
        argv = shlex.split(self.command)
        assert argv[0] == "flux", f"{self.where}: not a flux command: {self.command}"
        return argv[1:]

    @property
    def long_running(self) -> bool:
        return self.args[0] in ("dev", "start")


def _blocks(path: Path, language: str) -> list[tuple[int, list[str]]]:
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] | None = None
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if current is None and line.strip() == f"```{language}":
            current, first = [], number + 1
        elif current is not None and line.strip() == "```":
            blocks.append((first, current))
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def examples(path: Path) -> list[Example]:
    found = []
    for first, lines in _blocks(path, "bash"):
        for offset, line in enumerate(lines):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            command, _, comment = text.partition("  #")
            match = re.match(r"\s*exit code (\d+)", comment)
            where = f"{path.relative_to(ROOT)}:{first + offset}"
            found.append(Example(where, command.strip(), int(match.group(1)) if match else 0))
    return found


ALL = [example for path in DOCS for example in examples(path)]
SHORT = [e for e in ALL if not e.long_running]
LONG = [e for e in ALL if e.long_running]


def test_the_docs_have_examples_of_every_command() -> None:
    commands = {tuple(e.args[:2]) for e in ALL}
    for expected in [
        ("workflow", "list"),
        ("workflow", "register"),
        ("workflow", "show"),
        ("workflow", "run"),
        ("workflow", "resume"),
        ("workflow", "status"),
        ("workflow", "cancel"),
        ("workers", "list"),
        ("start", "server"),
        ("start", "worker"),
        ("start", "mcp"),
    ]:
        assert expected in commands
    assert any(e.args[0] == "dev" for e in ALL)
    assert len(_blocks(DOCS[0], "python")) == 1


@pytest.mark.e2e
@needs_server
def test_short_examples_run_in_order(
    cli: Cli, stack: FluxCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ((_, source),) = _blocks(DOCS[0], "python")
    (tmp_path / "workflows.py").write_text("\n".join(source) + "\n")
    monkeypatch.setenv("FLUX_SERVER_HOST", "127.0.0.1")
    monkeypatch.setenv("FLUX_SERVER_PORT", str(stack.port))
    Configuration.get().reset()
    latest: dict[str, str] = {}
    for example in SHORT:
        args = [arg.replace(LOCAL_URL, stack.url) for arg in example.args]
        if PLACEHOLDER in args:
            args[args.index(PLACEHOLDER)] = latest[args[2]]
        result = cli(*args)
        assert result.exit_code == example.exit_code, f"{example.where}: {result.output}"
        if result.exit_code != 0:
            assert len(result.stderr.splitlines()) == 1, f"{example.where}: {result.stderr}"
        if args[:2] == ["workflow", "run"] and result.exit_code == 0:
            match = re.search(EXECUTION_ID, result.stdout, re.M)
            assert match, f"{example.where}: no execution id in {result.stdout!r}"
            latest[args[2]] = match.group(1) or match.group(2)


@pytest.mark.e2e
@needs_server
@pytest.mark.parametrize("example", LONG, ids=[e.command for e in LONG])
def test_long_running_example(example: Example, tmp_path: Path) -> None:
    args = example.args
    if args[:2] == ["start", "mcp"]:
        _check_mcp(args, tmp_path)
    elif args[:2] == ["start", "worker"]:
        _check_worker(args, tmp_path)
    else:
        _check_server(args, tmp_path)


def _with_free_port(args: list[str]) -> tuple[list[str], int]:
    port = free_port()
    args = list(args)
    if "--port" in args:
        args[args.index("--port") + 1] = str(port)
    elif args[0] == "dev":
        args += ["--port", str(port)]
    return args, port


def _check_server(args: list[str], tmp_path: Path) -> None:
    """``flux dev`` and ``flux start server``: healthy (and dev's workers connected), then a
    clean stop."""
    args, port = _with_free_port(args)
    env = clean_env(
        FLUX_HOME=str(tmp_path / ".flux"),
        FLUX_CONFIG_DIR=str(tmp_path),
        FLUX_SERVER_PORT=str(port),
    )
    log = tmp_path / "flux.log"
    process = spawn([FLUX, *args], cwd=tmp_path, env=env, log=log)
    url = f"http://127.0.0.1:{port}"
    workers = int(args[args.index("--workers") + 1]) if "--workers" in args else 1
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                with FluxClient(url, timeout=2) as flux:
                    flux.health()
                    if args[0] == "dev":
                        return sum(w.connected for w in flux.list_workers()) == workers
            except ApiError:
                return False
            return True

        wait_until(ready, what=f"{' '.join(args)} to serve {url}")
    finally:
        code = stop_process(process, signal.SIGINT if args[0] == "dev" else signal.SIGTERM)
    # uvicorn re-raises SIGTERM once it has shut down gracefully
    assert code in (0, -signal.SIGTERM), log.read_text()


def _check_worker(args: list[str], tmp_path: Path) -> None:
    """``flux start worker``: it connects to a running server, then stops cleanly."""
    stack = make_cluster(tmp_path)
    stack.start_server()
    try:
        args = [arg.replace(LOCAL_URL, stack.url) for arg in args]
        env = clean_env(
            FLUX_HOME=str(stack.home),
            FLUX_CONFIG_DIR=str(tmp_path),
            FLUX_WORKERS__SERVER_URL=stack.url,
        )
        log = tmp_path / "worker.log"
        process = spawn([FLUX, *args], cwd=tmp_path, env=env, log=log)
        try:

            def connected() -> Any:
                assert process.poll() is None, log.read_text()
                with FluxClient(stack.url) as flux:
                    return [w for w in flux.list_workers() if w.connected]

            (worker,) = wait_until(connected, what="the worker to connect")
            if len(args) > 2 and not args[2].startswith("-"):
                assert worker.name == args[2]
            if "--capacity" in args:
                assert worker.capacity == int(args[args.index("--capacity") + 1])
        finally:
            assert stop_process(process) == 0, log.read_text()
    finally:
        stack.stop()


def _check_mcp(args: list[str], tmp_path: Path) -> None:
    """``flux start mcp``: flux-mcp accepts connections on its port, then stops cleanly (the
    tools themselves are tested in tests/mcp)."""
    args, port = _with_free_port(args)
    env = clean_env(FLUX_CONFIG_DIR=str(tmp_path), FLUX_MCP__PORT=str(port))
    log = tmp_path / "mcp.log"
    process = spawn([FLUX, *args], cwd=tmp_path, env=env, log=log)
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", port)) == 0

        wait_until(ready, what=f"{' '.join(args)} to listen on port {port}")
    finally:
        code = stop_process(process)
    assert code in (0, -signal.SIGTERM), log.read_text()


def test_the_readme_group_example_plugs_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's `flux_cli/schedules.py` sketch, loaded as a module, becomes `flux schedule`."""
    from flux_cli.app import build_app
    from typer.testing import CliRunner

    ((_, source),) = _blocks(DOCS[1], "python")
    (tmp_path / "readme_schedule_group.py").write_text("\n".join(source) + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    app = build_app(("flux_cli.workflows", "readme_schedule_group"))
    runner = CliRunner()
    assert "schedule" in runner.invoke(app, ["--help"]).stdout
    assert runner.invoke(app, ["schedule", "list", "--help"]).exit_code == 0
    unreachable = runner.invoke(
        app, ["--server-url", f"http://127.0.0.1:{free_port()}", "schedule", "list"]
    )
    assert unreachable.exit_code == 0  # the sketch makes no call yet
