"""Workers: registration, liveness and what the server knows about each worker.

``POST /workers/register`` (``Authorization: Bearer <bootstrap token>``) takes a
:class:`RegisterWorkerRequest` and returns a :class:`RegisterWorkerResponse` whose
``session_token`` authenticates every later call of that worker (``Bearer <session token>``).
Registering again under the same name starts a new session: the old token stops working and
executions the name held go back to the queue.
"""

from __future__ import annotations

from pydantic import Field, StrictFloat, StrictInt

from flux.protocol._base import UtcDateTime, WireModel

__all__ = [
    "WORKER_NAME_PATTERN",
    "GpuInfo",
    "HeartbeatRequest",
    "HeartbeatResponse",
    "PackageInfo",
    "RegisterWorkerRequest",
    "RegisterWorkerResponse",
    "WorkerInfo",
    "WorkerResources",
    "WorkerRuntime",
]

WORKER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"


class GpuInfo(WireModel):
    name: str
    memory_total: StrictInt = 0
    memory_free: StrictInt = 0


class WorkerResources(WireModel):
    """What the worker's machine has (bytes for sizes, percent for ``cpu_percent``)."""

    cpu_count: StrictInt = 0
    cpu_percent: StrictFloat = 0.0
    memory_total: StrictInt = 0
    memory_available: StrictInt = 0
    disk_total: StrictInt = 0
    disk_free: StrictInt = 0
    gpus: list[GpuInfo] = []


class WorkerRuntime(WireModel):
    os: str = ""
    os_release: str = ""
    python_version: str = ""
    hostname: str = ""
    flux_version: str = ""


class PackageInfo(WireModel):
    name: str
    version: str


class RegisterWorkerRequest(WireModel):
    name: str = Field(pattern=WORKER_NAME_PATTERN)
    runtime: WorkerRuntime = WorkerRuntime()
    resources: WorkerResources = WorkerResources()
    packages: list[PackageInfo] = []
    capacity: StrictInt = Field(default=1, ge=1, le=100_000)
    """How many executions this worker runs at once."""


class RegisterWorkerResponse(WireModel):
    name: str
    session_token: str
    """Send as ``Authorization: Bearer <session_token>`` on every worker call."""
    heartbeat_interval: StrictFloat
    """Seconds between ``POST /workers/{name}/heartbeat`` calls."""
    protocol_version: str


class HeartbeatRequest(WireModel):
    """Liveness, optionally with refreshed resources (free memory, disk, GPU memory change over
    time) and the executions the worker runs."""

    resources: WorkerResources | None = None
    running: list[str] | None = None
    """The executions this worker is running now. When sent, the server takes back the ones it
    records as held by this worker that are missing here and saw no activity for the claim
    timeout (claimed but never started, or dropped by the worker), so they run elsewhere."""


class HeartbeatResponse(WireModel):
    heartbeat_interval: StrictFloat
    held: list[str] = []
    """Executions the server recorded as held by this worker when it answered. It lags behind
    claims made while the heartbeat was in flight, so compare it only with executions claimed
    before the heartbeat was sent. Losing an execution (fencing) is signalled reliably by a 409
    on checkpoint or release; use this list to find executions held here but not running."""
    cancelling: list[str] = []
    """Held executions whose cancellation was requested (a repeat of ``execution.cancelled``)."""


class LeaveResponse(WireModel):
    """``POST /workers/{name}/leave`` (protocol 1.14): a worker that stops says so, and is
    shown disconnected at once instead of when its heartbeats are missed."""

    released: list[str] = []
    """Executions it still held, back in the queue (with a new generation) or, when they were
    being cancelled, cancelled: normally none, a drained worker has let them go."""


class WorkerInfo(WireModel):
    """``GET /workers``: one registered worker."""

    name: str
    connected: bool
    last_heartbeat: UtcDateTime | None = None
    capacity: StrictInt
    running: StrictInt = 0
    """Executions it holds now."""
    runtime: WorkerRuntime = WorkerRuntime()
    resources: WorkerResources = WorkerResources()
    packages: list[PackageInfo] = []
