"""Who is calling: an API key, a worker's session, or anyone (authentication off)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from flux.domain import utcnow
from flux.protocol import Role, WhoAmI

from flux_server.auth import Authenticator, bearer
from flux_server.keys import key_id_of, matches
from flux_server.store.keys import KeyStore

__all__ = ["ANONYMOUS", "Principal", "PrincipalResolver"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A caller the server recognised.

    ``role`` is the key's role; a worker has none (worker credentials reach the worker routes,
    and child runs of what it holds); anyone, while authentication is off, is an admin.
    """

    kind: Literal["key", "worker", "anonymous"]
    name: str
    role: Role | None
    key_id: str | None = None
    expires_at: datetime | None = None

    def describe(self) -> str:
        """How messages and the audit log name this caller."""
        if self.kind == "key":
            return f"key {self.name!r} ({self.key_id})"
        if self.kind == "worker":
            return f"worker {self.name!r}"
        return "anonymous (authentication off)"

    def whoami(self, authentication: bool) -> WhoAmI:
        return WhoAmI(
            kind=self.kind,
            name=self.name,
            role=self.role.value if self.role is not None else "worker",
            key_id=self.key_id,
            expires_at=self.expires_at,
            authentication=authentication,
        )


ANONYMOUS = Principal(kind="anonymous", name="anonymous", role=Role.ADMIN)
"""Every caller while authentication is off."""


class PrincipalResolver:
    """Turns a bearer token into a :class:`Principal`: an API key (``flux_<id>_...``) by its id
    and hash, anything else as a worker's session token."""

    def __init__(self, keys: KeyStore, workers: Authenticator) -> None:
        self._keys = keys
        self._workers = workers

    async def resolve(self, authorization: str | None) -> Principal | None:
        """The caller, or ``None`` when the header holds no credential this server accepts
        (missing, malformed, unknown, expired or revoked)."""
        token = bearer(authorization)
        if token is None:
            return None
        key_id = key_id_of(token)
        if key_id is None:
            owner = await self._workers.session_owner(token)
            return None if owner is None else Principal(kind="worker", name=owner, role=None)
        record = await self._keys.find(key_id)
        if record is None or not matches(token, record.key_hash) or not record.usable(utcnow()):
            return None
        return Principal(
            kind="key",
            name=record.name,
            role=record.role,
            key_id=record.id,
            expires_at=record.expires_at,
        )
