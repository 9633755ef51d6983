"""The ``@task`` decorator: a durable, retried, recorded step of a workflow."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, ParamSpec, TypeVar

from flux._clock import clock
from flux._identity import canonical
from flux._options import check_option_names, options_method
from flux._runtime import (
    SUCCESS_TASK_EVENTS,
    Run,
    call_plain,
    current_run,
    current_scope,
)
from flux.domain import EventType, ExecutionEvent
from flux.errors import (
    ExecutionPaused,
    SecretNotFoundError,
    TaskTimeoutError,
    UsageError,
)

__all__ = ["TaskMetadata", "task"]

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class TaskMetadata:
    """What a task with ``metadata=True`` learns about its own call."""

    task_id: str
    task_name: str


def _number(name: str, value: Any, *, minimum: float = 0) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise UsageError(f"task option {name}={value!r} must be a number >= {minimum}")
    return float(value)


class task(Generic[P, R]):
    """Decorate an ``async def`` to make it a task.

    Options (all keyword): ``name``, ``retry_max_attempts`` (retries after the first failure),
    ``retry_delay`` (seconds before the first retry), ``retry_backoff`` (delay multiplier per
    retry), ``timeout`` (seconds per attempt; 0 = none), ``fallback`` and ``rollback`` (called
    with the task's arguments, sync or async), ``secret_requests`` (names filled into the
    task's ``secrets`` argument), ``cache`` (reuse results of identical calls across
    executions), ``metadata`` (fill the task's ``metadata`` argument with :class:`TaskMetadata`).

    An exception whose ``retryable`` attribute is ``False`` is not retried; one with a
    ``retry_after`` attribute (seconds) makes the next attempt wait at least that long.

    Raises:
        UsageError: the function is not ``async def`` or an option has the wrong type.
    """

    def __init__(
        self,
        func: Callable[P, Awaitable[R]],
        *,
        name: str | None = None,
        retry_max_attempts: int = 0,
        retry_delay: float = 1,
        retry_backoff: float = 2,
        timeout: float = 0,
        fallback: Callable[..., Any] | None = None,
        rollback: Callable[..., Any] | None = None,
        secret_requests: Sequence[str] = (),
        cache: bool = False,
        metadata: bool = False,
    ) -> None:
        if not callable(func):
            raise UsageError(f"@task needs an async function, got {func!r}")
        if not inspect.iscoroutinefunction(func):
            raise UsageError(
                f"@task needs an async function: define {getattr(func, '__name__', func)!r} "
                "with 'async def'"
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise UsageError(f"task option name={name!r} must be a non-empty string")
        if isinstance(retry_max_attempts, bool) or not isinstance(retry_max_attempts, int):
            raise UsageError(
                f"task option retry_max_attempts={retry_max_attempts!r} must be an int"
            )
        if retry_max_attempts < 0:
            raise UsageError(f"task option retry_max_attempts={retry_max_attempts!r} must be >= 0")
        for label, fn in (("fallback", fallback), ("rollback", rollback)):
            if fn is not None and not callable(fn):
                raise UsageError(f"task option {label}={fn!r} must be callable")
        if not isinstance(secret_requests, list | tuple | set | frozenset) or not all(
            isinstance(s, str) for s in secret_requests
        ):
            raise UsageError(
                f"task option secret_requests={secret_requests!r} must be a list of names"
            )
        for label, flag in (("cache", cache), ("metadata", metadata)):
            if not isinstance(flag, bool):
                raise UsageError(f"task option {label}={flag!r} must be True or False")
        self.func = func
        self.name: str = name or func.__name__
        self.retry_max_attempts = retry_max_attempts
        self.retry_delay = _number("retry_delay", retry_delay)
        self.retry_backoff = _number("retry_backoff", retry_backoff)
        self.timeout = _number("timeout", timeout)
        self.fallback = fallback
        self.rollback = rollback
        self.secret_requests = list(secret_requests)
        self.cache = cache
        self.metadata = metadata
        functools.update_wrapper(self, func)  # type: ignore[arg-type]  # keeps __name__/__doc__

    @options_method
    def with_options(
        cls: Any, self: task[Any, Any] | None, func: Any = None, **options: Any
    ) -> Any:
        """``@task.with_options(...)`` decorator, or ``some_task.with_options(...)`` variant."""
        check_option_names("task", cls, options)
        if self is not None:
            merged = {**self._options(), **options}
            return cls(self.func, **merged)
        if func is not None:
            return cls(func, **options)
        return lambda f: cls(f, **options)

    def _options(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retry_max_attempts": self.retry_max_attempts,
            "retry_delay": self.retry_delay,
            "retry_backoff": self.retry_backoff,
            "timeout": self.timeout,
            "fallback": self.fallback,
            "rollback": self.rollback,
            "secret_requests": self.secret_requests,
            "cache": self.cache,
            "metadata": self.metadata,
        }

    def __flux_identity__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<task {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        return self._invoke(args, kwargs)

    async def map(self, items: Iterable[Any]) -> list[R]:
        """Run this task once per item, in parallel; results in input order."""
        from flux.tasks.parallel import parallel

        return await parallel(*(self._invoke((item,), {}) for item in items))

    # -- execution -----------------------------------------------------------------------------

    async def _invoke(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        run = current_run.get()
        if run is None:  # called outside a workflow: a plain call with the same policies
            return await self._attempts(None, "", "", args, kwargs, None)
        source_id, scope = run.identify(self.name, args, kwargs)
        history = run.history.get(source_id)
        if history is not None:
            done = run.terminal.get(source_id)
            if done is not None:
                if done.type in SUCCESS_TASK_EVENTS:
                    return done.value  # type: ignore[no-any-return]
                raise done.value
        else:
            if self.cache:
                hit, value = self._cache_lookup(run, args, kwargs)
                if hit:
                    run.emit(EventType.TASK_STARTED, source_id, self.name, None, scope)
                    run.emit(EventType.TASK_COMPLETED, source_id, self.name, value, scope)
                    await run.commit()
                    return value  # type: ignore[no-any-return]
            run.emit(EventType.TASK_STARTED, source_id, self.name, _args_value(args, kwargs), scope)
        if run.settled < run.commits:  # inline: most calls have nothing to wait for
            await run.settle()
        token = current_scope.set(source_id)
        interrupted = _interrupted_recovery(self.name, history) if history else None
        if interrupted is not None:
            # The process stopped inside this task's fallback or rollback: every attempt
            # already failed, so recovery goes on where it stopped, the body not run again.
            try:
                return await self._recover(run, source_id, scope, args, kwargs, *interrupted)
            finally:
                current_scope.reset(token)
        try:
            result = await self._attempts(run, source_id, scope, args, kwargs, history)
        except ExecutionPaused:
            raise
        except asyncio.CancelledError:
            if run.cancelling and self.rollback is not None:
                try:
                    await self._run_handler(run, source_id, scope, "rollback", args, kwargs)
                except Exception:
                    pass  # recorded as TASK_ROLLBACK_FAILED; the run still ends cancelled
            run.emit(EventType.TASK_CANCELLED, source_id, self.name, None, scope)
            run.write()
            raise
        except Exception as exc:
            if run.diverged is not None:  # replay broke, the task did not fail
                raise
            return await self._recover(run, source_id, scope, args, kwargs, exc)
        finally:
            current_scope.reset(token)
        run.emit(EventType.TASK_COMPLETED, source_id, self.name, result, scope)
        if self.cache:
            self._cache_store(run, args, kwargs, result)
        await run.commit()
        return result

    async def _recover(
        self,
        run: Run,
        source_id: str,
        scope: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        exc: Exception,
        fallback_failed: bool = False,
    ) -> R:
        """Fallback, else rollback, after every attempt failed (``exc`` the last failure);
        returns or raises. ``fallback_failed``: a recorded fallback already failed with
        ``exc``, so only the rollback is left."""
        if self.fallback is not None and not fallback_failed:
            try:
                value = await self._run_handler(
                    run, source_id, scope, "fallback", args, kwargs, exc
                )
            except Exception as fallback_exc:
                exc = fallback_exc
            else:
                run.emit(EventType.TASK_FALLBACK_COMPLETED, source_id, self.name, value, scope)
                await run.commit()
                return value  # type: ignore[no-any-return]
        if self.rollback is not None:
            try:
                await self._run_handler(run, source_id, scope, "rollback", args, kwargs, exc)
            except Exception:
                pass  # recorded as TASK_ROLLBACK_FAILED; the task's own error wins
        run.emit(EventType.TASK_FAILED, source_id, self.name, exc, scope)
        await run.commit()
        raise exc

    async def _run_handler(
        self,
        run: Run,
        source_id: str,
        scope: str,
        which: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        cause: BaseException | None = None,
    ) -> Any:
        """Run the fallback or rollback. Its start, carrying the error it handles (``cause``),
        is durable before it runs: a process that stops inside it resumes the recovery, not
        the task's attempts."""
        fn = self.fallback if which == "fallback" else self.rollback
        started, completed, failed = _HANDLER_EVENTS[which]
        run.emit(started, source_id, self.name, cause, scope)
        if cause is not None:  # a cancelled task's rollback records no error, waits for nothing
            await run.commit()
            await run.settle()
        try:
            value = call_plain(fn, args, kwargs)  # type: ignore[arg-type]
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            run.emit(failed, source_id, self.name, exc, scope)
            raise
        if which == "rollback":
            run.emit(completed, source_id, self.name, value, scope)
        return value

    async def _attempts(
        self,
        run: Run | None,
        source_id: str,
        scope: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        history: list[ExecutionEvent] | None,
    ) -> R:
        """Run the body, retrying per the options. Resumes at an interrupted retry."""
        attempt = 0
        resumed_retry: ExecutionEvent | None = None
        if history:
            failed = [e for e in history if e.type is EventType.TASK_RETRY_FAILED]
            starts = [e for e in history if e.type is EventType.TASK_RETRY_STARTED]
            if len(starts) > len(failed):  # the process died during this attempt: redo it
                attempt = len(starts)
                resumed_retry = starts[-1]
            elif starts and len(failed) >= self.retry_max_attempts:
                raise failed[-1].value  # it died after the last attempt failed
            elif starts:
                attempt = len(failed) + 1
        call_kwargs = await self._fill_arguments(run, source_id, kwargs)
        hint = 0.0  # the last failure's retry_after
        while True:
            try:
                if attempt > 0 and run is not None:
                    if resumed_retry is None:
                        delay = max(hint, self.retry_delay * self.retry_backoff ** (attempt - 1))
                        not_before = clock().timestamp() + delay
                        run.emit(
                            EventType.TASK_RETRY_STARTED,
                            source_id,
                            self.name,
                            {"attempt": attempt, "delay": delay, "not_before": not_before},
                            scope,
                        )
                        run.write()
                    else:
                        not_before = resumed_retry.value["not_before"]
                        resumed_retry = None
                    wait = not_before - clock().timestamp()
                    if wait > 0:
                        await clock().sleep(wait)
                elif attempt > 0:
                    delay = max(hint, self.retry_delay * self.retry_backoff ** (attempt - 1))
                    await clock().sleep(delay)
                result = await self._call_once(args, call_kwargs)
            except Exception as exc:
                if run is not None and run.diverged is not None:
                    raise  # a nested call broke replay: not a failure to retry
                if attempt > 0 and run is not None:
                    run.emit(EventType.TASK_RETRY_FAILED, source_id, self.name, exc, scope)
                if attempt >= self.retry_max_attempts or not _retryable(exc):
                    if run is None and self.fallback is not None:
                        value = call_plain(self.fallback, args, kwargs)
                        return await value if inspect.isawaitable(value) else value  # type: ignore[no-any-return]
                    raise
                attempt += 1
                hint = _retry_after(exc)
                continue
            if attempt > 0 and run is not None:
                run.emit(EventType.TASK_RETRY_COMPLETED, source_id, self.name, None, scope)
            return result

    async def _call_once(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        if not self.timeout:
            return await self.func(*args, **kwargs)  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(self.timeout) as deadline:
                return await self.func(*args, **kwargs)  # type: ignore[arg-type]
        except TimeoutError:
            if deadline.expired():
                raise TaskTimeoutError(
                    f"task {self.name!r} timed out after {self.timeout:g}s",
                    task=self.name,
                    timeout=self.timeout,
                ) from None
            raise

    async def _fill_arguments(
        self, run: Run | None, source_id: str, kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        if not self.secret_requests and not self.metadata:
            return kwargs
        kwargs = dict(kwargs)
        if self.secret_requests:
            kwargs["secrets"] = await _fetch_secrets(run, self.name, self.secret_requests)
        if self.metadata:
            kwargs["metadata"] = TaskMetadata(task_id=source_id, task_name=self.name)
        return kwargs

    def _cache_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        text = f"{self.name}\x00{canonical(args)}\x00{canonical(kwargs)}"
        return f"{self.name}:{hashlib.sha256(text.encode()).hexdigest()}"

    def _cache_lookup(
        self, run: Run, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[bool, Any]:
        if run.services is None:
            return False, None
        return run.services.cache_get(self._cache_key(args, kwargs))

    def _cache_store(
        self, run: Run, args: tuple[Any, ...], kwargs: dict[str, Any], value: Any
    ) -> None:
        if run.services is not None:
            run.services.cache_put(self._cache_key(args, kwargs), value)


_HANDLER_EVENTS = {
    "fallback": (
        EventType.TASK_FALLBACK_STARTED,
        EventType.TASK_FALLBACK_COMPLETED,
        EventType.TASK_FALLBACK_FAILED,
    ),
    "rollback": (
        EventType.TASK_ROLLBACK_STARTED,
        EventType.TASK_ROLLBACK_COMPLETED,
        EventType.TASK_ROLLBACK_FAILED,
    ),
}


def _interrupted_recovery(
    name: str, history: list[ExecutionEvent]
) -> tuple[Exception, bool] | None:
    """``(error, fallback_failed)`` when the history stops inside the fallback or rollback of
    a failed task (a handler start that carries the error it handles, no terminal event).

    A rollback of a cancelled task carries no error: it is not a failure to recover from.
    """
    handled = [
        e
        for e in history
        if e.type in (EventType.TASK_FALLBACK_STARTED, EventType.TASK_ROLLBACK_STARTED)
        and isinstance(e.value, Exception)
    ]
    if not handled:
        return None
    for e in reversed(history):
        if e.type is EventType.TASK_FALLBACK_FAILED:  # its error is the task's error now
            return (e.value if isinstance(e.value, Exception) else handled[-1].value), True
    return handled[-1].value, False


def _retryable(exc: Exception) -> bool:
    """An error that says ``retryable = False`` (a rejected credential, a malformed request)
    would fail the same way again: the task fails at once."""
    return getattr(exc, "retryable", True) is not False


def _retry_after(exc: Exception) -> float:
    """The ``retry_after`` seconds an error asks for (a rate limit's ``Retry-After``), 0 if
    none: the next attempt waits at least that long."""
    value = getattr(exc, "retry_after", None)
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        return 0.0
    return max(0.0, float(value))


def _args_value(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not kwargs:
        return list(args) if args else None
    return {"args": list(args), "kwargs": kwargs}


async def _fetch_secrets(run: Run | None, task_name: str, names: list[str]) -> dict[str, Any]:
    try:
        if run is not None and run.services is not None:
            return await run.services.get_secrets(names)
        from flux.config import Configuration
        from flux.secrets import LocalSecretStore

        return LocalSecretStore.from_settings(Configuration.get().settings).get_many(names)
    except SecretNotFoundError as exc:
        # Name the task whichever source answered (local store, worker, server).
        raise SecretNotFoundError(f"task {task_name!r}: {exc.message}", **exc.details) from None
