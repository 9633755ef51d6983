"""The Flux exception tree.

Every error Flux raises on purpose derives from :class:`FluxError`::

    FluxError
    ├── UsageError                      wrong option types, bad decorator use, bad arguments
    │   ├── InvalidScheduleError        a cron expression or interval that cannot fire
    │   └── GraphValidationError        a Graph with a cycle, an unknown node, no start/end
    ├── ExecutionError                  a workflow or task failed; wraps the user's exception
    │   └── TaskTimeoutError            a task attempt ran past its timeout
    ├── NonDeterminismError             replay found a workflow body that diverged from its history
    ├── SecretDecryptionError           stored secrets cannot be read with the configured key
    ├── SerializationError              a value cannot be stored or read back
    ├── ProtocolError                   the peer speaks another protocol version
    └── ApiError                        an error a Flux server answers with an HTTP status
        ├── NotFoundError               what was named does not exist (404)
        │   ├── ExecutionNotFoundError  no execution with that id
        │   └── SecretNotFoundError     a task asked for a secret that does not exist
        └── ConflictError               it exists, but not in a state that allows that (409)
            └── ExecutionStateError     the execution cannot do that now (resume a finished run...)

The domain errors (not found, conflict, and their kinds) are raised alike by local runs and by
the server's stores; the server maps each type to its HTTP status in one place, and
:mod:`flux.client` raises the class the answer's ``code`` names (:func:`error_class`), so a
local run and a server call raise the same exception for the same situation. Any other error
answer is an :class:`ApiError` with the answer's status.

Control flow the engine needs derives from :class:`BaseException` so that a user's
``except Exception`` cannot swallow it: :class:`ExecutionPaused`.

Errors that cross a process, the database or the wire are picklable and share one JSON shape,
``{"type", "code", "message", "details"}`` (see :meth:`FluxError.to_dict`).
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ApiError",
    "ConflictError",
    "ExecutionError",
    "ExecutionNotFoundError",
    "ExecutionPaused",
    "ExecutionStateError",
    "FluxError",
    "GraphValidationError",
    "InvalidScheduleError",
    "NonDeterminismError",
    "NotFoundError",
    "ProtocolError",
    "SecretDecryptionError",
    "SecretNotFoundError",
    "SerializationError",
    "TaskTimeoutError",
    "UsageError",
    "error_class",
]


class FluxError(Exception):
    """Root of every error Flux raises on purpose."""

    code: ClassVar[str] = "flux_error"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), self.message, self.details))

    def to_dict(self) -> dict[str, Any]:
        """The one JSON shape every Flux error has on the wire."""
        return {
            "type": type(self).__name__,
            "code": self.code,
            "message": self.message,
            "details": {k: v for k, v in self.details.items() if _is_jsonable(v)},
        }

    def __str__(self) -> str:
        return self.message


def _rebuild(cls: type[FluxError], message: str, details: dict[str, Any]) -> FluxError:
    err = cls.__new__(cls)
    FluxError.__init__(err, message, **details)
    return err


def _is_jsonable(value: Any) -> bool:
    return isinstance(value, str | int | float | bool | type(None) | list | dict)


class UsageError(FluxError, TypeError):
    """The API was called the wrong way: fix the call, nothing ran."""

    code = "usage_error"


class InvalidScheduleError(UsageError, ValueError):
    code = "invalid_schedule"


class GraphValidationError(UsageError, ValueError):
    code = "invalid_graph"


class ExecutionError(FluxError):
    """A workflow or task failed. ``inner`` is the user's exception, when there is one."""

    code = "execution_error"

    def __init__(self, message: str, inner: BaseException | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.inner = inner

    def __reduce__(self) -> Any:
        return (_rebuild_execution_error, (type(self), self.message, self.inner, self.details))


def _rebuild_execution_error(
    cls: type[ExecutionError], message: str, inner: BaseException | None, details: dict[str, Any]
) -> ExecutionError:
    err = cls.__new__(cls)
    ExecutionError.__init__(err, message, inner, **details)
    return err


class TaskTimeoutError(ExecutionError, TimeoutError):
    code = "task_timeout"


class NonDeterminismError(FluxError):
    """Replay found a task call that does not match the recorded history."""

    code = "non_determinism"


class SecretDecryptionError(FluxError):
    code = "secret_decryption"


class SerializationError(FluxError, ValueError):
    code = "serialization_error"


class ProtocolError(FluxError):
    code = "protocol_version"


class ApiError(FluxError):
    """An error with an HTTP status: a Flux server answered with ``status_code`` (0: it could
    not be reached). The subclasses below are domain errors raised locally too, where
    ``status_code`` is ``None`` (the server maps them to a status, see :mod:`flux.errors`)."""

    code = "api_error"

    def __init__(self, message: str, status_code: int | None = None, **details: Any) -> None:
        super().__init__(message, **details)
        self.status_code = status_code

    def __reduce__(self) -> Any:
        return (_rebuild_api_error, (type(self), self.message, self.status_code, self.details))


def _rebuild_api_error(
    cls: type[ApiError], message: str, status_code: int | None, details: dict[str, Any]
) -> ApiError:
    return cls(message, status_code, **details)


class NotFoundError(ApiError, LookupError):
    """What was named (an execution, a workflow, a schedule, a secret) does not exist."""

    code = "not_found"


class ExecutionNotFoundError(NotFoundError):
    code = "execution_not_found"


class SecretNotFoundError(NotFoundError, KeyError):
    code = "secret_not_found"


class ConflictError(ApiError):
    """It exists, but its state does not allow what was asked (a stale claim generation, a
    name already taken...)."""

    code = "conflict"


class ExecutionStateError(ConflictError):
    """The execution exists but cannot do what was asked in its current state."""

    code = "execution_state"


class ExecutionPaused(BaseException):
    """Raised inside a workflow by ``pause()`` to unwind it; the run ends PAUSED."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _own_codes() -> dict[str, type[FluxError]]:
    """The classes of this module by ``code``, parents first (a subclass defined elsewhere,
    or one without a code of its own, does not stand for a code)."""
    found: dict[str, type[FluxError]] = {}
    pending: list[type[FluxError]] = [FluxError]
    while pending:
        cls = pending.pop(0)
        if cls.__module__ == __name__:
            found.setdefault(cls.code, cls)
            pending += cls.__subclasses__()
    return found


_BY_CODE = _own_codes()


def error_class(code: str) -> type[FluxError] | None:
    """The Flux exception class whose :attr:`~FluxError.code` is ``code`` (the ``code`` of
    the JSON shape), ``None`` for a code this version does not know."""
    return _BY_CODE.get(code)
