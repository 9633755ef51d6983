"""Calls for identity and API keys: ``/auth/whoami`` and ``/admin/keys``."""

from __future__ import annotations

import re
from datetime import datetime

from flux.client._calls._base import JSON, Call, model_body, parse_list, parse_model, seg
from flux.errors import UsageError
from flux.protocol import (
    API_KEY_NAME_PATTERN,
    ApiKeyInfo,
    ApiKeyRevoked,
    CreateApiKeyRequest,
    CreatedApiKey,
    Role,
    WhoAmI,
)

__all__ = ["create_key", "list_keys", "revoke_key", "whoami"]


def whoami() -> Call[WhoAmI]:
    return Call("GET", "/auth/whoami", parse_model(WhoAmI))


def list_keys() -> Call[list[ApiKeyInfo]]:
    return Call("GET", "/admin/keys", parse_list(ApiKeyInfo))


def create_key(name: str, role: str, expires_at: datetime | None) -> Call[CreatedApiKey]:
    try:
        chosen = Role(role)
    except ValueError:
        raise UsageError(
            f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}"
        ) from None
    if not isinstance(name, str) or not re.fullmatch(API_KEY_NAME_PATTERN, name):
        raise UsageError(
            f"invalid key name {name!r}: a letter, digit or '_' first, then up to 63 letters, "
            "digits, '_', '.' or '-'"
        )
    request = CreateApiKeyRequest(name=name, role=chosen, expires_at=expires_at)
    return Call(
        "POST",
        "/admin/keys",
        parse_model(CreatedApiKey),
        content=model_body(request),
        content_type=JSON,
    )


def revoke_key(key_id: str) -> Call[ApiKeyRevoked]:
    return Call("DELETE", f"/admin/keys/{seg(key_id)}", parse_model(ApiKeyRevoked))
