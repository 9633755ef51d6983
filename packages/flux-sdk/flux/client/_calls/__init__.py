"""Every Flux HTTP endpoint as a :class:`Call`: the one place that builds URLs, a module per
resource.

A call is plain data (method, path, query, body, bearer token, how to read the answer); the sync
and async clients only send it. Adding an endpoint (schedules, admin secrets, ...) means adding a
builder here and one method to each client that sends it.
"""

from flux.client._calls._base import Call, StreamCall
from flux.client._calls.auth import create_key, list_keys, revoke_key, whoami
from flux.client._calls.executions import (
    cancel_executions,
    execution_events,
    execution_stream,
    get_execution,
    list_executions,
    parse_stream_frame,
    prune_executions,
    rerun,
)
from flux.client._calls.memory import memory_delete, memory_get, memory_items, memory_put
from flux.client._calls.progress import progress, with_progress
from flux.client._calls.schedules import (
    KEEP,
    Keep,
    create_schedule,
    delete_schedule,
    get_schedule,
    list_schedules,
    pause_schedule,
    resume_schedule,
    schedule_history,
    update_schedule,
)
from flux.client._calls.secrets import (
    delete_secret,
    get_secret,
    list_secrets,
    set_secret,
)
from flux.client._calls.workers import (
    checkpoint,
    checkpoints,
    claim,
    claims,
    connect,
    get_secrets,
    heartbeat,
    leave,
    list_workers,
    register_worker,
    release,
    worker_frame_parser,
)
from flux.client._calls.workflows import (
    cancel,
    get_workflow,
    health,
    list_workflows,
    register_workflows,
    resume,
    resume_stream,
    run,
    run_stream,
    status,
)

__all__ = [
    "KEEP",
    "Call",
    "Keep",
    "StreamCall",
    "cancel",
    "cancel_executions",
    "checkpoint",
    "checkpoints",
    "claim",
    "claims",
    "connect",
    "create_key",
    "create_schedule",
    "delete_schedule",
    "delete_secret",
    "execution_events",
    "execution_stream",
    "get_execution",
    "get_schedule",
    "get_secret",
    "get_secrets",
    "get_workflow",
    "health",
    "heartbeat",
    "leave",
    "list_executions",
    "list_keys",
    "list_schedules",
    "list_secrets",
    "list_workers",
    "list_workflows",
    "memory_delete",
    "memory_get",
    "memory_items",
    "memory_put",
    "parse_stream_frame",
    "pause_schedule",
    "progress",
    "prune_executions",
    "register_worker",
    "register_workflows",
    "release",
    "rerun",
    "resume",
    "resume_schedule",
    "resume_stream",
    "revoke_key",
    "run",
    "run_stream",
    "schedule_history",
    "set_secret",
    "status",
    "update_schedule",
    "whoami",
    "with_progress",
    "worker_frame_parser",
]
