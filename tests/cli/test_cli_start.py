"""``flux start ...`` and ``flux dev`` without running anything: the command lines they would
exec, and the messages when a package is missing."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from typing import NoReturn

import pytest
import typer
from cli_support import Cli
from flux_cli import start
from flux_cli.components import MCP, SERVER, WORKER


@pytest.fixture
def execs(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Command lines `flux start` would exec (it exits 0 instead of replacing the process)."""
    seen: list[list[str]] = []

    def fake_exec(argv: list[str]) -> NoReturn:
        seen.append(argv)
        raise typer.Exit(0)

    monkeypatch.setattr(start, "exec_program", fake_exec)
    return seen


def _missing(monkeypatch: pytest.MonkeyPatch, module: str) -> None:
    # A None entry makes the import system (and find_spec) treat the package as absent.
    monkeypatch.setitem(sys.modules, module, None)


def test_start_mcp_without_flux_mcp_says_what_to_install(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, execs: list[list[str]]
) -> None:
    _missing(monkeypatch, "flux_mcp")
    result = cli("start", "mcp")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        "error: flux start mcp needs the Flux MCP server, which is not installed: "
        "pip install flux-mcp\n"
    )
    assert execs == []


@pytest.mark.parametrize(
    ("command", "module", "package"),
    [("server", "flux_server", "flux-server"), ("worker", "flux_worker", "flux-worker")],
)
def test_start_without_the_package_says_what_to_install(
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    execs: list[list[str]],
    command: str,
    module: str,
    package: str,
) -> None:
    _missing(monkeypatch, module)
    result = cli("start", command)
    assert result.exit_code == 1
    assert result.stderr.endswith(f"which is not installed: pip install {package}\n")
    assert len(result.stderr.splitlines()) == 1
    assert execs == []


