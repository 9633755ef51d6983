"""The one error body every Flux HTTP error carries."""

from __future__ import annotations

from typing import Any

from flux.protocol._base import WireModel

__all__ = ["ErrorBody"]


class ErrorBody(WireModel):
    """``flux.errors.FluxError.to_dict()`` on the wire: ``{type, code, message, details}``."""

    type: str
    code: str
    message: str
    details: dict[str, Any] = {}
