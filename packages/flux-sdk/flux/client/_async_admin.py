"""The asyncio client's administration calls: workers, API keys, schedules and secrets."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flux.client import _calls as calls
from flux.client._async_base import AsyncClientBase
from flux.client._async_worker import AsyncWorkerChannel
from flux.protocol import (
    ApiKeyInfo,
    ApiKeyRevoked,
    CatchUpPolicy,
    CreatedApiKey,
    RegisterWorkerRequest,
    RegisterWorkerResponse,
    ScheduleDeleted,
    ScheduleInfo,
    ScheduleRun,
    SecretDeleted,
    SecretInfo,
    WhoAmI,
    WorkerInfo,
)
from flux.schedules import Schedule

__all__ = ["AsyncAdminCalls"]


class AsyncAdminCalls(AsyncClientBase):
    """Workers, identity and API keys, schedules and secrets (part of
    :class:`flux.client.AsyncFluxClient`)."""

    # -- workers -------------------------------------------------------------------------------

    async def list_workers(self) -> list[WorkerInfo]:
        return await self.send(calls.list_workers())

    async def register_worker(
        self, request: RegisterWorkerRequest, *, bootstrap_token: str
    ) -> RegisterWorkerResponse:
        """Register a worker; use the answer's ``session_token`` with :meth:`worker`.

        Raises:
            ApiError: 401 for a wrong bootstrap token.
        """
        return await self.send(calls.register_worker(request, bootstrap_token))

    def worker(self, name: str, session_token: str) -> AsyncWorkerChannel:
        """The calls of a registered worker, authenticated with its session token."""
        return AsyncWorkerChannel(self, name, session_token)

    # -- identity and API keys ------------------------------------------------------------------

    async def whoami(self) -> WhoAmI:
        """Who the server takes this client for (its API key's name and role, or anonymous when
        the server's authentication is off)."""
        return await self.send(calls.whoami())

    async def list_keys(self) -> list[ApiKeyInfo]:
        """Every API key (never the keys themselves); needs the admin role."""
        return await self.send(calls.list_keys())

    async def create_key(
        self, name: str, role: str, *, expires_at: datetime | None = None
    ) -> CreatedApiKey:
        """Create an API key with ``role`` (admin, operator or viewer); the answer's ``key`` is
        shown this once. Needs the admin role.

        Raises:
            UsageError: an invalid name or role, or an expiry in the past (400).
        """
        return await self.send(calls.create_key(name, role, expires_at))

    async def revoke_key(self, key_id: str) -> ApiKeyRevoked:
        """Revoke an API key at once. Needs the admin role.

        Raises:
            NotFoundError: no key has that id.
        """
        return await self.send(calls.revoke_key(key_id))

    # -- schedules -----------------------------------------------------------------------------

    async def list_schedules(
        self, workflow_id: str | None = None, *, active_only: bool = False
    ) -> list[ScheduleInfo]:
        """Every schedule, by name; ``workflow_id`` (a workflow's name or a version id) keeps
        that workflow's, ``active_only`` drops paused and completed ones."""
        return await self.send(calls.list_schedules(workflow_id, active_only))

    async def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        """A schedule by id or name.

        Raises:
            NotFoundError: no such schedule.
        """
        return await self.send(calls.get_schedule(schedule_id))

    async def create_schedule(
        self,
        workflow_name: str,
        name: str,
        schedule_config: Mapping[str, Any] | Schedule,
        *,
        description: str | None = None,
        input: Any = None,
    ) -> ScheduleInfo:
        """Run ``workflow_name`` on a schedule: ``cron(...)``, ``interval(...)``, ``once(...)``
        or their ``schedule_config`` mapping; every execution gets ``input``.

        Raises:
            ApiError: 400 for an invalid schedule (the message says why).
            NotFoundError: the workflow is not registered.
            ConflictError: a schedule of that name exists.
        """
        call = calls.create_schedule(workflow_name, name, schedule_config, description, input)
        return await self.send(call)

    async def update_schedule(
        self,
        schedule_id: str,
        schedule_config: Mapping[str, Any] | Schedule | calls.Keep = calls.KEEP,
        *,
        timezone: str | calls.Keep = calls.KEEP,
        input: Any = calls.KEEP,
        description: str | calls.Keep | None = calls.KEEP,
        catch_up: CatchUpPolicy | calls.Keep | None = calls.KEEP,
    ) -> ScheduleInfo:
        """Change a schedule in place (by id or name); the arguments left out stay as they are,
        and so do its counters and history.

        ``schedule_config`` replaces the schedule (a mapping without ``timezone`` keeps the
        current zone); ``timezone`` alone moves the cron or interval schedule to another
        zone. A changed schedule fires next at its first time after now. ``None`` clears
        ``description`` or ``input``, and sets ``catch_up`` back to the server's default.

        Raises:
            UsageError: nothing to change.
            ApiError: 400 for an invalid change (the message says why).
            NotFoundError: no such schedule.
        """
        changes = {
            "schedule_config": schedule_config,
            "timezone": timezone,
            "input": input,
            "description": description,
            "catch_up": catch_up,
        }
        return await self.send(calls.update_schedule(schedule_id, changes))

    async def pause_schedule(self, schedule_id: str) -> ScheduleInfo:
        """Stop firing until resumed (idempotent)."""
        return await self.send(calls.pause_schedule(schedule_id))

    async def resume_schedule(self, schedule_id: str) -> ScheduleInfo:
        """Fire again from the next time after now; ticks missed while paused are not run.

        Raises:
            ConflictError: a completed ``once`` schedule, or one whose time passed while paused.
        """
        return await self.send(calls.resume_schedule(schedule_id))

    async def delete_schedule(self, schedule_id: str) -> ScheduleDeleted:
        """Delete a schedule and its history (executions it started are kept)."""
        return await self.send(calls.delete_schedule(schedule_id))

    async def schedule_history(self, schedule_id: str, *, limit: int = 50) -> list[ScheduleRun]:
        """The latest ``limit`` runs of a schedule, newest first."""
        return await self.send(calls.schedule_history(schedule_id, limit))

    # -- admin: secrets ------------------------------------------------------------------------

    async def list_secrets(self) -> list[SecretInfo]:
        """Secret names (never values), sorted."""
        return await self.send(calls.list_secrets())

    async def get_secret(self, name: str) -> Any:
        """The value of a secret.

        Raises:
            NotFoundError: no such secret.
            ApiError: 400 for an invalid name; 500 when the server's encryption key differs
                from the one the secret was stored with.
        """
        return (await self.send(calls.get_secret(name))).value

    async def set_secret(self, name: str, value: Any) -> SecretInfo:
        """Create or replace a secret; ``value`` is any JSON value.

        Raises:
            ApiError: 400 for an invalid name.
        """
        return await self.send(calls.set_secret(name, value))

    async def delete_secret(self, name: str) -> SecretDeleted:
        """Delete a secret.

        Raises:
            NotFoundError: no such secret.
        """
        return await self.send(calls.delete_secret(name))
