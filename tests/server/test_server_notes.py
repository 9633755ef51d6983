"""Notes: the text a committed write sends, parsed back the same way by every receiver."""

from __future__ import annotations

import pytest
from flux.domain import ExecutionState
from flux_server import notes
from flux_server.notes import Note, cancel_note, drop_note, exec_note, parse, token_note


def test_every_note_parses_back_to_what_was_built() -> None:
    assert parse(notes.DISPATCH) == Note("dispatch")
    assert parse(exec_note("e1", ExecutionState.RUNNING)) == Note("exec", "e1", "RUNNING")
    assert parse(cancel_note("w1", "e1")) == Note("cancel", "w1", "e1")
    assert parse(token_note("abc")) == Note("token", "abc")
    assert parse(drop_note("w1")) == Note("drop", "w1")
    assert parse(notes.WORKFLOWS) == Note("workflows")
    assert parse(notes.SCHEDULES) == Note("schedules")
    assert parse("something:else") == Note("something", "else")


def test_execution_ids_with_colons_survive_the_round_trip() -> None:
    # Client-chosen execution ids may hold ':' (EXECUTION_ID_PATTERN).
    assert parse(exec_note("order:42", ExecutionState.COMPLETED)) == Note(
        "exec", "order:42", "COMPLETED"
    )
    assert parse(cancel_note("w1", "order:42")) == Note("cancel", "w1", "order:42")
    assert parse("exec:e1") == Note("exec", "e1")  # no state: unknown, the waiter reads it


def test_hints_are_the_frequent_notes_only() -> None:
    hints = [notes.DISPATCH, exec_note("e", ExecutionState.PAUSED), cancel_note("w", "e")]
    rare = [token_note("h"), drop_note("w"), notes.WORKFLOWS, notes.SCHEDULES]
    assert all(n.startswith(notes.HINT_KINDS) for n in hints)
    assert not any(n.startswith(notes.HINT_KINDS) for n in rare)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_waiter_for_an_id_with_a_colon_is_woken_by_its_note(server) -> None:
    runtime = server.runtime
    with runtime.watchers.watch("order:42") as watch, runtime.watchers.watch("order") as other:
        runtime.deliver(exec_note("order:42", ExecutionState.COMPLETED))
        assert watch.event.is_set() and watch.state == "COMPLETED"
        assert not other.event.is_set()
