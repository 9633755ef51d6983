"""Errors: the store raises domain errors, one handler gives each its HTTP status, and the
client raises the same class again, so a local run and a server call fail alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flux import ExecutionContext, workflow
from flux.domain import ExecutionState
from flux.errors import (
    ApiError,
    ConflictError,
    ExecutionNotFoundError,
    ExecutionStateError,
    FluxError,
    InvalidScheduleError,
    NotFoundError,
    ProtocolError,
    SecretNotFoundError,
    SerializationError,
    UsageError,
    error_class,
)
from flux.store import LocalStore
from flux_server.errors import status_of

from tests.support.waiting import wait_until_async


@workflow
async def hello(ctx: Any) -> str:
    return f"Hello, {ctx.input}"


@pytest.fixture
def local(tmp_path: Path) -> Iterator[LocalStore]:
    store = LocalStore(tmp_path / "local" / "flux.db", "json")
    yield store
    store.close()


async def _raised(call: Callable[[], Awaitable[Any]]) -> FluxError:
    with pytest.raises(FluxError) as info:
        await call()
    return info.value


async def test_a_local_run_and_a_server_call_raise_the_same_class(server, local) -> None:
    await server.register()
    client = server.client
    worker = await server.worker("w1")
    run = await client.run("hello", "x")
    await worker.finish(await worker.take(), "Hello, x")

    async def finished() -> bool:
        status = await client.status("hello", run.execution_id)
        return status.state == ExecutionState.COMPLETED

    await wait_until_async(finished)
    queued = await client.run("hello", "y")  # offered, never claimed: not paused
    done = await hello.arun("x", store=local)
    local_id = done.execution_id
    created: ExecutionContext[Any] = ExecutionContext("hello", "y")  # never started
    local.create(created)

    async def cancel_locally() -> Any:
        return workflow.cancel(local_id, store=local)

    situations: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
        "unknown execution": (
            lambda: hello.arun(execution_id="nope", store=local),
            lambda: client.status("hello", "nope"),
        ),
        "resume of an execution that is not paused": (
            lambda: hello.arun("again", execution_id=created.execution_id, store=local, pause="ok"),
            lambda: client.resume("hello", queued.execution_id, "again"),
        ),
        "cancel of a finished execution": (
            cancel_locally,
            lambda: client.cancel("hello", run.execution_id),
        ),
        # A local run holds its workflow: the store of the server is the one that looks
        # workflows up by name.
        "unknown workflow": (
            lambda: server.runtime.workflows.latest("nope"),
            lambda: client.run("nope"),
        ),
    }
    raised = {}
    for situation, (locally, remotely) in situations.items():
        here, there = await _raised(locally), await _raised(remotely)
        assert type(here) is type(there), situation
        assert here.code == there.code
        raised[situation] = type(there)
    assert raised == {
        "unknown execution": ExecutionNotFoundError,
        "resume of an execution that is not paused": ExecutionStateError,
        "cancel of a finished execution": ExecutionStateError,
        "unknown workflow": NotFoundError,
    }
    # The same for the other operations on an unknown execution, with their statuses.
    for call in (
        lambda: client.resume("hello", "nope"),
        lambda: client.cancel("hello", "nope"),
        lambda: client.status("other", run.execution_id),  # of another workflow
    ):
        error = await _raised(call)
        assert type(error) is ExecutionNotFoundError
        assert isinstance(error, ApiError) and error.status_code == 404
    error = await _raised(lambda: client.resume("hello", run.execution_id, "again"))
    assert type(error) is ExecutionStateError  # finished: not paused either
    assert isinstance(error, ApiError) and error.status_code == 409
    assert error.details["error_details"] == {"state": "COMPLETED"}


async def test_a_domain_error_raised_locally_has_no_status_and_one_shape(server) -> None:
    local = ExecutionNotFoundError("no execution 'e'", execution_id="e")
    assert local.status_code is None
    assert local.to_dict() == {
        "type": "ExecutionNotFoundError",
        "code": "execution_not_found",
        "message": "no execution 'e'",
        "details": {"execution_id": "e"},
    }
    response = await server.http.get("/workflows/hello/status/e")
    assert response.status_code == 404
    assert response.json()["code"] == "execution_not_found"


def test_one_table_gives_each_error_type_its_status() -> None:
    assert status_of(ExecutionNotFoundError("m")) == 404
    assert status_of(SecretNotFoundError("m")) == 404
    assert status_of(NotFoundError("m")) == 404
    assert status_of(ExecutionStateError("m")) == 409
    assert status_of(ConflictError("m")) == 409
    assert status_of(InvalidScheduleError("m")) == 400
    assert status_of(UsageError("m")) == 400
    assert status_of(SerializationError("m")) == 400
    assert status_of(ProtocolError("m")) == 426
    assert status_of(FluxError("m")) == 500
    assert status_of(ApiError("m")) == 500
    assert status_of(ApiError("m", 403)) == 403  # an HTTP layer's own status (auth)


def test_each_code_names_one_class() -> None:
    import flux.errors

    classes = [
        c for c in vars(flux.errors).values() if isinstance(c, type) and issubclass(c, FluxError)
    ]
    codes = [c.code for c in classes]
    assert len(codes) == len(set(codes))
    assert all(error_class(c.code) is c for c in classes)
    assert error_class("no_such_code") is None
