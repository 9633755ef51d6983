"""Secrets as administrators manage them: ``/admin/secrets``.

- ``GET /admin/secrets`` -> list of :class:`SecretInfo` (names, never values).
- ``GET /admin/secrets/{name}`` -> :class:`SecretValue`; 404 when there is no such secret.
- ``POST /admin/secrets`` with :class:`SetSecretRequest` -> :class:`SecretInfo` (create or
  replace); 400 for an invalid name.
- ``DELETE /admin/secrets/{name}`` -> :class:`SecretDeleted`; 404 when there is no such secret.

Values are any JSON value; they are encrypted at rest and never appear in listings, logs or
error messages. Workers get them through ``GET /workers/{name}/secrets/{execution_id}`` (see
:mod:`flux.protocol.claims`).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flux.protocol._base import UtcDateTime, WireModel

__all__ = ["SecretDeleted", "SecretInfo", "SecretValue", "SetSecretRequest"]


class SecretInfo(WireModel):
    name: str
    updated_at: UtcDateTime | None = None


class SecretValue(WireModel):
    name: str
    value: Any = Field(repr=False)


class SetSecretRequest(WireModel):
    name: str
    value: Any = Field(repr=False)


class SecretDeleted(WireModel):
    name: str
    deleted: bool = True
