"""Who a caller is, and the API keys that say so: ``/auth/whoami`` and ``/admin/keys``.

- ``GET /auth/whoami`` -> :class:`WhoAmI`: the caller as the server sees it.
- ``GET /admin/keys`` -> list of :class:`ApiKeyInfo` (never the keys themselves).
- ``POST /admin/keys`` with :class:`CreateApiKeyRequest` -> :class:`CreatedApiKey`, the only
  answer that ever holds the key.
- ``DELETE /admin/keys/{key_id}`` -> :class:`ApiKeyRevoked`; 404 for an unknown key.

A key is sent as ``Authorization: Bearer <key>``. Its role says what it may do: ``admin``
everything, ``operator`` register, run, resume, cancel and schedule (secret names only),
``viewer`` read (secret names only).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import Field

from flux.protocol._base import UtcDateTime, WireModel

__all__ = [
    "API_KEY_NAME_PATTERN",
    "ApiKeyInfo",
    "ApiKeyRevoked",
    "CreateApiKeyRequest",
    "CreatedApiKey",
    "Role",
    "WhoAmI",
]

API_KEY_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$"
"""A key's name: what the audit log and ``flux auth key list`` call it."""


class Role(StrEnum):
    """What an API key may do, each including the ones after it."""

    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


class WhoAmI(WireModel):
    """The caller as the server sees it.

    ``kind`` is ``key`` (an API key), ``worker`` (a worker's session token) or ``anonymous``
    (the server's authentication is off: everyone may do everything, ``role`` is ``admin``).
    """

    kind: Literal["key", "worker", "anonymous"]
    name: str
    """The key's name, the worker's name, or ``anonymous``."""
    role: str
    """``admin``, ``operator``, ``viewer`` or ``worker``."""
    key_id: str | None = None
    expires_at: UtcDateTime | None = None
    authentication: bool
    """Whether the server requires credentials."""


class ApiKeyInfo(WireModel):
    id: str
    name: str
    role: Role
    created_at: UtcDateTime
    expires_at: UtcDateTime | None = None
    revoked_at: UtcDateTime | None = None
    created_by: str | None = None
    """Who created it (as the audit log names callers); ``None`` for the generated admin key."""


class CreateApiKeyRequest(WireModel):
    name: str = Field(pattern=API_KEY_NAME_PATTERN)
    role: Role
    expires_at: UtcDateTime | None = None
    """After this time the key is refused; ``None``: it never expires (revoke it instead)."""


class CreatedApiKey(ApiKeyInfo):
    key: str = Field(repr=False)
    """The key itself, shown this once: the server keeps only its SHA-256."""


class ApiKeyRevoked(WireModel):
    id: str
    revoked: bool = True
