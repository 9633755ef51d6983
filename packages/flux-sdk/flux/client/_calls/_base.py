"""Every Flux HTTP endpoint as a :class:`Call`: the one place that builds URLs.

A call is plain data (method, path, query, body, bearer token, how to read the answer); the sync
and async clients only send it. Adding an endpoint (schedules, admin secrets, ...) means adding a
builder here and one method to each client that sends it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from pydantic import BaseModel, TypeAdapter

from flux.errors import UsageError
from flux.protocol import (
    CancelMode,
    RunMode,
)

__all__ = [
    "JSON",
    "Call",
    "StreamCall",
    "chosen_id",
    "chosen_params",
    "json_body",
    "mode_of",
    "model_body",
    "parse_list",
    "parse_model",
    "seg",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class Call(Generic[T]):
    """One request and the reader of its answer's body."""

    method: str
    path: str
    parse: Callable[[bytes], T]
    params: Mapping[str, str] | None = None
    content: bytes | None = None
    content_type: str | None = None
    files: Mapping[str, tuple[str, bytes, str]] | None = None
    token: str | None = None
    """Sent as ``Authorization: Bearer <token>``."""
    traceparent: str | None = None
    """Sent as the W3C ``traceparent`` header: the trace context the request belongs to."""
    wait: bool = False
    """The server may hold the answer back (sync modes): no read timeout."""
    idempotent: bool | None = None
    """Whether sending it again changes nothing its first sending did (``None``: only when
    it is a GET)."""

    @property
    def repeatable(self) -> bool:
        """Whether it may be sent again after an attempt whose answer was lost (to another
        server of the client's, see :mod:`flux.client._servers`)."""
        return self.method == "GET" if self.idempotent is None else self.idempotent


@dataclass(frozen=True, slots=True)
class StreamCall:
    """A request answered with Server-Sent Events."""

    method: str
    path: str
    content: bytes | None = None
    content_type: str | None = None
    token: str | None = None
    params: Mapping[str, str] | None = None
    idempotent: bool | None = None
    """As :attr:`Call.idempotent`."""

    @property
    def repeatable(self) -> bool:
        """As :attr:`Call.repeatable`."""
        return self.method == "GET" if self.idempotent is None else self.idempotent


def chosen_id(execution_id: str | None) -> dict[str, str] | None:
    """Query parameters of a run whose execution id the caller chose."""
    return None if execution_id is None else {"execution_id": execution_id}


def chosen_params(**values: str | None) -> dict[str, str] | None:
    """The query parameters given (``None`` when there is none)."""
    params = {name: value for name, value in values.items() if value is not None}
    return params or None


def seg(value: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"expected a non-empty name or id, got {value!r}")
    return quote(value, safe="")


def json_body(value: Any, what: str) -> bytes:
    try:
        return json.dumps(value, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:
        raise UsageError(
            f"the {what} must be JSON (dicts, lists, strings, numbers, booleans, None) to go "
            f"over HTTP: {exc}"
        ) from None


def model_body(model: BaseModel) -> bytes:
    return model.model_dump_json().encode()


def parse_model(cls: type[M]) -> Callable[[bytes], M]:
    return cls.model_validate_json


def parse_list(cls: type[M]) -> Callable[[bytes], list[M]]:
    return TypeAdapter(list[cls]).validate_json  # type: ignore[valid-type]


def mode_of(mode: str, allowed: type[RunMode] | type[CancelMode]) -> str:
    try:
        return allowed(mode).value
    except ValueError:
        choices = ", ".join(repr(m.value) for m in allowed)
        raise UsageError(f"unknown mode {mode!r}; use one of {choices}") from None
