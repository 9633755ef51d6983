"""Engine call identity: how a task call is named in the history (scope, occurrence,
digest of its arguments), which replay relies on."""

from __future__ import annotations

from flux import ExecutionContext, task, workflow
from flux._identity import call_digest
from sdk_support import events_of


def test_nested_tasks_are_scoped_to_their_parent():
    @task
    async def inner(x: int) -> int:
        return x + 1

    @task
    async def outer(x: int) -> int:
        return await inner(x) + await inner(x)

    @workflow
    async def wf(ctx: ExecutionContext[int]):
        return await outer(ctx.input)

    result = wf.run(1)
    assert result.output == 4
    outer_id = events_of(result, "TASK_STARTED")[0].source_id
    inner_started = [e for e in events_of(result, "TASK_STARTED") if e.name == "inner"]
    assert [e.scope for e in inner_started] == [outer_id, outer_id]
    assert inner_started[0].source_id != inner_started[1].source_id


def test_repeated_identical_calls_get_distinct_occurrence_ids():
    @task
    async def same(x: int) -> int:
        return x

    @workflow
    async def wf(ctx: ExecutionContext):
        return [await same(1), await same(1), await same(2), await same(1)]

    result = wf.run()
    ids = [e.source_id for e in events_of(result, "TASK_STARTED")]
    digest_1 = call_digest("", "same", (1,), {})
    digest_2 = call_digest("", "same", (2,), {})
    assert ids == [
        f"same:{digest_1}:0",
        f"same:{digest_1}:1",
        f"same:{digest_2}:0",
        f"same:{digest_1}:2",
    ]


def test_identity_does_not_depend_on_object_addresses_or_dict_order():
    class Opaque:
        def __init__(self, v: int) -> None:
            self.v = v

    assert call_digest("", "t", (Opaque(1),), {}) == call_digest("", "t", (Opaque(1),), {})
    assert call_digest("", "t", (Opaque(1),), {}) != call_digest("", "t", (Opaque(2),), {})
    assert call_digest("", "t", ({"a": 1, "b": 2},), {}) == call_digest(
        "", "t", ({"b": 2, "a": 1},), {}
    )
    assert call_digest("", "t", ((1, 2),), {}) != call_digest("", "t", ([1, 2],), {})


def test_canonical_text_of_arguments_is_fixed():
    """Recorded histories name their calls by this text's digest: it must never change."""
    from flux._identity import canonical

    args = (1, "a'b", None, 2.5, True, b"x", [3, (4,)], {"k": [None]}, frozenset({2, 1}))
    expected = "(1,\"a'b\",None,2.5,True,b'x',[3,(4)],{'k':[None]},set{1,2})"
    assert canonical(args) == expected
    assert call_digest("", "t", (7, "x"), {"k": 1}) == "53c745bfc4f4d1ea"
    # Calls with no argument or one primitive take a shortcut to the same text.
    assert (canonical(()), canonical(("x",)), canonical((None,))) == ("()", "('x')", "(None)")
    assert call_digest("s", "t", (), {}) == "2ebbb5208f70b9e5"
    assert call_digest("", "t", (7,), {}) == "a6c311df6fd81cce"
    assert call_digest("", "t", ("x",), {"k": 1}) == "f3394e97ff15d735"
