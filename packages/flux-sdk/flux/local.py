"""Wiring for in-process runs: the store from configuration and the services tasks use."""

from __future__ import annotations

from typing import Any

from flux.store import LocalStore

__all__ = ["LocalServices", "open_store"]


def open_store() -> LocalStore:
    """The local store named by configuration (``.flux/flux.db`` by default)."""
    from flux.config import Configuration

    settings = Configuration.get().settings
    return LocalStore.open(settings.local_db_path, settings.serializer)


class LocalServices:
    """Secrets from the local encrypted store, the cache table, subworkflows in-process."""

    def __init__(self, store: LocalStore) -> None:
        self.store = store

    async def get_secrets(self, names: list[str]) -> dict[str, Any]:
        from flux.config import Configuration
        from flux.secrets import LocalSecretStore

        settings = Configuration.get().settings
        return LocalSecretStore.from_settings(settings).get_many(names)

    def cache_get(self, key: str) -> tuple[bool, Any]:
        return self.store.cache_get(key)

    def cache_put(self, key: str, value: Any) -> None:
        self.store.cache_put(key, value)

    async def call_workflow(self, target: Any, input: Any, execution_id: str) -> Any:
        from flux.errors import ExecutionNotFoundError, UsageError
        from flux.workflow import workflow

        if not isinstance(target, workflow):
            raise UsageError(
                f"a local run can only call workflow objects, not {target!r}; "
                "calling a workflow by name needs a Flux server"
            )
        try:
            stored = self.store.load(execution_id)
        except ExecutionNotFoundError:
            from flux.context import ExecutionContext

            ctx: ExecutionContext[Any] = ExecutionContext(target.name, input, execution_id)
            self.store.create(ctx)
            child = await target._drive(self.store, ctx)
        else:
            child = stored.ctx
            if not child.has_finished:
                resume = _parent_resume_input(execution_id)
                child = await target.arun(resume, execution_id=execution_id, store=self.store)
        return _child_outcome(child)


def _parent_resume_input(child_id: str) -> Any:
    """What the calling run was resumed with after it paused because this child paused: the
    input a paused child resumes with."""
    from flux._runtime import current_run
    from flux.domain import EventType

    run = current_run.get()
    if run is None:
        return None
    reason = f"subworkflow:{child_id}"
    for event in reversed(run.ctx.events):
        if event.type is EventType.WORKFLOW_PAUSED and event.value == reason:
            return run.resume_value_after(event)[1]
    return None


def _child_outcome(child: Any) -> Any:
    from flux.errors import ExecutionError, ExecutionPaused

    if child.has_succeeded:
        return child.output
    if child.has_failed:
        out = child.output
        if isinstance(out, BaseException):
            raise out
        raise ExecutionError(f"subworkflow {child.workflow_name!r} failed: {out!r}")
    if child.is_paused:
        raise ExecutionPaused(f"subworkflow:{child.execution_id}")
    raise ExecutionError(
        f"subworkflow {child.workflow_name!r} ended {child.state.value}",
        execution_id=child.execution_id,
    )
