"""Registered workflows: ``POST /workflows``, ``GET /workflows``, ``GET /workflows/{name}``."""

from __future__ import annotations

import functools
import re
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from pydantic import Field, StrictFloat, StrictInt, field_validator

from flux.protocol._base import UtcDateTime, WireModel

__all__ = [
    "WORKFLOW_NAME_PATTERN",
    "ResourceRequest",
    "WorkflowDetail",
    "WorkflowOptions",
    "WorkflowSummary",
    "WorkflowVersion",
    "parse_size",
]

WORKFLOW_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,254}$"
"""A workflow's name: a letter, digit or ``_`` first, then letters, digits, ``_``, ``.`` and
``-`` (no spaces, no ``/``: names travel in URL paths and on command lines)."""

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "ki": 2**10,
    "kib": 2**10,
    "mi": 2**20,
    "mib": 2**20,
    "gi": 2**30,
    "gib": 2**30,
    "ti": 2**40,
    "tib": 2**40,
}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_size(value: int | float | str) -> int:
    """Bytes in ``value``: an integer, or text such as ``"4Gi"``, ``"512Mi"``, ``"2GB"``.

    Raises:
        ValueError: the text is not a size.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a size: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a size cannot be negative: {value!r}")
        return int(value)
    match = _SIZE.match(value)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"not a size: {value!r}; use bytes or a unit such as '4Gi', '512Mi', '2GB'"
        )
    return int(float(match.group(1)) * _UNITS[unit])


@functools.lru_cache(maxsize=1024)
def _requirement_problem(text: str) -> str:
    """Why ``text`` is not a requirement string, or ``""`` (cached: the server validates the
    same requests on every dispatch round)."""
    try:
        Requirement(text)
    except InvalidRequirement as exc:
        return str(exc).splitlines()[0]
    return ""


class ResourceRequest(WireModel):
    """What one execution of a workflow needs from a worker; ``None`` means no requirement.

    ``memory``, ``disk`` and ``gpu_memory`` are bytes (text such as ``"4Gi"`` is accepted and
    converted). ``gpu_memory`` is what each requested GPU must have in total: ``gpu=2,
    gpu_memory="80Gi"`` asks for two GPUs of at least 80 GiB each (``gpu`` defaults to one).
    ``packages`` are requirement strings (``"torch"``, ``"numpy>=2"``) that the worker's
    installed distributions must satisfy.
    """

    cpu: StrictFloat | None = Field(default=None, ge=0)
    memory: StrictInt | None = Field(default=None, ge=0)
    gpu: StrictInt | None = Field(default=None, ge=0)
    disk: StrictInt | None = Field(default=None, ge=0)
    gpu_memory: StrictInt | None = Field(default=None, ge=0)
    packages: list[str] = []

    @field_validator("memory", "disk", "gpu_memory", mode="before")
    @classmethod
    def _size(cls, value: Any) -> Any:
        return value if value is None else parse_size(value)

    @field_validator("packages", mode="before")
    @classmethod
    def _requirements(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [value]
        for item in value if isinstance(value, list | tuple) else ():
            if isinstance(item, str):
                problem = _requirement_problem(item)
                if problem:
                    raise ValueError(f"{item!r} is not a requirement such as 'numpy>=2': {problem}")
        return list(value) if isinstance(value, tuple) else value

    def gpu_count(self) -> int:
        """How many GPUs one execution holds: ``gpu``, or one when only ``gpu_memory`` is set."""
        return self.gpu or (1 if self.gpu_memory else 0)

    def is_empty(self) -> bool:
        return not (
            self.cpu or self.memory or self.gpu or self.disk or self.gpu_memory or self.packages
        )


class WorkflowOptions(WireModel):
    """Options read statically from the workflow's decorator.

    ``schedule`` is the schedule's config (``flux.schedules.Schedule.to_config()``);
    ``settings`` holds the other literal options (``retry_max_attempts``, ``timeout``, ...); an
    option whose value is not a literal is kept as its source text.
    """

    schedule: dict[str, Any] | None = None
    secret_requests: list[str] = []
    requests: ResourceRequest | None = None
    settings: dict[str, Any] = {}


class WorkflowVersion(WireModel):
    id: str
    version: StrictInt
    source_hash: str
    created_at: UtcDateTime


class WorkflowSummary(WireModel):
    """One version of a workflow (the latest, in listings)."""

    id: str
    name: str
    version: StrictInt
    source_hash: str
    options: WorkflowOptions = WorkflowOptions()
    created_at: UtcDateTime


class WorkflowDetail(WorkflowSummary):
    """The latest version with its source, and every version of the workflow, oldest first."""

    source: str
    versions: list[WorkflowVersion] = []
