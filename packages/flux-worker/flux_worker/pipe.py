"""The messages a worker and its child process exchange (subprocess isolation).

One JSON object per line, over the child's stdin (worker -> child) and a private copy of its
stdout (child -> worker). Both sides import this module, so a message is defined once:

========================== ================= =================================================
message                    direction         meaning
========================== ================= =================================================
:class:`Header`            worker -> child   first line: the claim and where the child works
:class:`Events`            child -> worker   events recorded by the run, to checkpoint
:class:`Flush`             child -> worker   answer once the events sent so far are stored
:class:`Flushed`           worker -> child   the answer to the :class:`Flush` of the same id
:class:`GetSecrets`        child -> worker   secret values for the run
:class:`Secrets`           worker -> child   the answer: ``secrets`` or ``error``
:class:`Cancel`            worker -> child   cancel the run
:class:`NonDeterminism`    child -> worker   the run diverged from its history
:class:`Progress`          child -> worker   a value a task published (``flux.tasks.progress``)
:class:`Done`              child -> worker   the run ended (completed, failed, paused...)
========================== ================= =================================================

Worker and child are the same installation, so the models are strict: an unknown field is a
bug, not a newer peer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from flux.protocol.claims import ClaimResponse
from flux.protocol.events import EventRecord
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

__all__ = [
    "Cancel",
    "ChildMessage",
    "Done",
    "Events",
    "Flush",
    "Flushed",
    "GetSecrets",
    "Header",
    "NonDeterminism",
    "ParentMessage",
    "Progress",
    "Secrets",
    "encode",
    "read_child_message",
    "read_header",
    "read_parent_message",
]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Header(_Message):
    """The first line the child reads: what to run, and where."""

    claim: ClaimResponse
    """The claim as the worker got it (its history undecoded: the child decodes it)."""
    serializer: str = "pkl"
    home: str
    """The Flux home: the task cache (``worker-cache.db``) lives there."""
    server_url: str
    """The server that subworkflow calls go to."""
    traceparent: str | None = None
    """The trace context of the run's segment: spans and logs of the child continue it."""
    worker_name: str
    session_token: str = Field(repr=False)
    """The worker's session: subworkflow calls start children of the execution it holds."""


class Events(_Message):
    type: Literal["events"] = "events"
    events: list[EventRecord]


class Flush(_Message):
    type: Literal["flush"] = "flush"
    id: int


class GetSecrets(_Message):
    type: Literal["get_secrets"] = "get_secrets"
    id: int
    names: list[str]


class NonDeterminism(_Message):
    type: Literal["nondeterminism"] = "nondeterminism"
    message: str


class Progress(_Message):
    type: Literal["progress"] = "progress"
    task: str
    value: Any = None
    timestamp: datetime


class Done(_Message):
    type: Literal["done"] = "done"


class Flushed(_Message):
    type: Literal["flushed"] = "flushed"
    id: int


class Secrets(_Message):
    type: Literal["secrets"] = "secrets"
    id: int
    secrets: dict[str, Any] | None = None
    error: str | None = None
    """Why the secrets could not be had (a missing secret): the child raises it."""


class Cancel(_Message):
    type: Literal["cancel"] = "cancel"


ChildMessage = Annotated[
    Events | Flush | GetSecrets | NonDeterminism | Progress | Done, Field(discriminator="type")
]
"""What the child sends."""
ParentMessage = Annotated[Flushed | Secrets | Cancel, Field(discriminator="type")]
"""What the worker sends after the :class:`Header`."""

_CHILD: TypeAdapter[ChildMessage] = TypeAdapter(ChildMessage)
_PARENT: TypeAdapter[ParentMessage] = TypeAdapter(ParentMessage)


def encode(message: _Message) -> bytes:
    """One line of the pipe."""
    return message.model_dump_json().encode() + b"\n"


def read_header(line: bytes) -> Header:
    """Raises:
    pydantic.ValidationError: the line is not a header."""
    return Header.model_validate_json(line)


def read_child_message(line: bytes) -> ChildMessage:
    """Raises:
    pydantic.ValidationError: the line is no message a child sends."""
    return _CHILD.validate_json(line)


def read_parent_message(line: bytes) -> ParentMessage:
    """Raises:
    pydantic.ValidationError: the line is no message a worker sends."""
    return _PARENT.validate_json(line)
