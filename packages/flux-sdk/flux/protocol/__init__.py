"""The Flux wire protocol, version 1: every request, response and SSE frame between the server,
its workers and its clients.

One module per resource (``auth``, ``workflows``, ``executions``, ``workers``, ``claims``,
``frames``, ``events``, ``health``, ``errors``, ``schedules``, ``secrets``, ``progress``,
``memory``) plus ``version``. Readers ignore fields they do not know; writers building a model
with an unknown field get ``TypeError``.

The JSON schema of every model is pinned by ``tests/sdk/protocol_schema.json``; after a
deliberate protocol change, regenerate it with::

    python -m flux.protocol > tests/sdk/protocol_schema.json
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from flux.protocol._base import UtcDateTime, WireModel
from flux.protocol.auth import (
    API_KEY_NAME_PATTERN,
    ApiKeyInfo,
    ApiKeyRevoked,
    CreateApiKeyRequest,
    CreatedApiKey,
    Role,
    WhoAmI,
)
from flux.protocol.claims import (
    CheckpointBatchRequest,
    CheckpointBatchResponse,
    CheckpointItem,
    CheckpointRequest,
    CheckpointResponse,
    CheckpointResult,
    ClaimBatchRequest,
    ClaimBatchResponse,
    ClaimResponse,
    ClaimResult,
    ReleaseRequest,
    ReleaseResponse,
    SecretsResponse,
)
from flux.protocol.errors import ErrorBody
from flux.protocol.events import EventRecord, HistoryColumns, OutputRecord
from flux.protocol.executions import (
    EXECUTION_ID_PATTERN,
    CancelBatchRequest,
    CancelBatchResponse,
    CancelMode,
    CancelResult,
    EventEntry,
    EventPage,
    ExecutionList,
    ExecutionStatus,
    ExecutionStreamFrame,
    PauseInfo,
    PruneRequest,
    PruneResponse,
    RunMode,
)
from flux.protocol.frames import (
    EXECUTION_FRAME_STATES,
    ConnectedFrame,
    ExecutionCancelledFrame,
    ExecutionClaimedFrame,
    ExecutionFrame,
    ExecutionScheduledFrame,
    KeepaliveFrame,
    WorkerFrame,
    execution_frame_event,
    parse_execution_frame,
    parse_worker_frame,
)
from flux.protocol.health import HealthResponse, ReadyResponse
from flux.protocol.memory import MemoryDeleted, MemoryEntry, MemoryItems, MemoryValue
from flux.protocol.progress import (
    MAX_PROGRESS_BYTES,
    PROGRESS_EVENT,
    ProgressBatch,
    ProgressItem,
    ProgressResponse,
    TaskProgressFrame,
    parse_progress_frame,
)
from flux.protocol.schedules import (
    SCHEDULE_RUN_FAILURES,
    CatchUpPolicy,
    CreateScheduleRequest,
    ScheduleDeleted,
    ScheduleInfo,
    ScheduleRun,
    ScheduleRunState,
    ScheduleState,
    UpdateScheduleRequest,
)
from flux.protocol.secrets import SecretDeleted, SecretInfo, SecretValue, SetSecretRequest
from flux.protocol.version import PROTOCOL_HEADER, PROTOCOL_VERSION, check_compatible, major_of
from flux.protocol.workers import (
    WORKER_NAME_PATTERN,
    GpuInfo,
    HeartbeatRequest,
    HeartbeatResponse,
    LeaveResponse,
    PackageInfo,
    RegisterWorkerRequest,
    RegisterWorkerResponse,
    WorkerInfo,
    WorkerResources,
    WorkerRuntime,
)
from flux.protocol.workflows import (
    WORKFLOW_NAME_PATTERN,
    ResourceRequest,
    WorkflowDetail,
    WorkflowOptions,
    WorkflowSummary,
    WorkflowVersion,
    parse_size,
)

__all__ = [
    "API_KEY_NAME_PATTERN",
    "EXECUTION_FRAME_STATES",
    "EXECUTION_ID_PATTERN",
    "MAX_PROGRESS_BYTES",
    "PROGRESS_EVENT",
    "PROTOCOL_HEADER",
    "PROTOCOL_VERSION",
    "SCHEDULE_RUN_FAILURES",
    "WORKER_NAME_PATTERN",
    "WORKFLOW_NAME_PATTERN",
    "ApiKeyInfo",
    "ApiKeyRevoked",
    "CancelBatchRequest",
    "CancelBatchResponse",
    "CancelMode",
    "CancelResult",
    "CatchUpPolicy",
    "CheckpointBatchRequest",
    "CheckpointBatchResponse",
    "CheckpointItem",
    "CheckpointRequest",
    "CheckpointResponse",
    "CheckpointResult",
    "ClaimBatchRequest",
    "ClaimBatchResponse",
    "ClaimResponse",
    "ClaimResult",
    "ConnectedFrame",
    "CreateApiKeyRequest",
    "CreateScheduleRequest",
    "CreatedApiKey",
    "ErrorBody",
    "EventEntry",
    "EventPage",
    "EventRecord",
    "ExecutionCancelledFrame",
    "ExecutionClaimedFrame",
    "ExecutionFrame",
    "ExecutionList",
    "ExecutionScheduledFrame",
    "ExecutionStatus",
    "ExecutionStreamFrame",
    "GpuInfo",
    "HealthResponse",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "HistoryColumns",
    "KeepaliveFrame",
    "LeaveResponse",
    "MemoryDeleted",
    "MemoryEntry",
    "MemoryItems",
    "MemoryValue",
    "OutputRecord",
    "PackageInfo",
    "PauseInfo",
    "ProgressBatch",
    "ProgressItem",
    "ProgressResponse",
    "PruneRequest",
    "PruneResponse",
    "ReadyResponse",
    "RegisterWorkerRequest",
    "RegisterWorkerResponse",
    "ReleaseRequest",
    "ReleaseResponse",
    "ResourceRequest",
    "Role",
    "RunMode",
    "ScheduleDeleted",
    "ScheduleInfo",
    "ScheduleRun",
    "ScheduleRunState",
    "ScheduleState",
    "SecretDeleted",
    "SecretInfo",
    "SecretValue",
    "SecretsResponse",
    "SetSecretRequest",
    "TaskProgressFrame",
    "UpdateScheduleRequest",
    "UtcDateTime",
    "WhoAmI",
    "WireModel",
    "WorkerFrame",
    "WorkerInfo",
    "WorkerResources",
    "WorkerRuntime",
    "WorkflowDetail",
    "WorkflowOptions",
    "WorkflowSummary",
    "WorkflowVersion",
    "check_compatible",
    "execution_frame_event",
    "json_schema",
    "major_of",
    "parse_execution_frame",
    "parse_progress_frame",
    "parse_size",
    "parse_worker_frame",
]


def json_schema() -> dict[str, Any]:
    """The JSON schema of every wire model, keyed by model name, plus the protocol version.

    This is what ``tests/sdk/protocol_schema.json`` pins.
    """
    models = sorted(
        (obj for obj in globals().values() if isinstance(obj, type) and issubclass(obj, WireModel)),
        key=lambda cls: cls.__name__,
    )
    return {
        "protocol_version": PROTOCOL_VERSION,
        "header": PROTOCOL_HEADER,
        "models": {
            cls.__name__: cls.model_json_schema(mode="validation")
            for cls in models
            if cls is not WireModel and issubclass(cls, BaseModel)
        },
    }
