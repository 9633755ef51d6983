"""The base of every wire model: tolerant readers, strict writers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict

__all__ = ["UtcDateTime", "WireModel"]


def _as_utc(value: datetime) -> datetime:
    # A naive time on the wire means UTC; an aware one is converted, so equal instants are equal.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
"""A datetime that is always timezone-aware UTC once read."""


class WireModel(BaseModel):
    """Base of every request, response and frame.

    Readers tolerate: parsing (``model_validate``, ``model_validate_json``, FastAPI bodies, nested
    fields) ignores fields this version does not know, so a newer peer can add optional fields.

    Writers are strict: building a model in code with an unknown keyword raises ``TypeError``, so a
    misspelt field never silently disappears from what is sent.
    """

    model_config = ConfigDict(extra="ignore")

    def __init__(self, /, **data: Any) -> None:
        fields = type(self).model_fields
        unknown = [key for key in data if key not in fields]
        if unknown:
            raise TypeError(
                f"{type(self).__name__} has no field(s) {', '.join(map(repr, sorted(unknown)))}; "
                f"known fields: {', '.join(fields)}"
            )
        super().__init__(**data)

    # Keep validation (model_validate, nested models, FastAPI) on pydantic's own fast path, which
    # ignores unknown fields; only direct construction by a writer goes through the check above.
    __init__.__pydantic_base_init__ = True  # type: ignore[attr-defined]
