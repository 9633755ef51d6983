"""``flux workflow ...`` and ``flux workers list`` against a fake server: what is sent, what is
printed, JSON output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_support import SOURCE, Cli, FakeServer
from flux.domain import ExecutionState


def _sent(fake: FakeServer) -> tuple[str, str, dict[str, str], object]:
    request = fake.requests[-1]
    body = json.loads(request.content) if request.content else None
    return request.method, request.url.path, dict(request.url.params), body


# -- JSON input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('{"input": "data"}', {"input": "data"}),
        ('"World"', "World"),
        ("42", 42),
        ("[1, 2]", [1, 2]),
        ("null", None),
    ],
)
def test_run_sends_the_json_input(cli: Cli, fake: FakeServer, text: str, value: object) -> None:
    result = cli("workflow", "run", "hello_world", text, fake=fake)
    assert result.exit_code == 0, result.output
    assert _sent(fake) == ("POST", "/workflows/hello_world/run/async", {}, value)


def test_run_without_input_sends_null(cli: Cli, fake: FakeServer) -> None:
    assert cli("workflow", "run", "hello_world", fake=fake).exit_code == 0
    assert _sent(fake)[3] is None


def test_input_dash_reads_stdin(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "run", "hello_world", "-", fake=fake, input='{"from": "stdin"}')
    assert result.exit_code == 0, result.output
    assert _sent(fake)[3] == {"from": "stdin"}


@pytest.mark.parametrize("command", [["run", "hello_world"], ["resume", "hello_world", "exec-1"]])
def test_invalid_json_is_a_usage_error(cli: Cli, fake: FakeServer, command: list[str]) -> None:
    result = cli("workflow", *command, "{'input': 1}", fake=fake)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: Invalid value for INPUT_JSON: not valid JSON:")
    assert "line 1 column 2" in lines[0]
    assert fake.requests == []


def test_bare_word_input_suggests_quotes(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "run", "hello_world", "World", fake=fake)
    assert result.exit_code == 2
    assert "a string needs JSON quotes, e.g. '\"World\"'" in result.stderr


def test_unknown_mode_is_a_usage_error(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "run", "hello_world", "--mode", "later", fake=fake)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "--mode" in result.stderr
    assert fake.requests == []


# -- JSON output ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["workflow", "list"], lambda d: [w["name"] for w in d] == ["hello_world", "other"]),
        (["workflow", "show", "hello_world"], lambda d: d["source"] == SOURCE),
        (["workflow", "run", "hello_world", '"World"'], lambda d: d["output"] == "Hello, World"),
        (
            ["workflow", "run", "hello_world", '"World"', "--mode", "sync"],
            lambda d: d["state"] == "COMPLETED",
        ),
        (["workflow", "resume", "hello_world", "exec-1", "{}"], lambda d: d["input"] == {}),
        (["workflow", "status", "hello_world", "exec-1"], lambda d: d["events"] is None),
        (
            ["workflow", "status", "hello_world", "exec-1", "--detailed"],
            lambda d: (
                [e["type"] for e in d["events"]] == ["WORKFLOW_STARTED", "WORKFLOW_COMPLETED"]
            ),
        ),
        (["workflow", "cancel", "hello_world", "exec-1"], lambda d: d["state"] == "CANCELLING"),
        (
            ["workflow", "cancel", "hello_world", "exec-1", "--mode", "sync"],
            lambda d: d["state"] == "CANCELLED",
        ),
        (["workers", "list"], lambda d: d[0]["name"] == "w1" and d[0]["capacity"] == 4),
    ],
)
def test_format_json_is_exactly_one_json_document(
    cli: Cli, fake: FakeServer, args: list[str], check: object
) -> None:
    result = cli(*args, "--format", "json", fake=fake)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert check(data)  # type: ignore[operator]  # the parametrized predicate


def test_register_uploads_the_file(cli: Cli, fake: FakeServer, tmp_path: Path) -> None:
    path = tmp_path / "hello.py"
    path.write_text(SOURCE)
    result = cli("workflow", "register", str(path), "--format", "json", fake=fake)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["name"] == "hello_world"
    request = fake.requests[-1]
    assert (request.method, request.url.path) == ("POST", "/workflows")
    assert b'filename="hello.py"' in request.content
    assert SOURCE.encode() in request.content


def test_register_a_missing_file_is_a_usage_error(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "register", "nope.py", fake=fake)
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "nope.py" in result.stderr
    assert fake.requests == []


# -- tables --------------------------------------------------------------------------------------


def test_list_table(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "list", fake=fake)
    assert result.exit_code == 0
    assert "NAME" in result.stdout and "hello_world" in result.stdout
    assert "wf-hello_world-1" in result.stdout
    assert "cron 0 9 * * *" in result.stdout


def test_show_table_includes_versions_and_source(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "show", "hello_world", fake=fake)
    assert result.exit_code == 0
    assert "Versions" in result.stdout
    assert "async def hello_world" in result.stdout


def test_status_detailed_table_lists_events(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "status", "hello_world", "exec-1", "--detailed", fake=fake)
    assert result.exit_code == 0
    assert _sent(fake)[2] == {"detailed": "true"}
    assert "WORKFLOW_STARTED" in result.stdout and "WORKFLOW_COMPLETED" in result.stdout
    assert '"Hello"' in result.stdout


def test_user_data_is_not_rich_markup(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "run", "hello_world", '"[bold]x[/bold]"', fake=fake)
    assert result.exit_code == 0
    assert "[bold]x[/bold]" in result.stdout


def test_workers_table(cli: Cli, fake: FakeServer) -> None:
    result = cli("workers", "list", fake=fake)
    assert result.exit_code == 0
    assert "w1" in result.stdout and "box" in result.stdout
    assert "8.0/16.0 GiB free" in result.stdout


# -- modes and outcomes --------------------------------------------------------------------------


def test_sync_mode_waits(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "run", "hello_world", '"World"', "--mode", "sync", fake=fake)
    assert result.exit_code == 0
    assert _sent(fake)[1] == "/workflows/hello_world/run/sync"
    assert "COMPLETED" in result.stdout and '"Hello, World"' in result.stdout


@pytest.mark.parametrize("state", [ExecutionState.FAILED, ExecutionState.CANCELLED])
def test_sync_run_that_does_not_succeed_exits_1(
    cli: Cli, fake: FakeServer, state: ExecutionState
) -> None:
    fake.final_state = state
    result = cli("workflow", "run", "hello_world", '"x"', "--mode", "sync", fake=fake)
    assert result.exit_code == 1
    assert state.value in result.stdout
    assert result.stderr == f'error: execution exec-1 ended {state.value}: "Hello, x"\n'


def test_async_run_exits_0_whatever_the_state(cli: Cli, fake: FakeServer) -> None:
    fake.final_state = ExecutionState.FAILED
    assert cli("workflow", "run", "hello_world", fake=fake).exit_code == 0


def test_paused_is_not_a_failure(cli: Cli, fake: FakeServer) -> None:
    fake.final_state = ExecutionState.PAUSED
    result = cli("workflow", "run", "hello_world", "--mode", "stream", fake=fake)
    assert result.exit_code == 0
    assert "workflow.execution.paused" in result.stdout


def test_stream_prints_each_frame_then_the_output(cli: Cli, fake: FakeServer) -> None:
    result = cli("workflow", "run", "hello_world", '"World"', "--mode", "stream", fake=fake)
    assert result.exit_code == 0, result.output
    assert _sent(fake)[:2] == ("POST", "/workflows/hello_world/run/stream")
    lines = result.stdout.splitlines()
    assert lines[0] == "execution exec-1"
    assert "workflow.execution.running" in lines[1] and "RUNNING" in lines[1]
    assert "workflow.execution.completed" in lines[2] and "COMPLETED" in lines[2]
    assert lines[3] == 'output: "Hello, World"'


def test_stream_json_is_one_object_per_line(cli: Cli, fake: FakeServer) -> None:
    args = ("workflow", "resume", "hello_world", "exec-1", '"more"', "--mode", "stream")
    result = cli(*args, "--format", "json", fake=fake)
    assert result.exit_code == 0, result.output
    assert _sent(fake)[1] == "/workflows/hello_world/resume/exec-1/stream"
    frames = [json.loads(line) for line in result.stdout.splitlines()]
    assert [f["event"] for f in frames] == [
        "workflow.execution.running",
        "workflow.execution.completed",
    ]
    assert frames[-1]["output"] == "Hello, more"


def test_stream_that_fails_exits_1(cli: Cli, fake: FakeServer) -> None:
    fake.final_state = ExecutionState.FAILED
    result = cli("workflow", "run", "hello_world", '"x"', "--mode", "stream", fake=fake)
    assert result.exit_code == 1
    assert "workflow.execution.failed" in result.stdout
    assert result.stderr.startswith("error: execution exec-1 ended FAILED")


def test_a_stream_that_ends_early_says_how_to_check(cli: Cli, fake: FakeServer) -> None:
    fake.cut_stream = True
    result = cli("workflow", "run", "hello_world", "--mode", "stream", fake=fake)
    assert result.exit_code == 1
    assert "workflow.execution.running" in result.stdout
    assert result.stderr == (
        "error: the stream of execution exec-1 ended while it was RUNNING; "
        "check it with: flux workflow status hello_world exec-1\n"
    )


def test_names_and_ids_are_escaped_in_the_path(cli: Cli, fake: FakeServer) -> None:
    cli("workflow", "status", "a/b", "x y", fake=fake)
    assert fake.requests[-1].url.raw_path.split(b"?")[0] == b"/workflows/a%2Fb/status/x%20y"
