"""``flux schedule`` and ``flux secrets`` in process against a fake server (protocol models behind
an ``httpx.MockTransport``): requests sent, output, and one-line errors with exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cli_support import Cli
from flux.domain import ExecutionState
from flux.protocol import (
    ScheduleDeleted,
    ScheduleInfo,
    ScheduleRun,
    ScheduleRunState,
    ScheduleState,
    SecretDeleted,
    SecretInfo,
    SecretValue,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
SECRET = "hunter2-but-longer"


def schedule(name: str = "daily_report", **changes: Any) -> ScheduleInfo:
    values: dict[str, Any] = {
        "id": f"id-{name}",
        "name": name,
        "workflow_name": "my_workflow",
        "schedule_config": {
            "type": "cron",
            "cron_expression": "0 9 * * MON-FRI",
            "timezone": "UTC",
        },
        "description": "Daily business report",
        "state": ScheduleState.ACTIVE,
        "next_run_at": T0,
        "run_count": 3,
        "failure_count": 1,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(changes)
    return ScheduleInfo(**values)


def run(state: ScheduleRunState, **changes: Any) -> ScheduleRun:
    values: dict[str, Any] = {
        "id": f"run-{state}",
        "schedule_id": "id-daily_report",
        "execution_id": "exec-1",
        "scheduled_for": T0,
        "fired_at": T0,
        "state": state,
        "execution_state": ExecutionState.COMPLETED,
    }
    values.update(changes)
    return ScheduleRun(**values)


@dataclass
class FakeFlux:
    """Answers the schedule and admin endpoints; records every request."""

    fail_with: tuple[int, str] | None = None
    requests: list[httpx.Request] = field(default_factory=list)
    secrets: dict[str, Any] = field(default_factory=lambda: {"API_KEY": SECRET})

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def body(self, index: int = -1) -> Any:
        return json.loads(self.requests[index].content)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_with is not None:
            code, message = self.fail_with
            return httpx.Response(
                code, json={"type": "X", "code": "x", "message": message, "details": {}}
            )
        parts = request.url.path.strip("/").split("/")
        method = request.method
        match parts:
            case ["schedules"] if method == "GET":
                return _json([schedule(), schedule("hourly_sync", state=ScheduleState.PAUSED)])
            case ["schedules"]:
                body = json.loads(request.content)
                created = schedule(
                    body["name"],
                    workflow_name=body["workflow_name"],
                    schedule_config=body["schedule_config"],
                    description=body["description"],
                    input=body["input"],
                    run_count=0,
                    failure_count=0,
                )
                return _json(created, 201)
            case ["schedules", ref] if method == "PATCH":
                changes = json.loads(request.content)
                config = changes.pop("schedule_config", None)
                if config is not None:
                    changes["schedule_config"] = config
                if "timezone" in changes:
                    zone = changes.pop("timezone")
                    changes["schedule_config"] = {**schedule().schedule_config, "timezone": zone}
                return _json(schedule(ref, **changes))
            case ["schedules", ref] if method == "DELETE":
                return _json(ScheduleDeleted(id=f"id-{ref}", name=ref))
            case ["schedules", ref]:
                return _json(schedule(ref))
            case ["schedules", ref, "pause"]:
                return _json(schedule(ref, state=ScheduleState.PAUSED, next_run_at=None))
            case ["schedules", ref, "resume"]:
                return _json(schedule(ref))
            case ["schedules", _, "history"]:
                return _json(
                    [
                        run(ScheduleRunState.STARTED, execution_state=ExecutionState.RUNNING),
                        run(ScheduleRunState.COMPLETED),
                        run(
                            ScheduleRunState.SKIPPED,
                            execution_id=None,
                            execution_state=None,
                            error="1 executions of this schedule are unfinished",
                        ),
                    ]
                )
            case ["admin", "secrets"] if method == "GET":
                return _json([SecretInfo(name=n, updated_at=T0) for n in sorted(self.secrets)])
            case ["admin", "secrets"]:
                body = json.loads(request.content)
                self.secrets[body["name"]] = body["value"]
                return _json(SecretInfo(name=body["name"], updated_at=T0))
            case ["admin", "secrets", name] if name not in self.secrets:
                message = f"secret not found: {name!r}"
                body = {"type": "SecretNotFoundError", "code": "x", "message": message}
                return httpx.Response(404, json={**body, "details": {}})
            case ["admin", "secrets", name] if method == "DELETE":
                del self.secrets[name]
                return _json(SecretDeleted(name=name))
            case ["admin", "secrets", name]:
                return _json(SecretValue(name=name, value=self.secrets[name]))
        return httpx.Response(404, json={"type": "x", "code": "x", "message": "no route"})


def _json(value: Any, status: int = 200) -> httpx.Response:
    if isinstance(value, list):
        return httpx.Response(status, json=[item.model_dump(mode="json") for item in value])
    return httpx.Response(status, json=value.model_dump(mode="json"))


@pytest.fixture
def flux() -> FakeFlux:
    return FakeFlux()


def one_line_error(result: Any, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


# -- flux schedule ------------------------------------------------------------------------------


def test_list_table_json_and_filters(cli: Cli, flux: FakeFlux) -> None:
    result = cli("schedule", "list", fake=flux)
    assert result.exit_code == 0, result.output
    assert "daily_report" in result.stdout and "hourly_sync" in result.stdout
    assert "cron '0 9 * * MON-FRI' (UTC)" in result.stdout
    assert "paused" in result.stdout and "id-daily_report" in result.stdout
    assert flux.requests[-1].url.params["active_only"] == "false"

    result = cli("schedule", "list", "--workflow", "my_workflow", "--active-only", fake=flux)
    assert result.exit_code == 0
    params = flux.requests[-1].url.params
    assert (params["workflow_id"], params["active_only"]) == ("my_workflow", "true")

    result = cli("schedule", "list", "--format", "json", fake=flux)
    listed = json.loads(result.stdout)
    assert [s["name"] for s in listed] == ["daily_report", "hourly_sync"]


def test_create_cron_as_in_the_spec(cli: Cli, flux: FakeFlux) -> None:
    result = cli(
        "schedule", "create", "my_workflow", "daily_report",
        "--cron", "0 9 * * MON-FRI", "--timezone", "UTC",
        "--description", "Daily business report",
        fake=flux,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert flux.body() == {
        "workflow_name": "my_workflow",
        "name": "daily_report",
        "schedule_config": {
            "type": "cron",
            "cron_expression": "0 9 * * MON-FRI",
            "timezone": "UTC",
        },
        "description": "Daily business report",
        "input": None,
    }
    assert "daily_report" in result.stdout and "Daily business report" in result.stdout


def test_create_interval_once_and_input(cli: Cli, flux: FakeFlux) -> None:
    result = cli(
        "schedule", "create", "my_workflow", "hourly_sync",
        "--interval-hours", "1", "--interval-minutes", "30", "--input", '{"full": true}',
        "--format", "json",
        fake=flux,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = flux.body()
    assert body["schedule_config"]["type"] == "interval"
    assert body["schedule_config"]["interval_seconds"] == 5400
    assert body["input"] == {"full": True}
    assert json.loads(result.stdout)["name"] == "hourly_sync"

    result = cli(
        "schedule", "create", "my_workflow", "new_year",
        "--once", "2030-01-01T09:00:00", "--timezone", "Europe/Lisbon",
        fake=flux,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert flux.body()["schedule_config"] == {
        "type": "once",
        "run_at": "2030-01-01T09:00:00+00:00",  # Lisbon is on UTC in winter
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cron", "61 * * * *"], "invalid cron expression '61 * * * *'"),
        (["--cron", "0 9 * *"], "expected five fields"),
        (["--cron", "0 9 * * *", "--timezone", "Mars/Olympus"], "unknown timezone 'Mars/Olympus'"),
        (["--interval-seconds", "0"], "longer than zero"),
        (["--interval-minutes", "-1"], "must not be negative"),
        (["--once", "next tuesday"], "next tuesday"),
        ([], "give exactly one of --cron"),
        (["--cron", "@daily", "--interval-hours", "1"], "got --cron and --interval-*"),
        (["--cron", "@daily", "--input", "{bad"], "not valid JSON"),
    ],
)
def test_create_usage_errors_exit_2_without_a_request(
    cli: Cli, flux: FakeFlux, args: list[str], message: str
) -> None:
    result = cli("schedule", "create", "my_workflow", "s", *args, fake=flux)
    assert message in one_line_error(result, 2)
    assert flux.requests == []


def test_show_pause_resume_delete(cli: Cli, flux: FakeFlux) -> None:
    shown = cli("schedule", "show", "daily_report", fake=flux)
    assert shown.exit_code == 0, shown.output
    for text in ("id-daily_report", "my_workflow", "2025-01-02 03:04:05Z", "failures"):
        assert text in shown.stdout
    paused = cli("schedule", "pause", "daily_report", "--format", "json", fake=flux)
    assert json.loads(paused.stdout)["state"] == "paused"
    assert flux.requests[-1].method == "POST"
    assert flux.requests[-1].url.path == "/schedules/daily_report/pause"
    resumed = cli("schedule", "resume", "id-daily_report", fake=flux)
    assert resumed.exit_code == 0 and "active" in resumed.stdout
    deleted = cli("schedule", "delete", "daily_report", fake=flux)
    assert deleted.exit_code == 0
    assert "Deleted schedule 'daily_report'" in deleted.stdout
    assert flux.requests[-1].method == "DELETE"


def test_update_sends_only_what_is_given(cli: Cli, flux: FakeFlux) -> None:
    result = cli(
        "schedule", "update", "daily_report", "--cron", "0 10 * * *", "--description", "Later",
        fake=flux,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    request = flux.requests[-1]
    assert (request.method, request.url.path) == ("PATCH", "/schedules/daily_report")
    # No zone given: none is sent, and the server keeps the schedule's own.
    assert flux.body() == {
        "schedule_config": {"type": "cron", "cron_expression": "0 10 * * *"},
        "description": "Later",
    }
    assert "cron '0 10 * * *' (UTC)" in result.stdout and "Later" in result.stdout

    cli("schedule", "update", "id-daily_report", "--timezone", "Europe/Lisbon", fake=flux)
    assert flux.body() == {"timezone": "Europe/Lisbon"}

    result = cli(
        "schedule", "update", "daily_report",
        "--interval-minutes", "90", "--timezone", "Asia/Tokyo",
        "--input", '{"full": true}', "--catch-up", "skip", "--format", "json",
        fake=flux,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert flux.body() == {
        "schedule_config": {
            "type": "interval",
            "interval_seconds": 5400,
            "timezone": "Asia/Tokyo",
            "start_at": None,
        },
        "input": {"full": True},
        "catch_up": "skip",
    }
    shown = json.loads(result.stdout)
    assert (shown["catch_up"], shown["input"]) == ("skip", {"full": True})

    # A once time without an offset goes as given, for the server to read in the zone.
    cli("schedule", "update", "daily_report", "--once", "2030-01-01T09:00:00", fake=flux)
    assert flux.body() == {"schedule_config": {"type": "once", "run_at": "2030-01-01T09:00:00"}}

    # Clearing: an empty description, null input, the server's catch-up policy.
    result = cli(
        "schedule", "update", "daily_report",
        "--description", "", "--input", "null", "--catch-up", "default",
        fake=flux,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert flux.body() == {"description": None, "input": None, "catch_up": None}
    assert "default (the server's scheduling.catch_up)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "nothing to change"),
        (["--cron", "61 * * * *"], "invalid cron expression '61 * * * *'"),
        (["--timezone", "Mars/Olympus"], "unknown timezone 'Mars/Olympus'"),
        (["--cron", "@daily", "--timezone", "Mars/Olympus"], "unknown timezone 'Mars/Olympus'"),
        (["--cron", "@daily", "--once", "2030-01-01"], "give at most one of --cron"),
        (["--interval-seconds", "0"], "longer than zero"),
        (["--once", "next tuesday"], "next tuesday"),
        (["--input", "{bad"], "not valid JSON"),
        (["--catch-up", "sometimes"], "--catch-up"),
    ],
)
def test_update_usage_errors_exit_2_without_a_request(
    cli: Cli, flux: FakeFlux, args: list[str], message: str
) -> None:
    result = cli("schedule", "update", "daily_report", *args, fake=flux)
    assert message in one_line_error(result, 2)
    assert flux.requests == []


def test_update_server_errors_are_one_line(cli: Cli, flux: FakeFlux) -> None:
    flux.fail_with = (400, "run_at 2001-01-01T00:00:00+00:00 is in the past; give a future time")
    result = cli("schedule", "update", "launch", "--once", "2001-01-01T00:00:00Z", fake=flux)
    assert "is in the past" in one_line_error(result, 1)
    flux.fail_with = (404, "no schedule 'nope' (by id or name)")
    result = cli("schedule", "update", "nope", "--description", "x", fake=flux)
    assert "no schedule 'nope'" in one_line_error(result, 1)


def test_history(cli: Cli, flux: FakeFlux) -> None:
    result = cli("schedule", "history", "daily_report", "--limit", "20", fake=flux)
    assert result.exit_code == 0, result.output
    assert flux.requests[-1].url.params["limit"] == "20"
    assert "started (RUNNING)" in result.stdout
    assert "completed" in result.stdout and "skipped" in result.stdout
    assert "1 executions of this schedule are unfinished" in result.stdout
    as_json = cli("schedule", "history", "daily_report", "--format", "json", fake=flux)
    assert [r["state"] for r in json.loads(as_json.stdout)] == ["started", "completed", "skipped"]
    assert flux.requests[-1].url.params["limit"] == "20"  # the default
    assert "--limit" in one_line_error(cli("schedule", "history", "x", "--limit", "0"), 2)


def test_server_errors_are_one_line(cli: Cli, flux: FakeFlux) -> None:
    flux.fail_with = (
        404,
        "no schedule 'nope' (by id or name); list them with `flux schedule list`",
    )
    assert "no schedule 'nope'" in one_line_error(cli("schedule", "show", "nope", fake=flux), 1)
    flux.fail_with = (409, "a schedule named 'taken' exists; pick another name")
    result = cli("schedule", "create", "wf", "taken", "--cron", "@daily", fake=flux)
    assert "'taken' exists" in one_line_error(result, 1)


def test_unreachable_server(cli: Cli) -> None:
    result = cli("--server-url", "http://127.0.0.1:9", "schedule", "list")
    assert "cannot reach the Flux server at http://127.0.0.1:9" in one_line_error(result, 1)


# -- flux secrets -------------------------------------------------------------------------------


def test_secrets_list_shows_names_only(cli: Cli, flux: FakeFlux) -> None:
    result = cli("secrets", "list", fake=flux)
    assert result.exit_code == 0 and "API_KEY" in result.stdout
    assert SECRET not in result.output
    as_json = json.loads(cli("secrets", "list", "--format", "json", fake=flux).stdout)
    assert as_json == [{"name": "API_KEY", "updated_at": "2025-01-02T03:04:05Z"}]
    flux.secrets.clear()
    assert "No secrets" in cli("secrets", "list", fake=flux).stdout


def test_secrets_set_never_prints_the_value(cli: Cli, flux: FakeFlux) -> None:
    result = cli("secrets", "set", "DB_PASSWORD", "s3cr3t-value", fake=flux)
    assert result.exit_code == 0, result.output
    assert flux.body() == {"name": "DB_PASSWORD", "value": "s3cr3t-value"}
    assert "s3cr3t-value" not in result.output and "'DB_PASSWORD' saved" in result.stdout
    from_stdin = cli("secrets", "set", "TOKEN", "-", input="from-stdin\n", fake=flux)
    assert from_stdin.exit_code == 0
    assert flux.secrets["TOKEN"] == "from-stdin"


def test_secrets_get_asks_first(cli: Cli, flux: FakeFlux) -> None:
    refused = cli("secrets", "get", "API_KEY", input="n\n", fake=flux)
    assert refused.exit_code == 1 and SECRET not in refused.stdout
    assert flux.requests == []  # nothing fetched before the answer
    confirmed = cli("secrets", "get", "API_KEY", input="y\n", fake=flux)
    # (CliRunner echoes the typed answer into stdout; the prompt itself goes to stderr.)
    assert confirmed.exit_code == 0 and confirmed.stdout.endswith(f"\n{SECRET}\n")
    assert "Print the value of secret 'API_KEY'?" in confirmed.stderr
    skipped = cli("secrets", "get", "API_KEY", "--yes", fake=flux)
    assert skipped.stdout == f"{SECRET}\n"
    flux.secrets["LIMITS"] = {"rps": 5}
    assert json.loads(cli("secrets", "get", "LIMITS", "-y", fake=flux).stdout) == {"rps": 5}


def test_secrets_remove_and_errors(cli: Cli, flux: FakeFlux) -> None:
    removed = cli("secrets", "remove", "API_KEY", fake=flux)
    assert removed.exit_code == 0 and "'API_KEY' removed" in removed.stdout
    assert flux.requests[-1].method == "DELETE"
    missing = cli("secrets", "remove", "API_KEY", fake=flux)
    assert "secret not found: 'API_KEY'" in one_line_error(missing, 1)
    for command in (["get", "1BAD", "--yes"], ["set", "has space", "v"], ["remove", "a/b"]):
        count = len(flux.requests)
        assert "invalid secret name" in one_line_error(cli("secrets", *command, fake=flux), 2)
        assert len(flux.requests) == count
