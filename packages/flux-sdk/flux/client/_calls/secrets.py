"""Calls for the admin secrets API."""

from __future__ import annotations

import json
from typing import Any

from flux.client._calls._base import (
    JSON,
    Call,
    parse_list,
    parse_model,
    seg,
)
from flux.errors import UsageError
from flux.protocol import (
    SecretDeleted,
    SecretInfo,
    SecretValue,
)

__all__ = [
    "delete_secret",
    "get_secret",
    "list_secrets",
    "set_secret",
]


# -- admin: secrets ------------------------------------------------------------------------------


def list_secrets() -> Call[list[SecretInfo]]:
    return Call("GET", "/admin/secrets", parse_list(SecretInfo))


def get_secret(name: str) -> Call[SecretValue]:
    return Call("GET", f"/admin/secrets/{seg(name)}", parse_model(SecretValue))


def set_secret(name: str, value: Any) -> Call[SecretInfo]:
    if not isinstance(name, str):
        raise UsageError(f"a secret name must be a string, got a {type(name).__name__}")
    try:
        content = json.dumps(
            {"name": name, "value": value}, separators=(",", ":"), allow_nan=False
        ).encode()
    except (TypeError, ValueError):
        # The message must not echo the value.
        raise UsageError(
            f"secret {name!r} must be a JSON value (str, number, bool, None, list or dict of "
            f"those), got a {type(value).__name__}"
        ) from None
    return Call(
        "POST",
        "/admin/secrets",
        parse_model(SecretInfo),
        content=content,
        content_type=JSON,
        idempotent=True,
    )


def delete_secret(name: str) -> Call[SecretDeleted]:
    return Call("DELETE", f"/admin/secrets/{seg(name)}", parse_model(SecretDeleted))
