"""``flux execution list|show|events|rerun|cancel`` in process against a fake server (protocol
models behind an ``httpx.MockTransport``): requests sent, table and JSON output, one-line errors
with exit codes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cli_support import Cli
from flux.domain import EventType, ExecutionState
from flux.protocol import (
    CancelBatchResponse,
    CancelResult,
    ErrorBody,
    EventEntry,
    EventPage,
    ExecutionList,
    ExecutionStatus,
    PauseInfo,
)

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def status(execution_id: str = "exec-1", **changes: Any) -> ExecutionStatus:
    values: dict[str, Any] = {
        "execution_id": execution_id,
        "workflow_id": "wf-1",
        "workflow_name": "hello_world",
        "workflow_version": 2,
        "state": ExecutionState.COMPLETED,
        "input": "World",
        "output": "Hello, World",
        "created_at": T0,
        "updated_at": T0,
        "worker": "w1",
    }
    values.update(changes)
    return ExecutionStatus(**values)


def entry(position: int, type: EventType, view: Any = None) -> EventEntry:
    return EventEntry(
        position=position,
        id=f"ev-{position}",
        type=type,
        source_id="exec-1",
        name="hello_world",
        time=T0,
        view=view,
    )


@dataclass
class FakeFlux:
    """Answers the ``/executions`` endpoints; records every request."""

    requests: list[httpx.Request] = field(default_factory=list)
    next_cursor: str | None = "CURSOR2"

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    @property
    def params(self) -> httpx.QueryParams:
        return self.requests[-1].url.params

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        match request.url.path.strip("/").split("/"):
            case ["executions"]:
                page = ExecutionList(
                    items=[status("exec-2", state=ExecutionState.FAILED), status()],
                    next_cursor=self.next_cursor,
                    counts={ExecutionState.COMPLETED: 1200, ExecutionState.FAILED: 3},
                )
                return _json(page)
            case ["executions", "cancel"]:
                ids = json.loads(request.content)["execution_ids"]
                return _json(CancelBatchResponse(results=[_cancelled(i) for i in ids]))
            case ["executions", "nope", *_]:
                body = {
                    "type": "ExecutionNotFoundError",
                    "code": "execution_not_found",
                    "message": "no execution 'nope'; check the id",
                    "details": {},
                }
                return httpx.Response(404, json=body)
            case ["executions", execution_id]:
                paused = status(
                    execution_id,
                    state=ExecutionState.PAUSED,
                    output=None,
                    pauses=[PauseInfo(name="approve", data={"amount": 5}, paused_at=T0)],
                )
                return _json(paused)
            case ["executions", _, "events"]:
                items = [
                    entry(10, EventType.WORKFLOW_STARTED),
                    entry(14, EventType.TASK_COMPLETED, {"n": 1}),
                ]
                return _json(EventPage(items=items, next_after=14))
            case ["executions", execution_id, "rerun"]:
                rerun = status(request.url.params.get("new_id", "exec-new"))
                return _json(rerun.model_copy(update={"state": ExecutionState.SCHEDULED}))
        return httpx.Response(404, json={"type": "x", "code": "x", "message": "no route"})


def _cancelled(execution_id: str) -> CancelResult:
    if execution_id == "done":
        error = ErrorBody(
            type="ExecutionStateError",
            code="execution_state",
            message="execution 'done' has already finished (COMPLETED); nothing to cancel",
        )
        return CancelResult(execution_id=execution_id, error=error)
    return CancelResult(execution_id=execution_id, state=ExecutionState.CANCELLED)


def _json(model: Any) -> httpx.Response:
    return httpx.Response(200, json=model.model_dump(mode="json"))


@pytest.fixture
def flux() -> FakeFlux:
    return FakeFlux()


def one_line_error(result: Any, code: int) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return str(lines[0])


def test_list_sends_the_filters_and_shows_counts_and_the_next_cursor(
    cli: Cli, flux: FakeFlux
) -> None:
    result = cli(
        "execution", "list", "--workflow", "hello_world", "--state", "failed", "-s", "RUNNING",
        "--worker", "w1", "--schedule", "nightly", "--created-after", "2025-01-01T00:00:00Z",
        "--updated-before", "2025-02-01", "--limit", "2", "--cursor", "CURSOR1",
        fake=flux,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert dict(flux.params) == {
        "workflow": "hello_world",
        "state": "FAILED,RUNNING",
        "worker": "w1",
        "schedule": "nightly",
        "created_after": "2025-01-01T00:00:00Z",
        "updated_before": "2025-02-01",
        "limit": "2",
        "cursor": "CURSOR1",
    }
    out = result.stdout
    assert "exec-2" in out and "FAILED" in out and "hello_world v2" in out
    assert "1,203 matching: COMPLETED 1,200, FAILED 3" in out
    assert "--cursor CURSOR2" in out

    flux.next_cursor = None
    result = cli("execution", "list", "--format", "json", fake=flux)
    listed = json.loads(result.stdout)
    assert [i["execution_id"] for i in listed["items"]] == ["exec-2", "exec-1"]
    assert listed["counts"] == {"COMPLETED": 1200, "FAILED": 3}
    assert listed["next_cursor"] is None
    assert dict(flux.params) == {"limit": "50"}


def test_list_refuses_a_bad_state_or_limit_before_asking(cli: Cli, flux: FakeFlux) -> None:
    for args in (["--state", "DONE"], ["--limit", "0"], ["--limit", "501"]):
        result = cli("execution", "list", *args, fake=flux)
        assert result.exit_code == 2, args
    assert flux.requests == []


def test_show_by_id_with_waiting_pauses(cli: Cli, flux: FakeFlux) -> None:
    result = cli("execution", "show", "exec-9", "--detailed", fake=flux)
    assert result.exit_code == 0, result.output
    assert flux.requests[-1].url.path == "/executions/exec-9"
    assert flux.params["detailed"] == "true"
    assert (
        "PAUSED" in result.stdout
        and "approve" in result.stdout
        and "Waiting pauses" in (result.stdout)
    )
    shown = json.loads(cli("execution", "show", "exec-9", "-f", "json", fake=flux).stdout)
    assert shown["pauses"][0]["name"] == "approve"


def test_show_unknown_is_one_line_and_exit_1(cli: Cli, flux: FakeFlux) -> None:
    result = cli("execution", "show", "nope", fake=flux)
    assert one_line_error(result, 1) == "error: no execution 'nope'; check the id"


def test_events_page_with_types_payloads_and_the_next_position(cli: Cli, flux: FakeFlux) -> None:
    result = cli(
        "execution", "events", "exec-1", "--after", "3", "--limit", "2",
        "--type", "task_completed", "-t", "WORKFLOW_STARTED", "--payloads",
        fake=flux,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert dict(flux.params) == {
        "after": "3",
        "limit": "2",
        "types": "TASK_COMPLETED,WORKFLOW_STARTED",
        "payloads": "true",
    }
    assert "TASK_COMPLETED" in result.stdout and '{"n": 1}' in result.stdout
    assert "--after 14" in result.stdout
    page = json.loads(cli("execution", "events", "exec-1", "-f", "json", fake=flux).stdout)
    assert [e["position"] for e in page["items"]] == [10, 14]
    assert flux.params["payloads"] == "false"
    assert cli("execution", "events", "exec-1", "--type", "BOOM", fake=flux).exit_code == 2


def test_rerun_reports_the_new_execution(cli: Cli, flux: FakeFlux) -> None:
    result = cli("execution", "rerun", "exec-1", "--new-id", "again-1", fake=flux)
    assert result.exit_code == 0, result.output
    request = flux.requests[-1]
    assert (request.method, request.url.path) == ("POST", "/executions/exec-1/rerun")
    assert request.url.params["new_id"] == "again-1"
    assert "again-1" in result.stdout and "SCHEDULED" in result.stdout
    rerun = json.loads(cli("execution", "rerun", "exec-1", "-f", "json", fake=flux).stdout)
    assert rerun["execution_id"] == "exec-new"


def test_cancel_says_what_each_id_did_and_fails_when_one_was_not(cli: Cli, flux: FakeFlux) -> None:
    result = cli("execution", "cancel", "a", "b", fake=flux)
    assert result.exit_code == 0, result.output
    assert json.loads(flux.requests[-1].content) == {"execution_ids": ["a", "b"]}
    assert result.stdout.count("CANCELLED") == 2

    result = cli("execution", "cancel", "a", "done", fake=flux)
    assert one_line_error(result, 1) == "error: not cancelled: done"
    assert "already finished" in result.stdout
    answer = cli("execution", "cancel", "done", "-f", "json", fake=flux)
    assert json.loads(answer.stdout)["results"][0]["error"]["code"] == "execution_state"
    assert answer.exit_code == 1
