"""Each execution's trace starts here: the ``flux.execution.create`` span.

When the server traces (the ``OTEL_*`` environment asks for it, see
:mod:`flux.observability`; or ``ServerOptions.tracer_provider``), creating an execution opens
``flux.execution.create``, a child of the caller's ``traceparent`` header when there is one,
and stores that span's context with the execution. Workers continue that trace in every
segment they run. When it does not trace, the caller's ``traceparent`` (if valid) is stored
as it is, so the workers' spans still join the caller's trace, at no cost otherwise.

Attributes never carry inputs, outputs or secrets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flux.observability import span_context_of, tracer_provider

from flux_server.version import SERVER_VERSION

if TYPE_CHECKING:
    from flux.spans import OpenSpan
    from opentelemetry.sdk.trace import TracerProvider

    from flux_server.store.workflows import LatestWorkflow

__all__ = ["CREATE_SPAN", "Creation", "ExecutionTracer", "execution_tracer"]

CREATE_SPAN = "flux.execution.create"


def execution_tracer(provider: TracerProvider | None) -> ExecutionTracer | None:
    """The tracer of execution creates: with ``provider``, else the process's from the
    environment; ``None`` when the server does not trace."""
    provider = provider or tracer_provider("flux-server", make_global=False)
    return None if provider is None else ExecutionTracer(provider)


class Creation:
    """An execution being created under its ``flux.execution.create`` span: a context
    manager, which ends the span when the create is done (an error escaping it is recorded
    on the span)."""

    __slots__ = ("span", "traceparent", "tracer")

    def __init__(self, tracer: ExecutionTracer, span: OpenSpan) -> None:
        self.tracer = tracer
        self.span = span
        self.traceparent = span.traceparent()
        """What the execution stores: this span's context (flagged unsampled when the sampler
        left it out, so that the workers leave the execution's segments out too)."""

    def created(self, execution_id: str) -> None:
        """The execution is ``execution_id`` (when the client chose the id of an execution
        that was there already, that one, which keeps its own trace)."""
        self.span.set_attributes({"flux.execution.id": execution_id})

    def __enter__(self) -> Creation:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: Any
    ) -> None:
        span = self.span
        if error is not None:
            span.record_exception(error)
            span.set_status(self.tracer.error, f"{type(error).__name__}: {error}")
        span.end()


class ExecutionTracer:
    """Opens the ``flux.execution.create`` span of each new execution."""

    def __init__(self, provider: TracerProvider) -> None:
        from flux.spans import SpanMaker
        from opentelemetry import trace

        self.spans = SpanMaker(provider, "flux_server", SERVER_VERSION)
        self.producer = trace.SpanKind.PRODUCER
        self.error = trace.StatusCode.ERROR

    def creating(self, workflow: LatestWorkflow, caller: str | None, **attributes: Any) -> Creation:
        """The span of one create (use it as a context manager), a child of ``caller`` (a
        valid ``traceparent``) or a new trace; ``attributes`` add to the workflow's. (Not made
        the current span: nothing the create calls makes spans, and attaching a context
        costs each create.)"""
        return Creation(
            self,
            self.spans.start(
                CREATE_SPAN,
                span_context_of(caller),
                kind=self.producer,
                attributes={
                    "flux.workflow.name": workflow.name,
                    "flux.workflow.version": workflow.version,
                    **attributes,
                },
            ),
        )
