"""HTTP routers, one per resource. No SQL here: routes call the stores on the runtime.

To add a resource (schedules, admin secrets), write its router module and append it to
:data:`ROUTERS`.
"""

from fastapi import APIRouter

from flux_server.api import (
    admin,
    auth,
    executions,
    executions_read,
    health,
    memory,
    metrics,
    progress,
    retention,
    schedules,
    workers,
    workflows,
)

__all__ = ["ROUTERS"]

ROUTERS: list[APIRouter] = [
    health.router,
    metrics.router,
    workflows.router,
    executions.router,
    executions_read.router,
    retention.router,
    workers.router,
    progress.router,
    memory.router,
    schedules.router,
    admin.router,
    auth.router,
]
