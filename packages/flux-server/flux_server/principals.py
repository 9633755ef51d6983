"""Who is calling: an API key, a worker's session, or anyone (authentication off)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from flux.domain import utcnow
from flux.protocol import Role, WhoAmI

from flux_server.auth import Authenticator, bearer
from flux_server.keys import key_id_of, matches
from flux_server.store.keys import KeyRecord, KeyStore

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


_KNOWN_LIMIT = 10_000


class PrincipalResolver:
    """Turns a bearer token into a :class:`Principal`: an API key (``flux_<id>_...``) by its id
    and hash, anything else as a worker's session token.

    A key's header, once checked, is remembered with its principal: a client sends the same
    header with every request, and checking it again (parsing, SHA-256, the comparison, a new
    principal) cost more than the rest of the gate. The memo holds checked headers only, is
    looked up by the header's string hash (salted per process, so its timing says nothing an
    attacker can steer), and an entry counts only while the key store still holds the same
    record (a revocation, here or on a replica, makes the store forget it) and the key has not
    expired."""

    def __init__(self, keys: KeyStore, workers: Authenticator) -> None:
        self._keys = keys
        self._workers = workers
        self._known: dict[str, tuple[KeyRecord, Principal]] = {}

    async def resolve(self, authorization: str | None) -> Principal | None:
        """The caller, or ``None`` when the header holds no credential this server accepts
        (missing, malformed, unknown, expired or revoked)."""
        if not authorization:
            return None
        known = self._known.get(authorization)
        if known is not None:
            seen, principal = known
            if self._keys.is_current(seen) and (
                seen.expires_at is None or utcnow() < seen.expires_at
            ):
                return principal
            del self._known[authorization]
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
        principal = Principal(
            kind="key",
            name=record.name,
            role=record.role,
            key_id=record.id,
            expires_at=record.expires_at,
        )
        if self._keys.is_current(record):
            if len(self._known) >= _KNOWN_LIMIT:
                self._known.clear()
            self._known[authorization] = (record, principal)
        return principal
