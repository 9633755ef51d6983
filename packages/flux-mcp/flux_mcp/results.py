"""What the tools answer: small pydantic models whose JSON schemas become the tools' output
schemas, built from the protocol's models with only what a model needs to decide what next.

Every execution answer carries ``next_step``, one sentence on what can be done now (resume a
pause, wait and ask again, read the failure), so an assistant does not have to guess.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flux.domain import ExecutionState
from flux.protocol import (
    EventEntry,
    ExecutionStatus,
    ScheduleInfo,
    ScheduleRun,
    WorkerInfo,
    WorkflowDetail,
    WorkflowSummary,
)
from pydantic import BaseModel, Field

__all__ = [
    "ErrorInfo",
    "EventInfo",
    "EventList",
    "ExecutionList",
    "ExecutionResult",
    "ExecutionSummary",
    "PauseWaiting",
    "ScheduleDeletion",
    "ScheduleHistory",
    "ScheduleList",
    "ScheduleResult",
    "ScheduleRunInfo",
    "UploadResult",
    "WorkerList",
    "WorkerSummary",
    "WorkflowDetails",
    "WorkflowInfo",
    "WorkflowList",
    "WorkflowVersionInfo",
    "execution_result",
]

_WAITING = frozenset(
    {
        ExecutionState.CREATED,
        ExecutionState.SCHEDULED,
        ExecutionState.CLAIMED,
        ExecutionState.RUNNING,
        ExecutionState.RESUMING,
        ExecutionState.CANCELLING,
    }
)


# -- workflows -----------------------------------------------------------------------------------


class WorkflowInfo(BaseModel):
    """A registered workflow (its latest version)."""

    name: str
    version: int
    version_id: str
    registered_at: datetime
    schedule: dict[str, Any] | None = Field(
        default=None, description="the schedule its decorator declares, if any"
    )
    secret_requests: list[str] = Field(default=[], description="secrets its tasks read")
    resource_requests: dict[str, Any] | None = Field(
        default=None, description="what a worker must have to run it (cpu, memory, gpu...)"
    )
    options: dict[str, Any] = Field(default={}, description="other decorator options")

    @classmethod
    def of(cls, summary: WorkflowSummary) -> WorkflowInfo:
        options = summary.options
        requests = options.requests
        return cls(
            name=summary.name,
            version=summary.version,
            version_id=summary.id,
            registered_at=summary.created_at,
            schedule=options.schedule,
            secret_requests=list(options.secret_requests),
            resource_requests=None if requests is None else requests.model_dump(exclude_none=True),
            options=dict(options.settings),
        )


class WorkflowList(BaseModel):
    workflows: list[WorkflowInfo]


class WorkflowVersionInfo(BaseModel):
    version: int
    version_id: str
    registered_at: datetime


class WorkflowDetails(WorkflowInfo):
    """A workflow with the source of its latest version and the list of its versions."""

    source: str
    versions: list[WorkflowVersionInfo]

    @classmethod
    def of_detail(cls, detail: WorkflowDetail) -> WorkflowDetails:
        return cls(
            **WorkflowInfo.of(detail).model_dump(),
            source=detail.source,
            versions=[
                WorkflowVersionInfo(version=v.version, version_id=v.id, registered_at=v.created_at)
                for v in detail.versions
            ],
        )


class UploadResult(BaseModel):
    registered: list[WorkflowInfo] = Field(
        description="every workflow of the file; a changed one has a new version"
    )
    next_step: str


# -- executions ----------------------------------------------------------------------------------


class PauseWaiting(BaseModel):
    """A pause that waits for a resume: its name and the data the workflow gave it."""

    name: str
    data: Any = None
    paused_at: datetime


class ErrorInfo(BaseModel):
    type: str
    message: str


class ExecutionResult(BaseModel):
    """An execution: its state, and its output, error or waiting pauses."""

    execution_id: str
    workflow: str
    workflow_version: int
    state: ExecutionState
    input: Any = None
    output: Any = Field(default=None, description="the workflow's result, once COMPLETED")
    error: ErrorInfo | None = Field(default=None, description="why it failed, once FAILED")
    pauses: list[PauseWaiting] = Field(
        default=[], description="the pauses waiting for a resume (state PAUSED)"
    )
    created_at: datetime
    updated_at: datetime
    next_step: str = Field(description="what can be done now")


def execution_result(status: ExecutionStatus, *, note: str = "") -> ExecutionResult:
    """``status`` as a tool answers it; ``note`` goes before the usual next step."""
    failed = status.state is ExecutionState.FAILED
    error = _error_of(status.output) if failed else None
    pauses = [PauseWaiting(name=p.name, data=p.data, paused_at=p.paused_at) for p in status.pauses]
    step = _next_step(status, error, pauses)
    return ExecutionResult(
        execution_id=status.execution_id,
        workflow=status.workflow_name,
        workflow_version=status.workflow_version,
        state=status.state,
        input=status.input,
        output=None if failed else status.output,
        error=error,
        pauses=pauses,
        created_at=status.created_at,
        updated_at=status.updated_at,
        next_step=f"{note} {step}" if note else step,
    )


def _error_of(output: Any) -> ErrorInfo:
    if isinstance(output, dict) and isinstance(output.get("message"), str):
        return ErrorInfo(type=str(output.get("type") or "Error"), message=output["message"])
    return ErrorInfo(type="Error", message="" if output is None else str(output))


def _next_step(status: ExecutionStatus, error: ErrorInfo | None, pauses: list[PauseWaiting]) -> str:
    eid = status.execution_id
    match status.state:
        case ExecutionState.COMPLETED:
            return "Finished: the result is in output."
        case ExecutionState.FAILED:
            assert error is not None
            return (
                f"Failed with {error.type}: {error.message}. To see where, call "
                f"get_execution_events(execution_id={eid!r}, types=['TASK_FAILED', "
                "'WORKFLOW_FAILED'], payloads=true) or use the debug_failed_execution prompt."
            )
        case ExecutionState.CANCELLED:
            return "Cancelled: it will not run again; start a new execution if needed."
        case ExecutionState.PAUSED:
            return _resume_hint(eid, pauses)
        case state if state in _WAITING:
            return (
                f"Still {state.value}: call get_execution_status(execution_id={eid!r}) later "
                "for the result, or cancel_execution to stop it."
            )
    return f"State {status.state.value}."


def _resume_hint(eid: str, pauses: list[PauseWaiting]) -> str:
    if len(pauses) == 1:
        return (
            f"Waiting at pause {pauses[0].name!r}: call resume_workflow_sync(execution_id="
            f"{eid!r}, input=...) with the value the pause asks for (see pauses[0].data)."
        )
    names = ", ".join(repr(p.name) for p in pauses)
    return (
        f"Waiting at {len(pauses)} pauses ({names}): call resume_workflow_sync(execution_id="
        f"{eid!r}, pause_name=..., input=...) for each."
    )


class ExecutionSummary(BaseModel):
    """An execution in a listing (no input or output: read it with get_execution_status)."""

    execution_id: str
    workflow: str
    workflow_version: int
    state: ExecutionState
    worker: str | None = None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, status: ExecutionStatus) -> ExecutionSummary:
        return cls(
            execution_id=status.execution_id,
            workflow=status.workflow_name,
            workflow_version=status.workflow_version,
            state=status.state,
            worker=status.worker,
            created_at=status.created_at,
            updated_at=status.updated_at,
        )


class ExecutionList(BaseModel):
    executions: list[ExecutionSummary] = Field(description="newest first")
    counts: dict[str, int] = Field(
        description="how many executions match, per state, across all pages"
    )
    next_cursor: str | None = Field(
        default=None, description="pass as cursor (same filters) for the next page"
    )


class EventInfo(BaseModel):
    position: int = Field(description="pass as after for the events that follow it")
    type: str
    name: str
    source_id: str
    time: datetime
    value: Any = Field(default=None, description="the event's value (only with payloads)")

    @classmethod
    def of(cls, entry: EventEntry) -> EventInfo:
        return cls(
            position=entry.position,
            type=entry.type.value,
            name=entry.name,
            source_id=entry.source_id,
            time=entry.time,
            value=entry.view,
        )


class EventList(BaseModel):
    events: list[EventInfo] = Field(description="oldest first")
    next_after: int | None = Field(
        default=None, description="pass as after for the next page; null at the end of the log"
    )


# -- schedules -----------------------------------------------------------------------------------


class ScheduleResult(BaseModel):
    id: str
    name: str
    workflow: str
    schedule: dict[str, Any]
    state: str
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None
    run_count: int
    failure_count: int
    skip_count: int
    input: Any = None
    description: str | None = None

    @classmethod
    def of(cls, info: ScheduleInfo) -> ScheduleResult:
        return cls(
            id=info.id,
            name=info.name,
            workflow=info.workflow_name,
            schedule=info.schedule_config,
            state=info.state.value,
            next_run_at=info.next_run_at,
            last_run_at=info.last_run_at,
            run_count=info.run_count,
            failure_count=info.failure_count,
            skip_count=info.skip_count,
            input=info.input,
            description=info.description,
        )


class ScheduleList(BaseModel):
    schedules: list[ScheduleResult]


class ScheduleDeletion(BaseModel):
    id: str
    name: str
    deleted: bool


class ScheduleRunInfo(BaseModel):
    scheduled_for: datetime
    fired_at: datetime
    state: str
    execution_id: str | None = None
    execution_state: ExecutionState | None = None
    error: str | None = None

    @classmethod
    def of(cls, run: ScheduleRun) -> ScheduleRunInfo:
        return cls(
            scheduled_for=run.scheduled_for,
            fired_at=run.fired_at,
            state=run.state.value,
            execution_id=run.execution_id,
            execution_state=run.execution_state,
            error=run.error,
        )


class ScheduleHistory(BaseModel):
    runs: list[ScheduleRunInfo] = Field(description="newest first")


# -- workers -------------------------------------------------------------------------------------


class WorkerSummary(BaseModel):
    name: str
    connected: bool
    capacity: int
    running: int
    last_heartbeat: datetime | None = None
    hostname: str = ""
    cpu_count: int = 0
    memory_total: int = Field(default=0, description="bytes")
    gpus: list[str] = []

    @classmethod
    def of(cls, info: WorkerInfo) -> WorkerSummary:
        return cls(
            name=info.name,
            connected=info.connected,
            capacity=info.capacity,
            running=info.running,
            last_heartbeat=info.last_heartbeat,
            hostname=info.runtime.hostname,
            cpu_count=info.resources.cpu_count,
            memory_total=info.resources.memory_total,
            gpus=[gpu.name for gpu in info.resources.gpus],
        )


class WorkerList(BaseModel):
    workers: list[WorkerSummary]
