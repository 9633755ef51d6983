"""The base of every wire model: tolerant readers, strict writers."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import Enum
from typing import Annotated, Any, Self

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

    @classmethod
    def model_construct(cls, _fields_set: set[str] | None = None, **values: Any) -> Self:
        """Pydantic's ``model_construct`` (an instance from trusted values, unvalidated), the
        same instance for a fraction of its CPU where the model allows: the server and the
        worker build thousands of these a second, and pydantic's generic version (aliases,
        default factories, extra fields, private attributes) costs several microseconds
        each. A model with aliases, extra fields kept, private attributes or a post-init
        hook, or a call that leaves out a field without a plain immutable default, takes
        pydantic's own; tests/sdk/test_protocol.py holds the two equal for every wire model."""
        plan = _PLANS.get(cls)
        if plan is None:
            plan = _PLANS[cls] = _plan(cls)
        if not plan:  # pydantic's own
            return super().model_construct(_fields_set, **values)
        names, defaults = plan
        if tuple(values) == names:  # every field, in order: the values are the instance's
            data = values
            given = set(names)
        else:
            data = {}
            for name, default in zip(names, defaults, strict=True):
                if name in values:
                    data[name] = values[name]
                elif default is not _REQUIRED:
                    data[name] = default
                else:
                    return super().model_construct(_fields_set, **values)
            given = set(values).intersection(names)
        model = cls.__new__(cls)
        setattr_ = object.__setattr__
        setattr_(model, "__dict__", data)
        setattr_(model, "__pydantic_fields_set__", given if _fields_set is None else _fields_set)
        setattr_(model, "__pydantic_extra__", None)
        setattr_(model, "__pydantic_private__", None)
        return model


_REQUIRED = object()
_Plan = tuple[tuple[str, ...], tuple[Any, ...]]
_PLANS: dict[type[WireModel], _Plan | tuple[()]] = {}
_IMMUTABLE = (type(None), str, bytes, int, float, bool, Enum, tuple, frozenset)


def _plan(cls: type[WireModel]) -> _Plan | tuple[()]:
    """The fields in order and their defaults (or _REQUIRED); empty where only pydantic's
    own ``model_construct`` will do."""
    if (
        cls.__pydantic_root_model__
        or cls.__pydantic_post_init__
        or cls.__private_attributes__
        or cls.model_config.get("extra") == "allow"
        or not cls.__pydantic_fields__
    ):
        return ()
    names, defaults = [], []
    for name, field in cls.__pydantic_fields__.items():
        if field.alias is not None or field.validation_alias is not None:
            return ()
        plain = field.default_factory is None and isinstance(field.default, _IMMUTABLE)
        # A mutable default is copied by pydantic for each instance: that field must be given.
        names.append(name)
        defaults.append(field.default if plain and not field.is_required() else _REQUIRED)
    return tuple(names), tuple(defaults)
