"""Execution contexts built from a claim, by the worker and by its child processes alike."""

from __future__ import annotations

from typing import Any

from flux.context import ExecutionContext
from flux.domain import EventType, ExecutionEvent
from flux.protocol.claims import ClaimResponse
from flux.serialization import b64decode, loads

__all__ = ["context_from_claim", "failed_context"]


def context_from_claim(claim: ClaimResponse) -> ExecutionContext[Any]:
    """The execution as the claim describes it: input and full history, ready to replay.

    Raises:
        SerializationError: the input or a recorded value does not read back here.
        ProtocolError: the history is malformed.
    """
    return ExecutionContext(
        claim.workflow_name,
        loads(b64decode(claim.input)),
        claim.execution_id,
        workflow_id=claim.workflow_id,
        events=claim.history(),
        state=claim.state,
        workflow_version=claim.workflow_version,
    )


def failed_context(claim: ClaimResponse, exc: BaseException) -> ExecutionContext[Any]:
    """The execution ended FAILED by ``exc`` before its body could run; its one event is to
    be checkpointed."""
    ctx: ExecutionContext[Any] = ExecutionContext(
        claim.workflow_name, None, claim.execution_id, workflow_id=claim.workflow_id
    )
    ctx.append_event(
        ExecutionEvent(EventType.WORKFLOW_FAILED, claim.execution_id, claim.workflow_name, exc)
    )
    return ctx