def test_dev_without_the_server_says_what_to_install(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    _missing(monkeypatch, "flux_server")
    result = cli("dev", "--port", "0")
    assert result.exit_code == 1
    assert result.stderr == (
        "error: flux dev needs the Flux server, which is not installed: pip install flux-server\n"
    )


def test_start_server_forwards_only_the_options_given(cli: Cli, execs: list[list[str]]) -> None:
    if not SERVER.installed():
        pytest.skip("flux-server is not installed (python -m flux_server is missing)")
    assert cli("start", "server").exit_code == 0
    args = ("start", "server", "--host", "0.0.0.0", "--port", "8080")
    assert cli(*args, "--database-url", "sqlite:///x.db").exit_code == 0
    assert execs == [
        [sys.executable, "-m", "flux_server"],
        [
            sys.executable,
            "-m",
            "flux_server",
            "--host",
            "0.0.0.0",
            "--port",
            "8080",
            "--database-url",
            "sqlite:///x.db",
        ],
    ]


def test_start_worker_forwards_its_arguments_unchanged(cli: Cli, execs: list[list[str]]) -> None:
    assert WORKER.installed()
    args = ["w-01", "--server-url", "http://server:8000", "--token", "t", "--capacity", "3"]
    assert cli("start", "worker", *args).exit_code == 0
    assert execs[-1] == WORKER.argv(*args)
    assert cli("start", "worker", "--help").exit_code == 0
    assert execs[-1] == WORKER.argv("--help")


def test_start_worker_takes_several_global_server_urls(cli: Cli, execs: list[list[str]]) -> None:
    given = ("--server-url", "http://a:1", "--server-url", "http://b:2,http://a:1")
    assert cli(*given, "start", "worker").exit_code == 0
    assert execs[-1] == WORKER.argv("--server-url", "http://a:1,http://b:2")


def test_start_worker_uses_the_global_server_url(cli: Cli, execs: list[list[str]]) -> None:
    assert cli("--server-url", "http://elsewhere:9000", "start", "worker").exit_code == 0
    assert execs[-1] == WORKER.argv("--server-url", "http://elsewhere:9000")
    assert cli("--server-url", "http://elsewhere:9000", "start", "worker", "w1").exit_code == 0
    assert execs[-1] == WORKER.argv("--server-url", "http://elsewhere:9000", "w1")
    assert cli("start", "worker").exit_code == 0
    assert execs[-1] == WORKER.argv()
    for given in (["--server-url", "http://given:1"], ["--server-url=http://given:1"]):
        assert (
            cli("--server-url", "http://elsewhere:9000", "start", "worker", *given).exit_code == 0
        )
        assert execs[-1] == WORKER.argv(*given)


# A value flux-worker takes for each option that does not take any string.
_SAMPLE_VALUES = {
    "--capacity": "3",
    "--isolation": "subprocess",
    "--log-level": "DEBUG",
    "--metrics-port": "9101",
}
_INTEGERS = {"--capacity", "--metrics-port"}


def test_start_worker_accepts_every_option_flux_worker_lists(
    cli: Cli, execs: list[list[str]]
) -> None:
    """The options are flux-worker's own, read from its --help: each reaches it unchanged,
    and flux-worker parses what arrives."""
    from flux_worker.__main__ import parse_args

    done = subprocess.run(
        WORKER.argv("--help"), capture_output=True, text=True, timeout=60, check=True
    )
    options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", done.stdout)) - {"--help"})
    assert {"--server-url", "--token", "--capacity", "--home", "--isolation"} <= set(options)
    for option in options:
        value = _SAMPLE_VALUES.get(option, "x")
        result = cli("start", "worker", "w1", option, value)
        assert result.exit_code == 0, (option, result.stderr)
        assert execs[-1] == WORKER.argv("w1", option, value)
        parsed = parse_args(execs[-1][3:])
        expected = int(value) if option in _INTEGERS else value
        if option == "--server-url":  # repeatable: a list
            expected = [value]
        assert getattr(parsed, option[2:].replace("-", "_")) == expected


def test_start_mcp_forwards_its_arguments_unchanged(cli: Cli, execs: list[list[str]]) -> None:
    assert MCP.installed()
    args = ["--host", "localhost", "--port", "8080", "--transport", "sse", "--read-only"]
    assert cli("start", "mcp", *args).exit_code == 0
    assert execs[-1] == MCP.argv(*args)
    assert cli("start", "mcp", "--help").exit_code == 0
    assert execs[-1] == MCP.argv("--help")
    # flux-mcp checks its own options: an unknown transport reaches it and it refuses.
    assert cli("start", "mcp", "--transport", "carrier-pigeon").exit_code == 0
    assert execs[-1] == MCP.argv("--transport", "carrier-pigeon")


def test_start_mcp_uses_the_global_server_url(cli: Cli, execs: list[list[str]]) -> None:
    assert cli("--server-url", "http://elsewhere:9000", "start", "mcp").exit_code == 0
    assert execs[-1] == MCP.argv("--server-url", "http://elsewhere:9000")
    given = ["--server-url=http://given:1", "--port", "1"]
    assert cli("--server-url", "http://elsewhere:9000", "start", "mcp", *given).exit_code == 0
    assert execs[-1] == MCP.argv(*given)


_MCP_SAMPLES = {
    "--port": "8081",
    "--transport": "stdio",
    "--sync-wait-seconds": "2.5",
    "--log-level": "DEBUG",
}


def test_start_mcp_accepts_every_option_flux_mcp_lists(cli: Cli, execs: list[list[str]]) -> None:
    """The options are flux-mcp's own, read from its --help: each reaches it unchanged, and
    flux-mcp parses what arrives."""
    from flux_mcp.__main__ import parse_args

    done = subprocess.run(
        MCP.argv("--help"), capture_output=True, text=True, timeout=60, check=True
    )
    options = sorted(set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", done.stdout)) - {"--help"})
    assert {"--host", "--port", "--transport", "--server-url", "--read-only"} <= set(options)
    flags = {"--read-only", "--insecure"}
    for option in options:
        given = [option] if option in flags else [option, _MCP_SAMPLES.get(option, "x")]
        result = cli("start", "mcp", *given)
        assert result.exit_code == 0, (option, result.stderr)
        assert execs[-1] == MCP.argv(*given)
        parsed = vars(parse_args(execs[-1][3:]))
        assert any(value not in (None, False) for value in parsed.values()), option


def test_the_cli_never_imports_a_sibling_package() -> None:
    """Only flux-sdk may be imported: the others are started as programs, never imported."""
    code = textwrap.dedent(
        """
        import sys
        from typer.testing import CliRunner
        from flux_cli import start
        from flux_cli.app import app
        from flux_cli.components import MCP, SERVER, WORKER

        def exec_program(argv):  # see the command line, do not replace this process
            raise SystemExit(0)

        start.exec_program = exec_program

        runner = CliRunner()
        for args in (
            ["--help"],
            ["start", "worker", "--help"],
            ["start", "mcp", "--help"],
            ["dev", "--help"],
            ["--server-url", "http://127.0.0.1:9", "workflow", "list"],
        ):
            runner.invoke(app, args)
        SERVER.installed(), WORKER.installed(), MCP.installed()
        # mcp: the MCP SDK takes a second to import; only flux-mcp's process pays for it.
        siblings = ("flux_server", "flux_worker", "flux_mcp", "flux_agents", "mcp")
        print(sorted(m for m in sys.modules if m.split(".")[0] in siblings))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "[]\n"


@pytest.mark.parametrize(("command", "usage"), [("mcp", "flux-mcp"), ("worker", "flux-worker")])
def test_start_mcp_and_worker_exec_before_the_cli_loads(command: str, usage: str) -> None:
    """They pass their arguments on unchanged, so ``flux`` execs the program before importing
    Typer and the command groups, which a start that must be ready in 2 s does not need."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "flux_cli", "start", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith(f"usage: {usage}")
    # Only the first process was started with -X importtime: these are the CLI's imports.
    imported = {line.split("|")[-1].strip() for line in done.stderr.splitlines() if "|" in line}
    assert "flux_cli.components" in imported
    assert not {"typer", "rich", "flux_cli.app"} & imported
    # A global option takes the full path, to the same program.
    full = subprocess.run(
        [sys.executable, "-m", "flux_cli", "--debug", "start", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert full.stdout == done.stdout
