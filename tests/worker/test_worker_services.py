"""A subworkflow call from a worker: the same child is asked for until it finishes or pauses,
whatever ends the server's wait first (its sync timeout, a server out of reach)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from flux.domain import ExecutionState
from flux.errors import ApiError, ExecutionError, ExecutionPaused, NotFoundError
from flux.protocol import ExecutionStatus
from flux_worker import services
from flux_worker.services import ExecutionServices

CHILD = "c" * 32


def status(state: ExecutionState, output: Any = None) -> ExecutionStatus:
    now = datetime.now(UTC)
    return ExecutionStatus(
        execution_id=CHILD, workflow_id="wf", workflow_name="child", workflow_version=1,
        state=state, output=output, created_at=now, updated_at=now,
    )  # fmt: skip


class Server:
    """Answers each child run with the next of ``answers`` (an exception is raised), and keeps
    what each request asked for."""

    def __init__(self, *answers: ExecutionStatus | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[tuple[str, Any, str, str | None]] = []

    async def run_child(self, name: str, input: Any, execution_id: str) -> ExecutionStatus:
        self.requests.append((name, input, "sync", execution_id))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def call(server: Server, tmp_path) -> Any:
    async def no_secrets(names: list[str]) -> dict[str, Any]:
        return {}

    worker_services = ExecutionServices(
        no_secrets,
        server,
        home=tmp_path,
        serializer="json",
    )
    return worker_services.call_workflow("child", {"n": 1}, CHILD)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "backoff_delay", lambda *args: 0.0)


async def test_a_child_still_running_after_the_sync_wait_is_waited_for_again(tmp_path) -> None:
    server = Server(
        status(ExecutionState.SCHEDULED),
        status(ExecutionState.RUNNING),
        status(ExecutionState.COMPLETED, {"done": True}),
    )
    assert await call(server, tmp_path) == {"done": True}
    assert server.requests == [("child", {"n": 1}, "sync", CHILD)] * 3


async def test_a_server_out_of_reach_is_asked_again_a_refusal_is_raised(tmp_path) -> None:
    server = Server(
        ApiError("cannot reach the Flux server", 0),
        ApiError("overloaded", 503),
        status(ExecutionState.COMPLETED, 7),
    )
    assert await call(server, tmp_path) == 7
    assert len(server.requests) == 3
    refused = Server(NotFoundError("workflow 'child' not found", 404))
    with pytest.raises(NotFoundError):
        await call(refused, tmp_path)
    assert len(refused.requests) == 1


async def test_a_paused_failed_or_cancelled_child_ends_the_wait(tmp_path) -> None:
    with pytest.raises(ExecutionPaused, match=f"subworkflow:{CHILD}"):
        await call(Server(status(ExecutionState.PAUSED)), tmp_path)
    for state in (ExecutionState.FAILED, ExecutionState.CANCELLED):
        answer = {"type": "ValueError", "message": "bad"}
        with pytest.raises(ExecutionError, match=f"ended {state.value}"):
            await call(Server(status(state, answer)), tmp_path)
