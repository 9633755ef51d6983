"""The root command: help, version, command-group plug-ins and how errors are reported."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cli_support import Cli, FakeServer
from flux_cli.app import OPTIONAL_MODULES, build_app
from typer.testing import CliRunner

from tests.support.cluster import free_port

GROUPS = ("workflow", "workers", "start", "dev")


def test_help_lists_every_group(cli: Cli) -> None:
    result = cli("--help")
    assert result.exit_code == 0
    for group in GROUPS:
        assert group in result.stdout
    assert "--server-url" in result.stdout and "--debug" in result.stdout


def test_console_script_help_lists_every_group() -> None:
    """The installed `flux` script itself (what `make` and users run)."""
    script = Path(sys.executable).with_name("flux")
    done = subprocess.run(
        [str(script), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for group in GROUPS:
        assert group in done.stdout


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flux_cli", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("flux-cli ")


def test_bare_flux_shows_help(cli: Cli) -> None:
    result = cli()
    assert "workflow" in result.stdout
    assert result.exit_code == 2


def test_each_group_has_help(cli: Cli) -> None:
    for args in (["workflow"], ["workers"], ["start"], ["dev"]):
        result = cli(*args, "--help")
        assert result.exit_code == 0, result.output
        assert "Usage: flux " + args[0] in result.stdout


def test_optional_groups_appear_only_when_their_module_exists() -> None:
    help_text = CliRunner().invoke(build_app(), ["--help"]).stdout
    for module, group in (("flux_cli.schedules", "schedule"), ("flux_cli.secrets", "secrets")):
        assert module in OPTIONAL_MODULES
        present = importlib.util.find_spec(module) is not None
        assert (f" {group} " in help_text) == present


def test_a_command_module_plugs_in_with_register(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flux_cli_demo_group.py").write_text(
        textwrap.dedent(
            """
            import typer

            app = typer.Typer(name="demo", help="A demo group.")

            @app.command("hello")
            def hello() -> None:
                typer.echo("hello from demo")

            def register(root: typer.Typer) -> None:
                root.add_typer(app)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    app = build_app(("flux_cli.workflows", "flux_cli_demo_group"))
    runner = CliRunner()
    assert "demo" in runner.invoke(app, ["--help"]).stdout
    result = runner.invoke(app, ["demo", "hello"])
    assert result.exit_code == 0
    assert result.stdout == "hello from demo\n"


def test_a_plugged_in_command_gets_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "flux_cli_failing_group.py").write_text(
        textwrap.dedent(
            """
            import typer
            from flux.errors import ApiError

            app = typer.Typer(name="boom")

            @app.command("now")
            def now() -> None:
                raise ApiError("schedule 'x' not found", 404)

            @app.command("other")
            def other() -> None:
                pass

            def register(root: typer.Typer) -> None:
                root.add_typer(app)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    result = CliRunner().invoke(build_app(("flux_cli_failing_group",)), ["boom", "now"])
    assert result.exit_code == 1
    assert result.stderr == "error: schedule 'x' not found\n"


def test_version(cli: Cli) -> None:
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout.startswith("flux-cli ")


def test_unreachable_server_is_one_line(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("--server-url", url, "workflow", "list")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == (
        f"error: cannot reach the Flux server at {url}: is it running? "
        "(flux dev / flux start server)\n"
    )


def test_several_server_urls_are_tried_in_turn(cli: Cli, cluster) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    result = cli("--server-url", down, "--server-url", cluster.url, "workflow", "list")
    assert (result.exit_code, result.stderr) == (0, "")
    other = f"http://127.0.0.1:{free_port()}"
    result = cli("--server-url", f"{down},{other}", "workflow", "list")
    assert result.exit_code == 1
    assert result.stderr == (
        f"error: cannot reach any of the Flux servers at {down}, {other}: are they running?\n"
    )
    result = cli("--server-url", "127.0.0.1:8000", "workflow", "list")
    assert result.exit_code == 2
    assert "must start with http:// or https://" in result.stderr


def test_unreachable_default_url_comes_from_the_configuration(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    monkeypatch.setenv("FLUX_SERVER_HOST", "0.0.0.0")
    monkeypatch.setenv("FLUX_SERVER_PORT", str(port))
    result = cli("workers", "list", "--format", "json")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert f"cannot reach the Flux server at http://127.0.0.1:{port}:" in result.stderr


def test_debug_adds_the_traceback(cli: Cli) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("--debug", "--server-url", url, "workflow", "list")
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: cannot reach the Flux server")


def test_server_error_message_is_shown_as_is(cli: Cli, fake: FakeServer) -> None:
    fake.fail_with = (404, "workflow 'nope' not found")
    result = cli("workflow", "show", "nope", fake=fake)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "error: workflow 'nope' not found\n"


def test_multi_line_server_message_becomes_one_line(cli: Cli, fake: FakeServer) -> None:
    fake.fail_with = (400, "the file has a syntax error:\n  line 3\n    def (")
    result = cli("workflow", "list", fake=fake)
    assert result.exit_code == 1
    assert result.stderr == "error: the file has a syntax error: line 3 def (\n"


def test_an_answer_outside_the_protocol_is_one_line(cli: Cli, fake: FakeServer) -> None:
    fake.garbage = True
    result = cli("workflow", "show", "hello_world", fake=fake)
    assert result.exit_code == 1
    assert len(result.stderr.splitlines()) == 1
    assert "sent an answer this flux-cli does not understand" in result.stderr
    assert "Traceback" not in result.stderr


def test_invalid_configuration_is_a_usage_error(cli: Cli, isolated_config: Path) -> None:
    (isolated_config / "flux.toml").write_text('[flux]\nserver_port = "eighty"\n')
    result = cli("workflow", "list")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: invalid Flux configuration: server_port")
    assert len(result.stderr.splitlines()) == 1


def test_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("workflow", "launch")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: No such command 'launch'")
    assert "(see 'flux workflow --help')" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_missing_argument_is_a_usage_error(cli: Cli) -> None:
    result = cli("workflow", "status", "hello_world")
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "EXECUTION_ID" in result.stderr
