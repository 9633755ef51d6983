"""ExecutionContext: what a workflow body receives and what a run returns."""

from __future__ import annotations

import json
from typing import Any, Generic, TypeVar

from flux.domain import (
    FINISHED_STATES,
    WORKFLOW_EVENT_STATE,
    EventType,
    ExecutionEvent,
    ExecutionState,
)
from flux.pauses import PAUSE_TASK, Pause, PauseRecord, waiting_pauses
from flux.serialization import to_view

__all__ = ["ExecutionContext", "run_state"]

T = TypeVar("T")


class ExecutionContext(Generic[T]):
    """One execution of a workflow: its identity, input, event log and derived state.

    The lifecycle state and the output are read from the last workflow-level event, never
    from a task event, so a late sibling task cannot change what the execution reports.
    """

    __slots__ = (
        "_output",
        "_state",
        "events",
        "execution_id",
        "input",
        "workflow_id",
        "workflow_name",
        "workflow_version",
    )

    def __init__(
        self,
        workflow_name: str,
        input: T | None = None,
        execution_id: str | None = None,
        workflow_id: str | None = None,
        events: list[ExecutionEvent] | None = None,
        state: ExecutionState = ExecutionState.CREATED,
        workflow_version: int | None = None,
    ) -> None:
        from uuid import uuid4

        self.execution_id = execution_id or uuid4().hex
        self.workflow_name = workflow_name
        self.workflow_id = workflow_id or workflow_name
        self.workflow_version = workflow_version
        self.input: T | None = input
        self.events: list[ExecutionEvent] = list(events) if events else []
        self._state = state
        self._output: Any = None
        # A replayed history is mostly task events: one lookup each, no call.
        workflow_state = WORKFLOW_EVENT_STATE.get
        for event in self.events:
            state_after = workflow_state(event.type)
            if state_after is not None:
                self._follow(event, state_after)

    def append_event(self, event: ExecutionEvent) -> None:
        """Append ``event`` to the log and take the state it sets (the engine's way in;
        workflow code never calls it)."""
        self.events.append(event)
        state = WORKFLOW_EVENT_STATE.get(event.type)
        if state is not None:
            self._follow(event, state)

    def _follow(self, event: ExecutionEvent, state: ExecutionState) -> None:
        """Take the state (and output, or input) a workflow-level ``event`` sets."""
        self._state = state
        if state in FINISHED_STATES:
            self._output = event.value
        elif event.type is EventType.WORKFLOW_STARTED and self.input is None:
            self.input = event.value

    @property
    def state(self) -> ExecutionState:
        return self._state

    @property
    def output(self) -> Any:
        """The workflow's return value; for a failed run, the exception that ended it."""
        return self._output

    @property
    def has_started(self) -> bool:
        return self._state not in (ExecutionState.CREATED, ExecutionState.SCHEDULED)

    @property
    def is_running(self) -> bool:
        return self._state in (ExecutionState.RUNNING, ExecutionState.CLAIMED)

    @property
    def has_finished(self) -> bool:
        return self._state in FINISHED_STATES

    @property
    def has_succeeded(self) -> bool:
        return self._state is ExecutionState.COMPLETED

    @property
    def has_failed(self) -> bool:
        return self._state is ExecutionState.FAILED

    @property
    def is_cancelled(self) -> bool:
        return self._state is ExecutionState.CANCELLED

    @property
    def is_paused(self) -> bool:
        return self._state is ExecutionState.PAUSED

    @property
    def pauses(self) -> list[Pause]:
        """The pauses waiting for a resume, oldest first (empty unless PAUSED)."""
        if self._state is not ExecutionState.PAUSED:
            return []
        return waiting_pauses(
            PauseRecord(e.type, e.source_id, e.scope, e.time, e.value)
            for e in self.events
            if e.name == PAUSE_TASK
        )

    def to_dict(self, detailed: bool = False) -> dict[str, Any]:
        """A JSON-able summary (values rendered with ``to_view``)."""
        data: dict[str, Any] = {
            "execution_id": self.execution_id,
            "workflow_id": self.workflow_id,
            "workflow_name": self.workflow_name,
            "state": self._state.value,
            "input": to_view(self.input),
            "output": to_view(self._output),
        }
        if detailed:
            data["events"] = [
                {
                    "id": e.id,
                    "type": e.type.value,
                    "source_id": e.source_id,
                    "name": e.name,
                    "value": to_view(e.value),
                    "time": e.time.isoformat(),
                }
                for e in self.events
            ]
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The whole context as JSON text: ids, workflow, state, input, output, the waiting
        pauses and every event (values rendered with ``to_view``)."""
        data = self.to_dict(detailed=True)
        data["pauses"] = [p.to_dict() for p in self.pauses]
        return json.dumps(data, indent=indent, default=str)

    def __repr__(self) -> str:
        return (
            f"ExecutionContext(workflow={self.workflow_name!r}, "
            f"execution_id={self.execution_id!r}, state={self._state.value})"
        )


def run_state() -> dict[str, Any] | None:
    """A dict that lives while this process runs the current execution (``None`` outside a
    workflow), shared by its parallel branches and tasks, for libraries built on Flux to keep
    what they derive from the body as it runs (``flux_agents`` keeps an agent's working
    memory there).

    It is never recorded: a replay starts with an empty dict, so fill it only from values
    the body gets back from tasks, and the replay rebuilds it the same.
    """
    from flux._runtime import current_run

    run = current_run.get()
    return None if run is None else run.extras
