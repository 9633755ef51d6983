"""Registering, listing and describing workflows over HTTP."""

from __future__ import annotations

import pytest
from flux.errors import ApiError, NotFoundError
from server_support import GPU_FLOW, HELLO

TWO = b"""
from flux import workflow

@workflow
async def first(ctx):
    return 1

@workflow.with_options(name="second", secret_requests=["TOKEN"])
async def _second(ctx):
    return 2
"""


async def test_register_list_get_and_versions(server) -> None:
    registered = await server.client.register_workflows(TWO, filename="two.py")
    assert [(w.name, w.version) for w in registered] == [("first", 1), ("second", 1)]
    assert registered[1].options.secret_requests == ["TOKEN"]

    # The same source again keeps the versions; a changed file makes version 2.
    again = await server.client.register_workflows(TWO, filename="two.py")
    assert [(w.name, w.version, w.id) for w in again] == [
        (w.name, w.version, w.id) for w in registered
    ]
    changed = await server.client.register_workflows(TWO + b"\n# v2\n", filename="two.py")
    assert [(w.name, w.version) for w in changed] == [("first", 2), ("second", 2)]

    listed = await server.client.list_workflows()
    assert [(w.name, w.version) for w in listed] == [("first", 2), ("second", 2)]

    detail = await server.client.get_workflow("second")
    assert detail.version == 2
    assert detail.source.endswith("# v2\n")
    assert [v.version for v in detail.versions] == [1, 2]
    assert detail.versions[1].id == detail.id


async def test_options_are_kept(server) -> None:
    (train,) = await server.client.register_workflows(GPU_FLOW)
    assert train.options.requests is not None
    assert (train.options.requests.gpu, train.options.requests.memory) == (1, 2**30)


async def test_runs_use_the_latest_version_and_keep_theirs(server) -> None:
    await server.register(HELLO)
    first = await server.client.run("hello", 1)
    await server.register(HELLO + b"\n# edited\n")
    second = await server.client.run("hello", 2)
    assert (first.workflow_version, second.workflow_version) == (1, 2)
    assert (await server.client.status("hello", first.execution_id)).workflow_version == 1


async def test_unknown_workflow_is_404(server) -> None:
    with pytest.raises(NotFoundError, match="no workflow named 'nope'"):
        await server.client.get_workflow("nope")
    with pytest.raises(NotFoundError):
        await server.client.run("nope")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"def oops(:\n", "syntax error at line 1"),
        (b"import os\n", "defines no workflow"),
        (b"\xff\xfe\x00garbage\x89PNG", "not UTF-8"),
        (b"", "defines no workflow"),
    ],
)
async def test_bad_uploads_are_400(server, content: bytes, message: str) -> None:
    with pytest.raises(ApiError, match=message) as info:
        await server.client.register_workflows(content, filename="bad.py")
    assert info.value.status_code == 400
