"""``flux schedule`` and ``flux secrets`` against a real server and worker (processes stopped by
pid): a schedule created from the command line really fires, and errors exit as documented."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cli_support import Cli
from e2e_support import FLUX, needs_server

from tests.support.cluster import FluxCluster, clean_env
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, needs_server]


def flux_json(cli: Cli, stack: FluxCluster, *args: str) -> Any:
    result = cli("--server-url", stack.url, *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_schedule_made_on_the_command_line_fires(cli: Cli, stack: FluxCluster) -> None:
    url = ("--server-url", stack.url)
    assert cli(*url, "workflow", "register", "workflows.py").exit_code == 0
    created = flux_json(
        cli, stack, "schedule", "create", "hello_world", "every_second",
        "--interval-seconds", "1", "--input", '"Flux"', "--description", "demo",
    )  # fmt: skip
    assert (created["state"], created["description"]) == ("active", "demo")

    def completed() -> list[dict[str, Any]]:
        runs = flux_json(cli, stack, "schedule", "history", "every_second")
        return [r for r in runs if r["state"] == "completed"]

    (first, *_) = wait_until(completed, what="a completed scheduled run", timeout=60)
    status = flux_json(cli, stack, "workflow", "status", "hello_world", first["execution_id"])
    assert status["output"] == "Hello, Flux"

    paused = flux_json(cli, stack, "schedule", "pause", "every_second")
    assert (paused["state"], paused["next_run_at"]) == ("paused", None)
    listed = cli(*url, "schedule", "list")
    assert listed.exit_code == 0 and "every_second" in listed.stdout and "paused" in listed.stdout
    assert flux_json(cli, stack, "schedule", "list", "--active-only") == []
    shown = cli(*url, "schedule", "show", created["id"])
    assert shown.exit_code == 0 and "every 1s" in shown.stdout
    history = cli(*url, "schedule", "history", "every_second", "--limit", "1")
    assert history.exit_code == 0 and "completed" in history.stdout

    resumed = flux_json(cli, stack, "schedule", "resume", "every_second")
    assert resumed["state"] == "active"
    deleted = cli(*url, "schedule", "delete", "every_second")
    assert deleted.exit_code == 0 and "Deleted schedule 'every_second'" in deleted.stdout
    assert flux_json(cli, stack, "schedule", "list") == []


def test_schedule_errors(cli: Cli, stack: FluxCluster) -> None:
    url = ("--server-url", stack.url)
    assert cli(*url, "workflow", "register", "workflows.py").exit_code == 0
    unknown = cli(*url, "schedule", "create", "no_such_flow", "s", "--cron", "@daily")
    assert unknown.exit_code == 1
    assert unknown.stderr.strip().startswith("error: no workflow named 'no_such_flow'")
    missing = cli(*url, "schedule", "history", "nope")
    assert missing.exit_code == 1 and "no schedule 'nope'" in missing.stderr


def test_secrets_round_trip(cli: Cli, stack: FluxCluster) -> None:
    url = ("--server-url", stack.url)
    value = "correct-horse-battery-staple"
    assert cli(*url, "secrets", "set", "API_KEY", value).exit_code == 0
    listed = cli(*url, "secrets", "list")
    assert "API_KEY" in listed.stdout and value not in listed.output
    refused = cli(*url, "secrets", "get", "API_KEY", input="n\n")
    assert refused.exit_code == 1 and value not in refused.stdout
    shown = cli(*url, "secrets", "get", "API_KEY", "--yes")
    assert (shown.exit_code, shown.stdout) == (0, f"{value}\n")
    assert cli(*url, "secrets", "remove", "API_KEY").exit_code == 0
    gone = cli(*url, "secrets", "get", "API_KEY", "--yes")
    assert gone.exit_code == 1 and "secret not found: 'API_KEY'" in gone.stderr


def test_the_flux_program_exit_codes(stack: FluxCluster, tmp_path: Path) -> None:
    """The installed ``flux`` script: an invalid cron is a usage error (2) with the reason."""

    def flux(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FLUX, "--server-url", stack.url, *args],
            cwd=tmp_path,
            env=clean_env(FLUX_CONFIG_DIR=str(tmp_path)),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    bad = flux("schedule", "create", "hello_world", "s", "--cron", "0 25 * * *")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: invalid cron expression '0 25 * * *'")
    assert len(bad.stderr.splitlines()) == 1
    ok = flux("secrets", "list")
    assert ok.returncode == 0 and "No secrets" in ok.stdout
