"""The ``@workflow`` decorator and local durable runs."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from flux._options import check_option_names, options_method
from flux._runtime import current_run
from flux.context import ExecutionContext
from flux.errors import UsageError

if TYPE_CHECKING:
    from flux.protocol.workflows import ResourceRequest
    from flux.tasks.progress import Progress

__all__ = ["ResourceRequest", "workflow"]

T = TypeVar("T")
R = TypeVar("R")


def __getattr__(name: str) -> Any:
    if name == "ResourceRequest":
        from flux.protocol.workflows import ResourceRequest

        return ResourceRequest
    raise AttributeError(f"module 'flux.workflow' has no attribute {name!r}")


class workflow(Generic[T, R]):
    """Decorate ``async def name(ctx: ExecutionContext[T])`` to make it a workflow.

    Options: ``name``, ``schedule`` (a :mod:`flux.schedules` value; the server creates a
    ``<name>_auto`` schedule on registration), ``secret_requests``, ``requests`` (a
    :class:`ResourceRequest` or dict routing it to workers that have the resources), and
    ``metadata`` (free-form dict kept with the registration).

    Raises:
        UsageError: the function is not ``async def`` or an option has the wrong type.
    """

    def __init__(
        self,
        func: Callable[[ExecutionContext[T]], Awaitable[R]],
        *,
        name: str | None = None,
        schedule: Any = None,
        secret_requests: Sequence[str] = (),
        requests: ResourceRequest | dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        if not inspect.iscoroutinefunction(func):
            raise UsageError(
                f"@workflow needs an async function: define "
                f"{getattr(func, '__name__', func)!r} with 'async def'"
            )
        if name is not None and (not isinstance(name, str) or not name):
            raise UsageError(f"workflow option name={name!r} must be a non-empty string")
        if schedule is not None:
            from flux.schedules import Schedule

            if not isinstance(schedule, Schedule):
                raise UsageError(
                    f"workflow option schedule={schedule!r} must be made with cron(), "
                    "interval() or once() from flux"
                )
        if requests is not None:
            # The protocol's models cost most of `import flux`: loaded only when asked for.
            from flux.protocol.workflows import ResourceRequest
        if isinstance(requests, dict):
            try:
                requests = ResourceRequest(**requests)
            except (TypeError, ValueError) as exc:  # an unknown field; a bad value
                problem = str(exc).replace("\n", "; ")
                raise UsageError(f"workflow option requests={requests!r}: {problem}") from None
        elif requests is not None and not isinstance(requests, ResourceRequest):
            raise UsageError(
                f"workflow option requests={requests!r} must be a ResourceRequest or a dict"
            )
        if not isinstance(secret_requests, list | tuple | set | frozenset) or not all(
            isinstance(s, str) for s in secret_requests
        ):
            raise UsageError(
                f"workflow option secret_requests={secret_requests!r} must be a list of names"
            )
        if metadata is not None and not isinstance(metadata, dict):
            raise UsageError(f"workflow option metadata={metadata!r} must be a dict")
        self.func = func
        self.name: str = name or func.__name__
        self.schedule = schedule
        self.secret_requests = list(secret_requests)
        self.requests = requests
        self.metadata = dict(metadata or {})
        functools.update_wrapper(self, func)  # type: ignore[arg-type]  # keeps __name__/__doc__

    @options_method
    def with_options(
        cls: Any, self: workflow[Any, Any] | None, func: Any = None, **options: Any
    ) -> Any:
        """``@workflow.with_options(...)`` decorator, or a variant of an existing workflow."""
        check_option_names("workflow", cls, options)
        if self is not None:
            merged = {
                "name": self.name,
                "schedule": self.schedule,
                "secret_requests": self.secret_requests,
                "requests": self.requests,
                "metadata": self.metadata,
                **options,
            }
            return cls(self.func, **merged)
        if func is not None:
            return cls(func, **options)
        return lambda f: cls(f, **options)

    def __flux_identity__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<workflow {self.name!r}>"

    def __call__(self, input: Any = None) -> Awaitable[Any]:
        """Inside a workflow, ``await other(input)`` runs ``other`` as a subworkflow."""
        if current_run.get() is None:
            raise UsageError(
                f"call {self.name}.run(input) to start workflow {self.name!r}; awaiting it "
                "directly only works inside another workflow"
            )
        from flux.tasks.subworkflow import call

        return call(self, input)

    # -- local runs (driven by flux.local) ----------------------------------------------------

    def run(
        self,
        input: Any = None,
        *,
        execution_id: str | None = None,
        store: Any = None,
        pause: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> ExecutionContext[T]:
        """Run (or continue) an execution in this process, durably, and wait for it.

        With ``execution_id``, continues that execution: a paused one resumes with ``input``
        as the value its waiting ``await pause(...)`` returns (``pause`` names the one this
        answers, needed only when several wait); one whose process died replays from its
        log; one that already finished is returned as recorded, nothing run. Works from
        synchronous code; inside a running event loop it runs the workflow on a helper
        thread (prefer ``await wf.arun(...)`` there). Ctrl-C stops the run as a crash would:
        the execution stays resumable; only :meth:`cancel` cancels it. ``on_progress`` is
        called with each :class:`~flux.tasks.progress.Progress` its tasks publish.

        Raises:
            ExecutionNotFoundError: no execution with that id.
            ExecutionStateError: another live process runs it; ``pause`` names no waiting
                pause, or several wait and ``pause`` is missing.
            NonDeterminismError: the body no longer matches the recorded history.
        """
        from flux.local import run_blocking

        coro = self.arun(
            input, execution_id=execution_id, store=store, pause=pause, on_progress=on_progress
        )
        return run_blocking(coro, f"flux-run-{self.name}")

    async def arun(
        self,
        input: Any = None,
        *,
        execution_id: str | None = None,
        store: Any = None,
        pause: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> ExecutionContext[T]:
        """The async form of :meth:`run`."""
        from flux.local import run_local

        return await run_local(
            self,
            input,
            execution_id=execution_id,
            store=store,
            pause=pause,
            on_progress=on_progress,
        )

    @staticmethod
    def cancel(execution_id: str, *, store: Any = None) -> ExecutionContext[Any]:
        """Cancel a local execution from any process.

        A running one unwinds (its running task is rolled back) and ends CANCELLED; a paused
        or never-started one is marked CANCELLED at once.

        Raises:
            ExecutionNotFoundError: no execution with that id.
            ExecutionStateError: it already finished.
        """
        from flux.local import cancel_local

        return cancel_local(execution_id, store)
