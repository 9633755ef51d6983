"""The Flux exception tree.

Every error Flux raises on purpose derives from :class:`FluxError`::

    FluxError
    ├── UsageError                      wrong option types, bad decorator use, bad arguments
    │   ├── InvalidScheduleError        a cron expression or interval that cannot fire
    │   └── GraphValidationError        a Graph with a cycle, an unknown node, no start/end
    ├── ExecutionNotFoundError          no execution with that id
    ├── ExecutionStateError             the execution cannot do that now (resume a finished run...)
    ├── ExecutionError                  a workflow or task failed; wraps the user's exception
    │   └── TaskTimeoutError            a task attempt ran past its timeout
    ├── NonDeterminismError             replay found a workflow body that diverged from its history
    ├── SecretNotFoundError             a task asked for a secret that does not exist
    ├── SecretDecryptionError           stored secrets cannot be read with the configured key
    ├── SerializationError              a value cannot be stored or read back
    ├── ProtocolError                   the peer speaks another protocol version
    └── ApiError                        an HTTP call to a Flux server failed (status + message)
        ├── NotFoundError               404
        └── ConflictError               409 (stale claim generation, duplicate...)

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


class ExecutionNotFoundError(FluxError, LookupError):
    code = "execution_not_found"


class ExecutionStateError(FluxError):
    """The execution exists but cannot do what was asked in its current state."""

    code = "execution_state"


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


class SecretNotFoundError(FluxError, KeyError):
    code = "secret_not_found"


class SecretDecryptionError(FluxError):
    code = "secret_decryption"


class SerializationError(FluxError, ValueError):
    code = "serialization_error"


class ProtocolError(FluxError):
    code = "protocol_version"


class ApiError(FluxError):
    """A Flux server answered with an error status."""

    code = "api_error"

    def __init__(self, message: str, status_code: int = 500, **details: Any) -> None:
        super().__init__(message, status_code=status_code, **details)
        self.status_code = status_code

    def __reduce__(self) -> Any:
        return (_rebuild_api_error, (type(self), self.message, self.details))


def _rebuild_api_error(cls: type[ApiError], message: str, details: dict[str, Any]) -> ApiError:
    details = dict(details)
    status = details.pop("status_code", 500)
    return cls(message, status, **details)


class NotFoundError(ApiError, LookupError):
    code = "not_found"


class ConflictError(ApiError):
    code = "conflict"


class ExecutionPaused(BaseException):
    """Raised inside a workflow by ``pause()`` to unwind it; the run ends PAUSED."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name
