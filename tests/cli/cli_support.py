"""A fake Flux server for CLI unit tests: protocol models behind an ``httpx.MockTransport``.

It answers the endpoints the CLI uses with canned data, records every request, and can be told
to fail (``fail_with``) or to send a body the protocol does not allow (``garbage``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from flux.domain import EventType, ExecutionState
from flux.protocol import (
    EventRecord,
    ExecutionFrame,
    ExecutionStatus,
    HealthResponse,
    WorkerInfo,
    WorkerResources,
    WorkerRuntime,
    WorkflowDetail,
    WorkflowOptions,
    WorkflowSummary,
    WorkflowVersion,
    execution_frame_event,
)
from typer.testing import Result

Cli = Callable[..., Result]
"""The ``cli`` fixture: ``cli(*args, fake=None, input=None) -> Result``."""

T0 = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)

SOURCE = """from flux import ExecutionContext, workflow


@workflow
async def hello_world(ctx: ExecutionContext[str]) -> str:
    return f"Hello, {ctx.input}"
"""


def summary(name: str = "hello_world", version: int = 1) -> WorkflowSummary:
    return WorkflowSummary(
        id=f"wf-{name}-{version}",
        name=name,
        version=version,
        source_hash="ab" * 32,
        options=WorkflowOptions(schedule={"type": "cron", "cron_expression": "0 9 * * *"}),
        created_at=T0,
    )


def detail(name: str = "hello_world") -> WorkflowDetail:
    base = summary(name, 2)
    return WorkflowDetail(
        **base.model_dump(),
        source=SOURCE,
        versions=[
            WorkflowVersion(id=f"wf-{name}-{v}", version=v, source_hash="cd" * 32, created_at=T0)
            for v in (1, 2)
        ],
    )


def status(
    execution_id: str = "exec-1",
    state: ExecutionState = ExecutionState.COMPLETED,
    *,
    input: Any = None,
    output: Any = None,
    events: bool = False,
) -> ExecutionStatus:
    records = None
    if events:
        records = [
            EventRecord(
                id=f"ev-{i}", type=kind, source_id="src", name="hello_world", time=T0, view=view
            )
            for i, (kind, view) in enumerate(
                [(EventType.WORKFLOW_STARTED, input), (EventType.WORKFLOW_COMPLETED, output)]
            )
        ]
    return ExecutionStatus(
        execution_id=execution_id,
        workflow_id="wf-hello_world-1",
        workflow_name="hello_world",
        workflow_version=1,
        state=state,
        input=input,
        output=output,
        created_at=T0,
        updated_at=T0,
        worker="w1",
        events=records,
    )


def worker(name: str = "w1") -> WorkerInfo:
    return WorkerInfo(
        name=name,
        connected=True,
        last_heartbeat=T0,
        capacity=4,
        running=1,
        runtime=WorkerRuntime(hostname="box"),
        resources=WorkerResources(cpu_count=8, memory_total=16 * 2**30, memory_available=2**33),
    )


@dataclass
class FakeServer:
    """Answers like a Flux server; ``final_state`` is how runs end."""

    final_state: ExecutionState = ExecutionState.COMPLETED
    fail_with: tuple[int, str] | None = None
    garbage: bool = False
    cut_stream: bool = False
    """End execution streams after the running frame."""
    requests: list[httpx.Request] = field(default_factory=list)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.fail_with is not None:
            code, message = self.fail_with
            body = {"type": "NotFound", "code": "not_found", "message": message, "details": {}}
            return httpx.Response(code, json=body)
        if self.garbage:
            return httpx.Response(200, json={"unexpected": True})
        parts = request.url.path.strip("/").split("/")
        query = request.url.params
        match parts:
            case ["health"]:
                return _json(HealthResponse(version="0", protocol_version="1.0", database="sqlite"))
            case ["workflows"] if request.method == "GET":
                return _json([summary(), summary("other")])
            case ["workflows"]:
                return _json([summary()])
            case ["workflows", name]:
                return _json(detail(name))
            case ["workflows", _, "run", "stream"] | ["workflows", _, "resume", _, "stream"]:
                return self._stream(_body(request))
            case ["workflows", _, "run", _] | ["workflows", _, "resume", _, _]:
                value = _body(request)
                return _json(status(state=self.final_state, input=value, output=_out(value)))
            case ["workflows", _, "status", execution_id]:
                detailed = query.get("detailed") == "true"
                return _json(status(execution_id, input="World", output="Hello", events=detailed))
            case ["workflows", _, "cancel", execution_id]:
                state = (
                    ExecutionState.CANCELLED
                    if query.get("mode") == "sync"
                    else ExecutionState.CANCELLING
                )
                return _json(status(execution_id, state))
            case ["workers"]:
                return _json([worker()])
        return httpx.Response(404, json={"type": "x", "code": "x", "message": "no route"})

    def _stream(self, value: Any) -> httpx.Response:
        frames = [
            ExecutionFrame(execution_id="exec-1", state=ExecutionState.RUNNING, timestamp=T0),
            ExecutionFrame(
                execution_id="exec-1", state=self.final_state, output=_out(value), timestamp=T0
            ),
        ]
        if self.cut_stream:
            frames = frames[:1]
        text = "".join(
            f"event: {execution_frame_event(f.state)}\ndata: {f.model_dump_json()}\n\n"
            for f in frames
        )
        return httpx.Response(
            200, content=text.encode(), headers={"content-type": "text/event-stream"}
        )


def _out(value: Any) -> Any:
    return f"Hello, {value}" if isinstance(value, str) else value


def _body(request: httpx.Request) -> Any:
    return json.loads(request.content) if request.content else None


def _json(value: Any) -> httpx.Response:
    if isinstance(value, list):
        data = [item.model_dump(mode="json") for item in value]
    else:
        data = value.model_dump(mode="json")
    return httpx.Response(200, json=data)
